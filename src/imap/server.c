#include "imap/server.h"

#include "auth/passdb.h"
#include "auth/throttle.h"
#include "config/config.h"
#include "core/xmalloc.h"
#include "event/worker.h"
#include "imap/view.h"
#include "imap/session.h"
#include "store/store.h"

#include "log/log.h"

#include <sys/resource.h>

#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

/* Addresses the login throttle remembers per worker. */
#define IMAP_THROTTLE_ENTRIES 4096

struct imap_server *
imap_server_new(struct worker *w, void *tls_ctx)
{
	struct imap_server *srv = xmalloc(sizeof(*srv));
	const struct config *cfg = worker_config(w);
	struct rlimit rl;

	srv->worker = w;
	srv->tls_ctx = tls_ctx;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		srv->fd_limit = rl.rlim_cur > UINT_MAX ? UINT_MAX :
		    (unsigned)rl.rlim_cur;
	srv->passdb = passdb_new(cfg->passwd_file);
	srv->passwd_path = xstrdup(cfg->passwd_file);
	uv_timer_init(worker_loop(w), &srv->release_timer);
	srv->release_timer.data = srv;
	uv_unref((uv_handle_t *)&srv->release_timer);
	srv->throttle = auth_throttle_new(cfg->auth_throttle_failures,
	    cfg->auth_throttle_window, cfg->auth_throttle_delay_max,
	    IMAP_THROTTLE_ENTRIES);
	return srv;
}

void
imap_server_reconfigure(struct imap_server *srv)
{
	const struct config *cfg = worker_config(srv->worker);

	/* Sessions pick up new limits at their next state change.  The
	 * passdb re-reads its file when it changes; a different path needs
	 * a restart, since logins in flight on the thread pool use it. */
	if (strcmp(cfg->passwd_file, srv->passwd_path) != 0)
		log_warnx("passwd_file changed to %s: restart to apply",
		    cfg->passwd_file);
}

void
imap_server_free(struct imap_server **srvp)
{
	struct imap_server *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	passdb_free(&srv->passdb);
	auth_throttle_free(&srv->throttle);
	free(srv->passwd_path);
	free(srv->users);
	free(srv);
}

static size_t
user_hash(const char *name, size_t size)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h % size);
}

struct imap_user *
imap_user_ref(struct imap_server *srv, const char *name)
{
	struct imap_user *u;
	size_t b;

	if (srv->users_size == 0 || srv->user_count >= srv->users_size) {
		unsigned nsize = srv->users_size == 0 ? 256 :
		    srv->users_size * 2;
		struct imap_user **nt = xcalloc(nsize, sizeof(*nt));

		for (unsigned i = 0; i < srv->users_size; i++) {
			struct imap_user *next;

			for (u = srv->users[i]; u != NULL; u = next) {
				next = u->next;
				b = user_hash(u->name, nsize);
				u->next = nt[b];
				nt[b] = u;
			}
		}
		free(srv->users);
		srv->users = nt;
		srv->users_size = nsize;
	}
	b = user_hash(name, srv->users_size);
	for (u = srv->users[b]; u != NULL; u = u->next) {
		if (strcmp(u->name, name) == 0) {
			u->refs++;
			return u;
		}
	}
	u = xmalloc(sizeof(*u));
	u->name = xstrdup(name);
	u->refs = 1;
	uv_mutex_init(&u->lock);
	u->next = srv->users[b];
	srv->users[b] = u;
	srv->user_count++;
	return u;
}

static void user_free(struct imap_server *srv, struct imap_user *u);
static void release_under_pressure(struct imap_server *srv);

void
imap_server_tick(struct imap_server *srv)
{
	struct imap_user *u;

	while ((u = srv->batch_users) != NULL) {
		srv->batch_users = u->batch_link;
		u->batch_link = NULL;
		u->batch_listed = false;
		/* A user whose batch is still running is listed again when
		 * it ends. */
		imap_user_batch_start(u);
	}
	release_under_pressure(srv);
}

void
imap_user_unref(struct imap_server *srv, struct imap_user **up)
{
	struct imap_user *u = *up;

	if (u == NULL)
		return;
	*up = NULL;
	ASSERT(u->refs > 0);
	if (--u->refs > 0 || u->jobs > 0)
		return;
	user_free(srv, u);
}

static void
user_free(struct imap_server *srv, struct imap_user *u)
{
	struct imap_user **pp;

	pp = &srv->users[user_hash(u->name, srv->users_size)];
	for (; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	}
	srv->user_count--;
	ASSERT(!u->batch_listed && !u->batch_running &&
	    u->batch_pending == NULL);
	if (u->store != NULL)
		store_user_close(&u->store);
	uv_mutex_destroy(&u->lock);
	free(u->name);
	free(u);
}

/*
 * Releasing idle users' stores.  A user whose sessions all idle keeps a
 * SQLite connection (three file descriptors and its cache) and an open
 * mailbox per view for nothing: after `idle_release` seconds without a
 * run, a job on the thread pool closes them under the user's lock.  The
 * next run of any of the user's sessions opens them again
 * (cmd_work_cb()), which is what lets one worker hold tens of thousands
 * of idling users within its file descriptor limit.
 */
static unsigned job_count_in_flight;

