#include "notify/notify.h"

#include "core/xmalloc.h"
#include "log/log.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Bus datagrams: magic, then "user\0mailbox\0". */
#define NOTIFY_MAGIC "HN1"
#define NOTIFY_MAX_MSG 2048
#define NOTIFY_SOCK_PREFIX "notify."
#define NOTIFY_RCVBUF (4 * 1024 * 1024)
#define NOTIFY_INOTIFY_MASK (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | \
	IN_DELETE | IN_ONLYDIR)

struct mbox_entry;

/* One inotify watch descriptor of an entry, in the wd hash table. */
struct wdnode {
	struct wdnode *next;
	struct mbox_entry *entry;
	int wd;
};

struct mbox_entry {
	struct mbox_entry *hnext;	/* key hash chain */
	struct wdnode wn[2];		/* new/ and cur/ */
	char *key;			/* "user\0mailbox" */
	size_t keylen;
	char *dir;			/* folder directory, or NULL */
	struct notify_watch *watchers;
	unsigned nwatchers;
	int wd_new, wd_cur;		/* -1 when not watched */
	struct timespec mtime_new, mtime_cur;	/* for the poll fallback */
};

struct notify_watch {
	struct notify_watch *prev, *next;	/* the entry's watchers */
	struct notify_watch *dprev, *dnext;	/* the dirty list */
	struct mbox_entry *entry;
	notify_cb *cb;
	void *ctx;
	unsigned flags;
	bool dirty;
};

struct queued {
	struct queued *next;
	size_t keylen;
	char key[];
};

/* A datagram a peer could not take (its queue was full): sent again from
 * a short timer, so that no wake-up is lost. */
struct retry {
	struct retry *next;
	char *peer;
	size_t len;
	char msg[];
};

#define NOTIFY_RETRY_MS 2
#define NOTIFY_RETRY_MAX 100000

static struct {
	bool inited;
	uv_loop_t *loop;
	char *run_dir;
	char *sock_path;
	int bus_fd;
	uv_poll_t bus_poll;
	int ino_fd;
	uv_poll_t ino_poll;
	uv_async_t async;
	uv_timer_t poll_timer;
	uv_timer_t retry_timer;
	struct retry *retries;
	unsigned nretries;
	pthread_mutex_t lock;
	struct queued *queue, **queue_tail;

	struct mbox_entry **table;	/* by key */
	struct wdnode **wdtable;	/* by inotify wd */
	size_t table_size;		/* both tables */
	unsigned nentries;

	struct notify_watch *dirty_head, *dirty_tail;

	/* Peer sockets, re-read when run_dir's mtime changes. */
	char **peers;
	unsigned npeers;
	struct timespec peers_mtime;

