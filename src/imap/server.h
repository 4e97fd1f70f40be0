/*
 * The IMAP service of one worker: the listeners' accept callback, the
 * resources shared by all sessions of the worker (TLS context for STARTTLS,
 * password database, login throttle) and the list of sessions.
 */
#ifndef HERALD_IMAP_SERVER_H
#define HERALD_IMAP_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct worker;
struct passdb;
struct auth_throttle;
struct imap_session;
struct store_user;
struct sockaddr;

/*
 * One user's mail store, shared by all sessions of that user in this
 * worker: one SQLite connection (and its three file descriptors) per user
 * and worker instead of per session, which is what lets a worker hold many
 * thousands of idlers.  A store_user may be used by one thread at a time,
 * so every run function of a session holds `lock` while it runs.
 */
struct imap_view;

struct imap_user {
	struct imap_user *next;		/* hash chain */
	char *name;
	int refs;			/* sessions */
	uv_mutex_t lock;
	struct store_user *store;	/* opened on first use, under lock */
	struct imap_view *views;	/* the sessions' views, under lock */
	_Atomic unsigned idlers;	/* sessions in IDLE (loop thread) */
	uint64_t last_used;		/* uv_now() after the last run */
	unsigned jobs;			/* release jobs in flight */
	/* Batched IDLE runs (imap_cmd_requeue_batched(), loop thread). */
	struct imap_batch *batch_pending;	/* gathering */
	struct imap_user *batch_link;	/* in imap_server's batch_users */
	bool batch_running;		/* a batch is on the thread pool */
	bool batch_listed;		/* in batch_users */
};

struct imap_server {
	struct worker *worker;
	void *tls_ctx;			/* for STARTTLS; NULL = not offered */
	struct passdb *passdb;
	char *passwd_path;		/* the file passdb reads */
	struct auth_throttle *throttle;
	struct imap_session *sessions;	/* doubly linked */
	unsigned session_count;
	struct imap_user **users;	/* hash by name */
	unsigned users_size, user_count;
	struct imap_user *batch_users;	/* with a batch gathering */
	uv_timer_t release_timer;	/* closes idle users' stores */
	unsigned release_after;		/* seconds of quiet; 0 = never */
	unsigned fd_limit;		/* RLIMIT_NOFILE at start */
	uint64_t pressure_swept;	/* uv_now() of the last pressure sweep */
};

/* Close the stores of users whose sessions all idled for `seconds`
 * (config idle_release; 0 = never). */
void imap_server_start_release(struct imap_server *srv, unsigned seconds);

/* Close u's store and its views' mailboxes; with u->lock held.  The next
 * run reopens them. */
void imap_user_close_store(struct imap_user *u);
/* u->store was just opened (with u->lock held): counted for the file
 * descriptor budget (imap_server_tick()). */
void imap_user_store_opened(struct imap_user *u);

/* The shared store entry of user (loop thread); one reference. */
struct imap_user *imap_user_ref(struct imap_server *srv, const char *name);
/* Drop a reference; the last one closes the store (loop thread).  The
 * caller must not hold the lock. */
void imap_user_unref(struct imap_server *srv, struct imap_user **user);

struct imap_server *imap_server_new(struct worker *w, void *tls_ctx);
/* Once per loop iteration, after notify_drain(): start the batches of
 * IDLE runs gathered meanwhile (imap_cmd_requeue_batched()). */
void imap_server_tick(struct imap_server *srv);
/* Start u's gathered batch unless one is running (commands.c). */
void imap_user_batch_start(struct imap_user *u);
void imap_server_free(struct imap_server **srv);
/* worker_accept_cb for IMAP and IMAPS listeners (ctx = imap_server). */
void imap_server_accept(struct worker *w, int fd, const struct sockaddr *peer,
    unsigned peer_len, void *tls_ctx, void *ctx);
/* worker_shutdown_cb: BYE to every session. */
void imap_server_shutdown(struct worker *w, void *ctx);
/* The config changed (SIGHUP): passdb path, limits. */
void imap_server_reconfigure(struct imap_server *srv);

#endif