/* Stores closed since the last malloc_trim() (any thread). */
static unsigned long stores_closed;
/* Stores open in this worker (any thread): three descriptors each. */
static unsigned long stores_open;

void
imap_user_store_opened(struct imap_user *u)
{
	(void)u;
	__atomic_add_fetch(&stores_open, 1, __ATOMIC_RELAXED);
}

void
imap_user_close_store(struct imap_user *u)
{
	if (u->store != NULL) {
		__atomic_add_fetch(&stores_closed, 1, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&stores_open, 1, __ATOMIC_RELAXED);
	}
	for (struct imap_view *v = u->views; v != NULL; v = v->unext)
		if (v->box != NULL)
			store_mailbox_close(&v->box);
	if (u->store != NULL)
		store_user_close(&u->store);
}

struct release_job {
	uv_work_t work;
	struct imap_server *srv;
	struct imap_user *u;
};

static void
release_work_cb(uv_work_t *work)
{
	struct release_job *job = work->data;
	struct imap_user *u = job->u;

	uv_mutex_lock(&u->lock);
	/* Re-checked under the lock: a session that left IDLE since waits
	 * for the lock and reopens what it needs. */
	if (u->store != NULL && u->idlers == (unsigned)u->refs)
		imap_user_close_store(u);
	uv_mutex_unlock(&u->lock);
}

static void
release_after_cb(uv_work_t *work, int status)
{
	struct release_job *job = work->data;
	struct imap_user *u = job->u;

	if (--u->jobs == 0 && u->refs == 0)
		user_free(job->srv, u);
	free(job);
	/* Give what the closed connections used back to the system once a
	 * sweep's jobs are done (glibc keeps freed memory otherwise). */
	if (--job_count_in_flight == 0)
		malloc_trim(0);
}

/* Queue a release job for every user whose sessions all idle and whose
 * last run is at least quiet_ms old; returns how many were queued. */
static unsigned
release_sweep(struct imap_server *srv, uint64_t quiet)
{
	uint64_t now = uv_now(worker_loop(srv->worker));
	unsigned queued = 0;

	for (unsigned i = 0; i < srv->users_size; i++) {
		for (struct imap_user *u = srv->users[i]; u != NULL;
		    u = u->next) {
			struct release_job *job;

			/* Reading u->store unlocked is only a hint. */
			if (u->jobs > 0 || u->refs == 0 ||
			    u->idlers != (unsigned)u->refs ||
			    now - u->last_used < quiet ||
			    __atomic_load_n(&u->store, __ATOMIC_RELAXED) ==
			    NULL)
				continue;
			job = xmalloc(sizeof(*job));
			job->srv = srv;
			job->u = u;
			job->work.data = job;
			u->jobs++;
			job_count_in_flight++;
			if (uv_queue_work(worker_loop(srv->worker),
			    &job->work, release_work_cb,
			    release_after_cb) != 0) {
				u->jobs--;
				job_count_in_flight--;
				free(job);
				continue;
			}
			queued++;
		}
	}
	return queued;
}

static void
release_timer_cb(uv_timer_t *t)
{
	struct imap_server *srv = t->data;

	/* Closed connections (idlers' own, or the jobs of the last sweep)
	 * leave memory glibc keeps: give it back to the system. */
	if (job_count_in_flight == 0 &&
	    __atomic_exchange_n(&stores_closed, 0, __ATOMIC_RELAXED) > 0)
		malloc_trim(0);
	release_sweep(srv, (uint64_t)srv->release_after * 1000);
}

/*
 * Under descriptor pressure (connections plus three per open index past
 * 85% of RLIMIT_NOFILE: a burst of logins, each user's index open until
 * its sessions have idled idle_release seconds), release every user whose
 * sessions all idle now rather than after idle_release, so that new
 * sessions can still open their indexes.  One sweep at a time.
 */
static void
release_under_pressure(struct imap_server *srv)
{
	uint64_t now = uv_now(worker_loop(srv->worker));
	unsigned long used;

	if (srv->fd_limit == 0 || srv->release_after == 0 ||
	    job_count_in_flight > 0)
		return;
	used = worker_conn_count(srv->worker) +
	    3 * __atomic_load_n(&stores_open, __ATOMIC_RELAXED);
	if (used < (unsigned long)srv->fd_limit / 100 * 85)
		return;
	/* A sweep walks every user: after one that found nothing to
	 * release, wait 100 ms (connections alone may keep the count past
	 * the mark, and the loop may turn thousands of times a second). */
	if (now - srv->pressure_swept < 100)
		return;
	log_debug("imap: %lu descriptors of %u in use: releasing idle users' "
	    "indexes now", used, srv->fd_limit);
	if (release_sweep(srv, 0) == 0)
		srv->pressure_swept = now;
}

void
imap_server_start_release(struct imap_server *srv, unsigned seconds)
{
	srv->release_after = seconds;
	if (seconds == 0) {
		uv_timer_stop(&srv->release_timer);
		return;
	}
	/* Check a few times per period so a user goes within about
	 * 1.25 periods of its last activity. */
	uv_timer_start(&srv->release_timer, release_timer_cb,
	    (uint64_t)seconds * 250, (uint64_t)seconds * 250);
}