	struct notify_stats stats;
} hub = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t
hash_bytes(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static char *
make_key(const char *user, const char *mailbox, size_t *len_r)
{
	size_t ul = strlen(user), ml = strlen(mailbox);
	char *k = xmalloc(ul + ml + 2);

	memcpy(k, user, ul);
	memcpy(k + ul + 1, mailbox, ml);
	*len_r = ul + 1 + ml;
	return k;
}

static void
table_grow(void)
{
	size_t nsize = hub.table_size == 0 ? 256 : hub.table_size * 2;
	struct mbox_entry **nt = xcalloc(nsize, sizeof(*nt));
	struct wdnode **nw = xcalloc(nsize, sizeof(*nw));

	for (size_t i = 0; i < hub.table_size; i++) {
		struct mbox_entry *e, *enext;
		struct wdnode *n, *nnext;

		for (e = hub.table[i]; e != NULL; e = enext) {
			size_t b = hash_bytes(e->key, e->keylen) % nsize;

			enext = e->hnext;
			e->hnext = nt[b];
			nt[b] = e;
		}
		for (n = hub.wdtable[i]; n != NULL; n = nnext) {
			size_t b = (size_t)n->wd % nsize;

			nnext = n->next;
			n->next = nw[b];
			nw[b] = n;
		}
	}
	free(hub.table);
	free(hub.wdtable);
	hub.table = nt;
	hub.wdtable = nw;
	hub.table_size = nsize;
}

static struct mbox_entry *
entry_find(const char *key, size_t keylen)
{
	struct mbox_entry *e;

	if (hub.table_size == 0)
		return NULL;
	e = hub.table[hash_bytes(key, keylen) % hub.table_size];
	for (; e != NULL; e = e->hnext)
		if (e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
			return e;
	return NULL;
}

static struct mbox_entry *
entry_by_wd(int wd)
{
	struct wdnode *n;

	if (hub.table_size == 0 || wd < 0)
		return NULL;
	for (n = hub.wdtable[(size_t)wd % hub.table_size]; n != NULL;
	    n = n->next)
		if (n->wd == wd)
			return n->entry;
	return NULL;
}

static void
wd_link(struct mbox_entry *e, unsigned i, int wd)
{
	struct wdnode *n = &e->wn[i];
	size_t b = (size_t)wd % hub.table_size;

	n->entry = e;
	n->wd = wd;
	n->next = hub.wdtable[b];
	hub.wdtable[b] = n;
}

static void
wd_unlink(struct mbox_entry *e)
{
	for (unsigned i = 0; i < 2; i++) {
		struct wdnode **pp;

		if (e->wn[i].entry == NULL)
			continue;
		pp = &hub.wdtable[(size_t)e->wn[i].wd % hub.table_size];
		for (; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == &e->wn[i]) {
				*pp = e->wn[i].next;
				break;
			}
		}
		e->wn[i].entry = NULL;
	}
}

static void
entry_watch_dirs(struct mbox_entry *e)
{
	char path[4096];
	struct stat st;

	e->wd_new = e->wd_cur = -1;
	if (e->dir == NULL || hub.ino_fd < 0)
		return;
	snprintf(path, sizeof(path), "%s/new", e->dir);
	e->wd_new = inotify_add_watch(hub.ino_fd, path, NOTIFY_INOTIFY_MASK);
	if (stat(path, &st) == 0)
		e->mtime_new = st.st_mtim;
	snprintf(path, sizeof(path), "%s/cur", e->dir);
	e->wd_cur = inotify_add_watch(hub.ino_fd, path, NOTIFY_INOTIFY_MASK);
	if (stat(path, &st) == 0)
		e->mtime_cur = st.st_mtim;
	if (e->wd_new < 0 || e->wd_cur < 0) {
		/* Out of watches (max_user_watches): the poll fallback
		 * still notices changes, later. */
		log_warn("inotify_add_watch %s", e->dir);
		if (e->wd_new >= 0)
			inotify_rm_watch(hub.ino_fd, e->wd_new);
		if (e->wd_cur >= 0)
			inotify_rm_watch(hub.ino_fd, e->wd_cur);
		e->wd_new = e->wd_cur = -1;
		return;
	}
	wd_link(e, 0, e->wd_new);
	wd_link(e, 1, e->wd_cur);
}

static void
dirty_mark(struct notify_watch *w, unsigned flags)
{
	w->flags |= flags;
	if (w->dirty)
		return;
	w->dirty = true;
	w->dnext = NULL;
	w->dprev = hub.dirty_tail;
	if (hub.dirty_tail != NULL)
		hub.dirty_tail->dnext = w;
	else
		hub.dirty_head = w;
	hub.dirty_tail = w;
}

static void
dirty_unlink(struct notify_watch *w)
{
	if (!w->dirty)
		return;
	if (w->dprev != NULL)
		w->dprev->dnext = w->dnext;
	else
		hub.dirty_head = w->dnext;
	if (w->dnext != NULL)
		w->dnext->dprev = w->dprev;
	else
		hub.dirty_tail = w->dprev;
	w->dirty = false;
	w->dprev = w->dnext = NULL;
}

/* Wake every watcher of key in this process. */
static void
fanout(const char *key, size_t keylen)
{
	struct mbox_entry *e = entry_find(key, keylen);

	if (e == NULL)
		return;
	for (struct notify_watch *w = e->watchers; w != NULL; w = w->next)
		dirty_mark(w, NOTIFY_F_CHANGED);
}

/* The folder changed on disk: one watcher of this process rescans it. */
static void
fanout_rescan(struct mbox_entry *e)
{
	if (e->watchers != NULL)
		dirty_mark(e->watchers, NOTIFY_F_RESCAN);
}

static void
peers_free(void)
{
	for (unsigned i = 0; i < hub.npeers; i++)
		free(hub.peers[i]);
	free(hub.peers);
	hub.peers = NULL;
	hub.npeers = 0;
}

/* Refresh the list of peer sockets in run_dir if the directory changed. */
static void
peers_refresh(const char *run_dir, bool force)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	unsigned cap = 0;

	if (stat(run_dir, &st) < 0)
		return;
	if (!force && hub.peers != NULL &&
	    st.st_mtim.tv_sec == hub.peers_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == hub.peers_mtime.tv_nsec)
		return;
	peers_free();
	hub.peers_mtime = st.st_mtim;
	d = opendir(run_dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *path;

		if (strncmp(de->d_name, NOTIFY_SOCK_PREFIX,
		    strlen(NOTIFY_SOCK_PREFIX)) != 0)
			continue;
		path = xasprintf("%s/%s", run_dir, de->d_name);
		if (hub.sock_path != NULL && strcmp(path, hub.sock_path) == 0) {
			free(path);
			continue;
		}
		if (hub.npeers == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			hub.peers = xrealloc(hub.peers,
			    cap * sizeof(*hub.peers));
		}
		hub.peers[hub.npeers++] = path;
	}
	closedir(d);
	/* An empty list is remembered as a non-NULL array. */
	if (hub.peers == NULL)
		hub.peers = xcalloc(1, sizeof(*hub.peers));
}

