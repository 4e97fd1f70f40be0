/*
 * Mailbox change notifications: the IDLE path (STYLE section 7).
 *
 * A producer (IMAP APPEND/STORE/EXPUNGE/COPY/MOVE, a sync that found
 * changes, LMTP delivery, `herald deliver`) commits to the store, then calls
 * notify_mailbox_changed(user, mailbox).  Notifications carry no payload:
 * every watcher of that mailbox, in this process and in every other Herald
 * process on the machine, is marked dirty and woken once; it then asks the
 * store what changed since the modseq it last reported.
 *
 * Three paths lead to a wake-up:
 *  1. In-process: the call queues the key (any thread) and an async handle
 *     fans it out on the loop thread.
 *  2. Between processes: each process with a loop binds a UNIX datagram
 *     socket RUN_DIR/notify.PID; a change is sent to every other socket in
 *     RUN_DIR (a socket whose process is gone is removed).
 *  3. Other programs writing the Maildir: one inotify instance per process
 *     watches new/ and cur/ of each mailbox that has watchers (one watch per
 *     mailbox, not per session).  Such a wake asks one watcher of the
 *     process to rescan the folder (NOTIFY_F_RESCAN); its commit then wakes
 *     the others through paths 1 and 2.  A slow periodic poll covers file
 *     systems where inotify is blind (NFS): see notify_poll_interval.
 *
 * Wake-ups are coalesced: a watcher is woken at most once per loop
 * iteration, in notify_drain(), called from the worker's tick before the
 * loop sleeps.  There is no fixed delay.
 */
#ifndef HERALD_NOTIFY_NOTIFY_H
#define HERALD_NOTIFY_NOTIFY_H

#include <stdbool.h>
#include <uv.h>

enum notify_flags {
	NOTIFY_F_CHANGED = 1 << 0,	/* the index changed */
	NOTIFY_F_RESCAN = 1 << 1,	/* the folder changed on disk */
};

struct notify_watch;
/* Called on the loop thread; flags are enum notify_flags. */
typedef void notify_cb(void *ctx, unsigned flags);

/*
 * Start the hub of a process with a libuv loop: the bus socket in run_dir
 * (created if missing) and the inotify instance.  0, or -1 with an
 * allocated *error_r.
 */
int notify_init(uv_loop_t *loop, const char *run_dir, char **error_r);
void notify_deinit(void);

/*
 * Watch user's mailbox (canonical name); dir is its Maildir folder (for
 * inotify; may be NULL).  cb runs on the loop thread from notify_drain().
 */
struct notify_watch *notify_watch_add(const char *user, const char *mailbox,
    const char *dir, notify_cb *cb, void *ctx);
void notify_watch_remove(struct notify_watch **watch);

/*
 * Something in user's mailbox changed and is committed.  Callable from any
 * thread.  In a process without notify_init() (herald deliver), run_dir
 * must be given so the change reaches the server's processes; otherwise
 * run_dir may be NULL.
 */
void notify_mailbox_changed(const char *user, const char *mailbox);
void notify_mailbox_changed_ext(const char *run_dir, const char *user,
    const char *mailbox);

/* The mtime poll for folders inotify cannot see; 0 turns it off. */
void notify_set_poll_interval(unsigned seconds);

/* Wake the dirty watchers.  Loop thread, once per iteration. */
void notify_drain(void);

/* Counters for tests and metrics. */
struct notify_stats {
	unsigned long long local, bus_sent, bus_received, inotify_events,
	    wakeups;
	unsigned watches, mailboxes;
};
void notify_get_stats(struct notify_stats *stats_r);

#endif
