/*
 * Internals shared by conn.c and worker.c only.
 */
#ifndef HERALD_EVENT_PRIVATE_H
#define HERALD_EVENT_PRIVATE_H

#include "event/conn.h"
#include "event/worker.h"

/* Queue c for conn_run_deferred() before the loop next sleeps. */
void worker_defer(struct worker *w, struct conn *c);
/* Take c off that queue (it is being freed). */
void worker_undefer(struct worker *w, struct conn *c);
/* The read buffer shared by every connection of the worker. */
char *worker_read_buf(struct worker *w, size_t *size_r);
void worker_conn_added(struct worker *w);
void worker_conn_removed(struct worker *w);
uint32_t worker_next_conn_id(struct worker *w);

/* Run c's deferred work (flush, resumed input). */
void conn_run_deferred(struct conn *c);
/* Intrusive link for the worker's deferred list. */
struct conn **conn_defer_link(struct conn *c);

#endif