static void retry_timer_cb(uv_timer_t *t);

/* Keep a datagram for peer to send again; duplicates are dropped. */
static void
retry_add(const char *peer, const char *msg, size_t len)
{
	struct retry *r;

	for (r = hub.retries; r != NULL; r = r->next)
		if (r->len == len && strcmp(r->peer, peer) == 0 &&
		    memcmp(r->msg, msg, len) == 0)
			return;
	if (hub.nretries >= NOTIFY_RETRY_MAX) {
		log_warnx("notify: %u wake-ups waiting for slow peers: "
		    "dropping one for %s", hub.nretries, peer);
		return;
	}
	r = xmalloc(sizeof(*r) + len);
	r->peer = xstrdup(peer);
	r->len = len;
	memcpy(r->msg, msg, len);
	r->next = hub.retries;
	hub.retries = r;
	hub.nretries++;
	if (hub.inited && !uv_is_active((uv_handle_t *)&hub.retry_timer))
		uv_timer_start(&hub.retry_timer, retry_timer_cb,
		    NOTIFY_RETRY_MS, 0);
}

/* Send one datagram; 1 sent, 0 try again later, -1 peer gone. */
static int
bus_send_one(int fd, const char *peer, const char *msg, size_t len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (strlen(peer) >= sizeof(sun.sun_path))
		return -1;
	strcpy(sun.sun_path, peer);
	if (sendto(fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, sizeof(sun)) == (ssize_t)len) {
		hub.stats.bus_sent++;
		return 1;
	}
	if (errno == ECONNREFUSED || errno == ENOENT)
		return -1;
	return 0;
}

static void
retry_timer_cb(uv_timer_t *t)
{
	struct retry *r = hub.retries, *next;

	hub.retries = NULL;
	hub.nretries = 0;
	for (; r != NULL; r = next) {
		int ret = bus_send_one(hub.bus_fd, r->peer, r->msg, r->len);

		next = r->next;
		if (ret == 0) {
			r->next = hub.retries;
			hub.retries = r;
			hub.nretries++;
			continue;
		}
		free(r->peer);
		free(r);
	}
	if (hub.retries != NULL)
		uv_timer_start(&hub.retry_timer, retry_timer_cb,
		    NOTIFY_RETRY_MS, 0);
}

