/*
 * The command table and the command context.  One row per command: name,
 * handler, the states it is allowed in, flags (STYLE section 6).  A handler
 * either finishes the command (imap_cmd_reply() or imap_cmd_done()) before
 * returning, or starts asynchronous work and finishes it later; input stays
 * paused meanwhile.
 */
#ifndef HERALD_IMAP_COMMANDS_H
#define HERALD_IMAP_COMMANDS_H

#include <stdbool.h>

#include <uv.h>

#include "core/arena.h"
#include "core/buf.h"
#include "imap/parser.h"
#include "imap/session.h"

struct imap_cmd;
typedef void imap_command_fn(struct imap_cmd *cmd);

enum imap_run_result {
	IMAP_RUN_DONE,		/* the tagged reply is set */
	IMAP_RUN_MORE,		/* write cmd->out, then call run() again */
	IMAP_RUN_WAIT,		/* write cmd->out, call cmd->resume(), and
				   wait for an event (IDLE) */
};
/* A command's blocking part: runs on the libuv thread pool. */
typedef enum imap_run_result imap_run_fn(struct imap_cmd *cmd);

/* Command flags. */
enum imap_command_flags {
	/* Uses sequence numbers: EXPUNGE responses must wait (RFC 9051
	 * section 7.5.1: not during FETCH, STORE, SEARCH). */
	IMAP_CMD_F_NO_EXPUNGES = 1 << 0,
};

struct imap_command {
	const char *name;
	imap_command_fn *handler;	/* loop thread: validate, start */
	unsigned states;	/* IMAP_STATE_* where it is allowed */
	unsigned flags;		/* enum imap_command_flags */
};

/*
 * A command in progress.  Handlers validate their arguments on the loop
 * thread and either reply at once or hand the rest to imap_cmd_run(),
 * whose run function executes on the thread pool.  A run function touches
 * only the session's store and view (input is paused meanwhile, so nothing
 * else uses them) and writes its untagged responses into cmd->out, never to
 * the connection; the loop thread sends them when run() returns.
 */
struct imap_cmd {
	struct imap_session *s;
	const struct imap_command *def;
	char *tag;		/* owned copy: survives the parser's reset */
	const char *name;
	const struct imap_arg *args;	/* valid until the command ends */
	unsigned nargs;
	bool uid:1;		/* the UID form (UID FETCH, ...) */
	bool done:1;
	bool in_pool:1;		/* run() queued or running */
	bool wait_drain:1;	/* IMAP_RUN_MORE: waiting for the client */

	/* For run functions. */
	imap_run_fn *run;
	imap_command_fn *resume;	/* loop thread, after IMAP_RUN_WAIT */
	imap_command_fn *cleanup;	/* called when the command is freed */
	void *ctx;			/* the handler's own state */
	struct arena arena;		/* freed with the command */
	struct buf out;			/* untagged responses to send */
	char *reply_status;		/* set by imap_cmd_result() */
	char *reply_code;
	char *reply_text;
	/* From run(): after the tagged reply, send "* BYE <text>" and close
	 * (the selected mailbox was deleted).  A static string. */
	const char *bye_after;
	enum imap_run_result run_result;
	uv_work_t work;
	struct imap_batch *batch;	/* imap_cmd_requeue_batched() */
	struct imap_cmd *batch_next;
};

const struct imap_command *imap_command_find(const char *name);

/* Send the tagged reply, e.g. imap_cmd_reply(cmd, "OK", NULL, "Done"), or
 * with a response code "NO", "[AUTHENTICATIONFAILED]".  Ends the command. */
void imap_cmd_reply(struct imap_cmd *cmd, const char *status,
    const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Reply BAD and count it toward max_bad_commands. */
void imap_cmd_bad(struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Run run() on the thread pool (input stays paused), then send cmd->out and,
 * once run() returns IMAP_RUN_DONE, the reply set with imap_cmd_result().
 * IMAP_RUN_MORE sends what is in cmd->out and calls run() again once the
 * client has read it (FETCH of a large range, in slices).
 */
void imap_cmd_run(struct imap_cmd *cmd, imap_run_fn *run);
/* From run(): set the tagged reply (code may be NULL). */
void imap_cmd_result(struct imap_cmd *cmd, const char *status,
    const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* From run(): append an untagged line (CRLF added) or raw bytes. */
void imap_cmd_printf(struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void imap_cmd_write(struct imap_cmd *cmd, const void *data, size_t len);

/* Handlers, one file per family (cmd_*.c). */
void cmd_capability(struct imap_cmd *cmd);
void cmd_noop(struct imap_cmd *cmd);
void cmd_logout(struct imap_cmd *cmd);
void cmd_id(struct imap_cmd *cmd);
void cmd_enable(struct imap_cmd *cmd);
void cmd_starttls(struct imap_cmd *cmd);
void cmd_login(struct imap_cmd *cmd);
void cmd_authenticate(struct imap_cmd *cmd);
void cmd_uid(struct imap_cmd *cmd);
void cmd_idle(struct imap_cmd *cmd);
/* cmd_select.c */
void cmd_select(struct imap_cmd *cmd);
void cmd_examine(struct imap_cmd *cmd);
void cmd_close(struct imap_cmd *cmd);
void cmd_unselect(struct imap_cmd *cmd);
void cmd_check(struct imap_cmd *cmd);
void imap_cmd_noop_selected(struct imap_cmd *cmd);
/* cmd_mailbox.c */
void cmd_create(struct imap_cmd *cmd);
void cmd_delete(struct imap_cmd *cmd);
void cmd_rename(struct imap_cmd *cmd);
void cmd_subscribe(struct imap_cmd *cmd);
void cmd_unsubscribe(struct imap_cmd *cmd);
void cmd_list(struct imap_cmd *cmd);
void cmd_lsub(struct imap_cmd *cmd);
void cmd_status(struct imap_cmd *cmd);
void cmd_namespace(struct imap_cmd *cmd);
/* cmd_fetch.c */
void cmd_fetch(struct imap_cmd *cmd);
/* cmd_search.c */
void cmd_search(struct imap_cmd *cmd);
/* cmd_store.c: STORE, COPY, MOVE, EXPUNGE */
void cmd_store(struct imap_cmd *cmd);
void cmd_copy(struct imap_cmd *cmd);
void cmd_move(struct imap_cmd *cmd);
void cmd_expunge(struct imap_cmd *cmd);
/* cmd_append.c */
void cmd_append(struct imap_cmd *cmd);

/* Internal to the session: finish a command (called by imap_cmd_reply). */
void imap_session_command_finished(struct imap_session *s);
/* The client read the output a run() slice produced: run the next one. */
void imap_cmd_continue(struct imap_cmd *cmd);
void imap_cmd_free(struct imap_cmd **cmd);
/* Queue cmd->run again (IDLE, after an event). */
void imap_cmd_requeue(struct imap_cmd *cmd);
/*
 * The same, gathered per user: the runs requeued for one user during a loop
 * iteration go to the thread pool as one batch (imap_server_tick() starts
 * it), which takes the user's lock once and runs them in turn; runs
 * requeued while that user's batch is on the pool form the next one.  The
 * run functions of a batch share cmd->batch's change cache
 * (imap_cmd_changes_cache()), so that a change seen by thousands of IDLE
 * sessions of one mailbox is read from the index once per worker.
 */
void imap_cmd_requeue_batched(struct imap_cmd *cmd);
/* From run(): the batch's change cache, or NULL outside a batch. */
struct imap_changes_cache *imap_cmd_changes_cache(struct imap_cmd *cmd);


#endif