static void
bus_send(int fd, const char *run_dir, const char *key, size_t keylen)
{
	char msg[NOTIFY_MAX_MSG];
	size_t len = sizeof(NOTIFY_MAGIC) + keylen + 1;
	bool stale = false;

	if (len > sizeof(msg))
		return;
	memcpy(msg, NOTIFY_MAGIC, sizeof(NOTIFY_MAGIC));
	memcpy(msg + sizeof(NOTIFY_MAGIC), key, keylen);
	msg[len - 1] = '\0';
	peers_refresh(run_dir, false);
	for (unsigned i = 0; i < hub.npeers; i++) {
		int ret = bus_send_one(fd, hub.peers[i], msg, len);

		if (ret < 0) {
			/* Its process is gone. */
			unlink(hub.peers[i]);
			stale = true;
		} else if (ret == 0) {
			/* The peer's queue is full: it is busy, not gone.
			 * A process with a loop sends again shortly; a
			 * one-shot sender (herald deliver) waits a little. */
			if (hub.inited) {
				retry_add(hub.peers[i], msg, len);
			} else {
				for (int t = 0; t < 100 && ret == 0; t++) {
					usleep(1000);
					ret = bus_send_one(fd, hub.peers[i],
					    msg, len);
				}
			}
		}
	}
	if (stale)
		peers_refresh(run_dir, true);
}

/* Loop thread: handle what other threads queued. */
static void
async_cb(uv_async_t *h)
{
	struct queued *q;

	pthread_mutex_lock(&hub.lock);
	q = hub.queue;
	hub.queue = NULL;
	hub.queue_tail = &hub.queue;
	pthread_mutex_unlock(&hub.lock);
	while (q != NULL) {
		struct queued *next = q->next;
		bool dup = false;

		unsigned look = 0;

		/* A burst of commits to one mailbox needs one wake-up: skip
		 * a key queued again shortly after (bounded look-ahead). */
		for (struct queued *o = next; o != NULL && !dup &&
		    look < 16; o = o->next, look++)
			dup = o->keylen == q->keylen &&
			    memcmp(o->key, q->key, q->keylen) == 0;
		if (!dup) {
			hub.stats.local++;
			fanout(q->key, q->keylen);
			bus_send(hub.bus_fd, hub.run_dir, q->key, q->keylen);
		}
		free(q);
		q = next;
	}
}

static void
bus_read_cb(uv_poll_t *h, int status, int events)
{
	char msg[NOTIFY_MAX_MSG];

	for (int i = 0; i < 256; i++) {
		ssize_t n = recv(hub.bus_fd, msg, sizeof(msg), MSG_DONTWAIT);

		if (n < 0)
			return;
		if ((size_t)n <= sizeof(NOTIFY_MAGIC) ||
		    memcmp(msg, NOTIFY_MAGIC, sizeof(NOTIFY_MAGIC)) != 0 ||
		    msg[n - 1] != '\0')
			continue;
		hub.stats.bus_received++;
		fanout(msg + sizeof(NOTIFY_MAGIC),
		    (size_t)n - sizeof(NOTIFY_MAGIC) - 1);
	}
}

static void
inotify_read_cb(uv_poll_t *h, int status, int events)
{
	char evbuf[16384] __attribute__((aligned(
	    __alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(hub.ino_fd, evbuf, sizeof(evbuf));

		if (n <= 0)
			return;
		for (char *p = evbuf; p < evbuf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			p += sizeof(*ev) + ev->len;
			hub.stats.inotify_events++;
			if ((ev->mask & IN_Q_OVERFLOW) != 0) {
				/* Events were lost: rescan everything. */
				for (size_t b = 0; b < hub.table_size; b++)
					for (struct mbox_entry *e =
					    hub.table[b]; e != NULL;
					    e = e->hnext)
						fanout_rescan(e);
				continue;
			}
			if ((ev->mask & IN_IGNORED) != 0)
				continue;
			{
				struct mbox_entry *e = entry_by_wd(ev->wd);

				if (e != NULL)
					fanout_rescan(e);
			}
		}
	}
}

static bool
mtime_changed(const char *dir, const char *sub, struct timespec *ts)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (stat(path, &st) < 0)
		return false;
	if (st.st_mtim.tv_sec == ts->tv_sec &&
	    st.st_mtim.tv_nsec == ts->tv_nsec)
		return false;
	*ts = st.st_mtim;
	return true;
}

/* The fallback for file systems where inotify sees nothing (NFS, FUSE):
 * compare the folders' mtimes. */
static void
poll_timer_cb(uv_timer_t *t)
{
	for (size_t b = 0; b < hub.table_size; b++) {
		for (struct mbox_entry *e = hub.table[b]; e != NULL;
		    e = e->hnext) {
			bool n, c;

			if (e->dir == NULL)
				continue;
			n = mtime_changed(e->dir, "new", &e->mtime_new);
			c = mtime_changed(e->dir, "cur", &e->mtime_cur);
			if (n || c)
				fanout_rescan(e);
		}
	}
}

void
notify_set_poll_interval(unsigned seconds)
{
	if (!hub.inited)
		return;
	if (seconds == 0)
		uv_timer_stop(&hub.poll_timer);
	else
		uv_timer_start(&hub.poll_timer, poll_timer_cb,
		    (uint64_t)seconds * 1000, (uint64_t)seconds * 1000);
}

int
notify_init(uv_loop_t *loop, const char *run_dir, char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int rcvbuf = NOTIFY_RCVBUF;

	if (hub.inited)
		return 0;
	if (mkdir(run_dir, 0700) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mkdir %s: %s", run_dir, strerror(errno));
		return -1;
	}
	hub.loop = loop;
	hub.run_dir = xstrdup(run_dir);
	hub.sock_path = xasprintf("%s/" NOTIFY_SOCK_PREFIX "%d", run_dir,
	    (int)getpid());
	if (strlen(hub.sock_path) >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("notify socket path too long: %s",
		    hub.sock_path);
		return -1;
	}
	strcpy(sun.sun_path, hub.sock_path);
	hub.bus_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (hub.bus_fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	/* A deep queue absorbs bursts; past net.core.rmem_max only a
	 * privileged process may go (SO_RCVBUFFORCE), else take the cap. */
	if (setsockopt(hub.bus_fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
	    sizeof(rcvbuf)) < 0)
		(void)setsockopt(hub.bus_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf));
	unlink(hub.sock_path);
	if (bind(hub.bus_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		*error_r = xasprintf("bind %s: %s", hub.sock_path,
		    strerror(errno));
		close(hub.bus_fd);
		return -1;
	}
	hub.ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (hub.ino_fd < 0)
		log_warn("inotify_init1: falling back to polling");
	hub.queue_tail = &hub.queue;
	uv_async_init(loop, &hub.async, async_cb);
	uv_unref((uv_handle_t *)&hub.async);
	uv_poll_init(loop, &hub.bus_poll, hub.bus_fd);
	uv_poll_start(&hub.bus_poll, UV_READABLE, bus_read_cb);
	uv_unref((uv_handle_t *)&hub.bus_poll);
	if (hub.ino_fd >= 0) {
		uv_poll_init(loop, &hub.ino_poll, hub.ino_fd);
		uv_poll_start(&hub.ino_poll, UV_READABLE, inotify_read_cb);
		uv_unref((uv_handle_t *)&hub.ino_poll);
	}
	uv_timer_init(loop, &hub.poll_timer);
	uv_unref((uv_handle_t *)&hub.poll_timer);
	uv_timer_init(loop, &hub.retry_timer);
	uv_unref((uv_handle_t *)&hub.retry_timer);
	table_grow();
	hub.inited = true;
	return 0;
}

void
notify_deinit(void)
{
	if (!hub.inited)
		return;
	hub.inited = false;
	unlink(hub.sock_path);
	uv_poll_stop(&hub.bus_poll);
	close(hub.bus_fd);
	if (hub.ino_fd >= 0) {
		uv_poll_stop(&hub.ino_poll);
		close(hub.ino_fd);
	}
	uv_timer_stop(&hub.poll_timer);
	uv_timer_stop(&hub.retry_timer);
	while (hub.retries != NULL) {
		struct retry *r = hub.retries;

		hub.retries = r->next;
		free(r->peer);
		free(r);
	}
	peers_free();
}

struct notify_watch *
notify_watch_add(const char *user, const char *mailbox, const char *dir,
    notify_cb *cb, void *ctx)
{
	struct notify_watch *w = xmalloc(sizeof(*w));
	size_t keylen;
	char *key = make_key(user, mailbox, &keylen);
	struct mbox_entry *e = entry_find(key, keylen);

	if (e == NULL) {
		size_t b;

		if (hub.nentries >= hub.table_size)
			table_grow();
		e = xmalloc(sizeof(*e));
		e->key = key;
		e->keylen = keylen;
		e->dir = dir != NULL ? xstrdup(dir) : NULL;
		b = hash_bytes(key, keylen) % hub.table_size;
		e->hnext = hub.table[b];
		hub.table[b] = e;
		hub.nentries++;
		entry_watch_dirs(e);
	} else {
		free(key);
	}
	w->entry = e;
	w->cb = cb;
	w->ctx = ctx;
	w->next = e->watchers;
	if (w->next != NULL)
		w->next->prev = w;
	e->watchers = w;
	e->nwatchers++;
	hub.stats.watches++;
	return w;
}

static void
entry_free(struct mbox_entry *e)
{
	struct mbox_entry **pp;

	pp = &hub.table[hash_bytes(e->key, e->keylen) % hub.table_size];
	for (; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	}
	wd_unlink(e);
	if (e->wd_new >= 0)
		inotify_rm_watch(hub.ino_fd, e->wd_new);
	if (e->wd_cur >= 0)
		inotify_rm_watch(hub.ino_fd, e->wd_cur);
	hub.nentries--;
	free(e->key);
	free(e->dir);
	free(e);
}

void
notify_watch_remove(struct notify_watch **wp)
{
	struct notify_watch *w = *wp;
	struct mbox_entry *e;

	if (w == NULL)
		return;
	*wp = NULL;
	e = w->entry;
	dirty_unlink(w);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		e->watchers = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	hub.stats.watches--;
	if (--e->nwatchers == 0)
		entry_free(e);
	free(w);
}

void
notify_mailbox_changed(const char *user, const char *mailbox)
{
	notify_mailbox_changed_ext(NULL, user, mailbox);
}

void
notify_mailbox_changed_ext(const char *run_dir, const char *user,
    const char *mailbox)
{
	size_t keylen;
	char *key;
	struct queued *q;

	if (!hub.inited) {
		/* A process without a loop (herald deliver): tell the
		 * server's processes directly. */
		int fd;

		if (run_dir == NULL)
			return;
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return;
		key = make_key(user, mailbox, &keylen);
		bus_send(fd, run_dir, key, keylen);
		free(key);
		close(fd);
		peers_free();
		return;
	}
	key = make_key(user, mailbox, &keylen);
	q = xmalloc(sizeof(*q) + keylen);
	memcpy(q->key, key, keylen);
	q->keylen = keylen;
	free(key);
	pthread_mutex_lock(&hub.lock);
	*hub.queue_tail = q;
	hub.queue_tail = &q->next;
	pthread_mutex_unlock(&hub.lock);
	uv_async_send(&hub.async);
}

void
notify_drain(void)
{
	while (hub.dirty_head != NULL) {
		struct notify_watch *w = hub.dirty_head;
		unsigned flags = w->flags;

		dirty_unlink(w);
		w->flags = 0;
		hub.stats.wakeups++;
		w->cb(w->ctx, flags);
	}
}

void
notify_get_stats(struct notify_stats *stats_r)
{
	*stats_r = hub.stats;
	stats_r->mailboxes = hub.nentries;
}
