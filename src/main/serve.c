/*
 * The master process: prepares the data directory and TLS material, binds
 * every listening socket, drops privileges, then starts and supervises the
 * worker processes.
 *
 * Each worker gets its own socket for every listen address, all bound with
 * SO_REUSEPORT, so the kernel spreads new connections evenly over the
 * workers.  The master keeps the sockets open: a worker that dies is
 * restarted with the same sockets and nothing queued in them is lost.
 */
#include "main/main.h"

#include "auth/passdb.h"
#include "auth/password.h"
#include "config/config.h"
#include "core/xmalloc.h"
#include "event/tls.h"
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096
/* A worker that dies sooner than this after its start is restarted only
 * after a pause, so a crash loop does not spin. */
#define WORKER_MIN_LIFETIME 2
#define DEMO_USER "demo"

struct worker_slot {
	pid_t pid;
	time_t started;
	time_t restart_at;	/* 0 = running or not due */
};

struct master {
	const struct config_source *src;
	struct config *cfg;
	void *tls_ctx;
	unsigned nworkers;
	unsigned naddrs;	/* listen addresses */
	int *fds;		/* naddrs * nworkers, [worker * naddrs + a];
				   a UNIX socket is one fd shared by all */
	enum listen_kind *kinds;	/* naddrs */
	char **unix_paths;	/* UNIX sockets we created, removed at exit */
	unsigned nunix;
	struct worker_slot *slots;
	bool stopping;
};

static int
mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path);

	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST) {
		free(p);
		return -1;
	}
	free(p);
	return 0;
}

static char *
dir_of(const char *path)
{
	char *d = xstrdup(path);
	char *slash = strrchr(d, '/');

	if (slash == NULL)
		strcpy(d, ".");
	else if (slash == d)
		slash[1] = '\0';
	else
		*slash = '\0';
	return d;
}

/*
 * SO_REUSEPORT lets any process of the same user join a listening group,
 * so a second herald (or anything else) on the same port would silently
 * share the connections.  A plain bind first tells whether the address is
 * taken.
 */
static bool
address_in_use(const char *addr, char **error_r)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;
	bool used = false;

	if (config_parse_listen(addr, &ss, error_r) < 0)
		return true;
	sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 && errno == EADDRINUSE) {
		*error_r = xasprintf("cannot listen on %s: address already "
		    "in use (is another server running?)", addr);
		used = true;
	}
	close(fd);
	return used;
}

static int
open_listener(const char *addr, char **error_r)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	if (config_parse_listen(addr, &ss, error_r) < 0)
		return -1;
	sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		*error_r = xasprintf("SO_REUSEPORT: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		*error_r = xasprintf("cannot listen on %s: %s", addr,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		*error_r = xasprintf("listen %s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A UNIX stream socket at path (lmtp_listen entries starting with '/'),
 * mode 0660, owned by the configured user when we run as root so that its
 * group can be given to the MTA.  A socket file left by an earlier run is
 * replaced; one a live process still accepts on is not.
 */
static int
open_unix_listener(const struct config *cfg, const char *path,
    char **error_r)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old_mask;
	int fd, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("socket path too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*error_r = xasprintf("cannot listen on %s: a file "
			    "that is not a socket is in the way", path);
			close(fd);
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
		    errno == EAGAIN) {
			*error_r = xasprintf("cannot listen on %s: another "
			    "process is using it", path);
			close(fd);
			return -1;
		}
		close(fd);
		(void)unlink(path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd < 0) {
			*error_r = xasprintf("socket: %s", strerror(errno));
			return -1;
		}
	}
	old_mask = umask(0117);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_mask);
	if (r < 0) {
		*error_r = xasprintf("cannot listen on %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(path, 0660) < 0)
		log_warn("chmod %s", path);
	if (geteuid() == 0 && cfg->user[0] != '\0') {
		struct passwd *pw = getpwnam(cfg->user);

		if (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) < 0)
			log_warn("chown %s", path);
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		*error_r = xasprintf("listen %s: %s", path, strerror(errno));
		close(fd);
		(void)unlink(path);
		return -1;
	}
	return fd;
}

static int
master_bind(struct master *m, char **error_r)
{
	const struct config *cfg = m->cfg;
	const struct config_strlist *lists[] = {
		&cfg->imap_listen, &cfg->imaps_listen, &cfg->lmtp_listen,
	};
	static const enum listen_kind list_kinds[] = {
		LISTEN_IMAP, LISTEN_IMAPS, LISTEN_LMTP,
	};
	static const char *const labels[] = {
		[LISTEN_IMAP] = "", [LISTEN_IMAPS] = " (TLS)",
		[LISTEN_LMTP] = " (LMTP)",
	};
	const char **addrs;
	unsigned a = 0;

	m->naddrs = 0;
	for (size_t l = 0; l < ARRAY_SIZE(lists); l++)
		m->naddrs += lists[l]->count;
	m->fds = xcalloc((size_t)m->naddrs * m->nworkers, sizeof(int));
	m->kinds = xcalloc(m->naddrs, sizeof(*m->kinds));
	m->unix_paths = xcalloc(m->naddrs + 1, sizeof(*m->unix_paths));
	addrs = xcalloc(m->naddrs + 1, sizeof(*addrs));
	for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
		for (unsigned i = 0; i < lists[l]->count; i++, a++) {
			addrs[a] = lists[l]->items[i];
			m->kinds[a] = list_kinds[l];
		}
	}
	for (a = 0; a < m->naddrs; a++) {
		if (m->kinds[a] == LISTEN_LMTP && addrs[a][0] == '/') {
			/* SO_REUSEPORT means nothing here: one socket,
			 * and every worker accepts on it. */
			int fd = open_unix_listener(cfg, addrs[a], error_r);

			if (fd < 0)
				goto fail;
			m->unix_paths[m->nunix++] = xstrdup(addrs[a]);
			for (unsigned w = 0; w < m->nworkers; w++)
				m->fds[w * m->naddrs + a] = fd;
			log_info("listening on %s%s", addrs[a],
			    labels[m->kinds[a]]);
			continue;
		}
		if (address_in_use(addrs[a], error_r))
			goto fail;
		for (unsigned w = 0; w < m->nworkers; w++) {
			int fd = open_listener(addrs[a], error_r);

			if (fd < 0)
				goto fail;
			m->fds[w * m->naddrs + a] = fd;
		}
		log_info("listening on %s%s", addrs[a], labels[m->kinds[a]]);
	}
	free(addrs);
	return 0;
fail:
	free(addrs);
	return -1;
}

/* At exit: everything the master allocated, so that a leak checker only
 * ever reports real leaks. */
static void
master_free(struct master *m)
{
	for (unsigned i = 0; i < m->nunix; i++)
		free(m->unix_paths[i]);
	free(m->unix_paths);
	free(m->fds);
	free(m->kinds);
	free(m->slots);
	if (m->tls_ctx != NULL)
		tls_ctx_free(m->tls_ctx);
	config_free(&m->cfg);
}

static void
master_unlink_sockets(struct master *m)
{
	for (unsigned i = 0; i < m->nunix; i++)
		(void)unlink(m->unix_paths[i]);
}

/* TLS material: generate a self-signed pair when the defaults are used and
 * nothing exists yet, then load it (before privileges are dropped). */
static int
master_tls(struct master *m, char **error_r)
{
	const struct config *cfg = m->cfg;
	char *def_cert = xasprintf("%s/tls/cert.pem", cfg->data_dir);
	char *def_key = xasprintf("%s/tls/key.pem", cfg->data_dir);
	bool defaults = strcmp(cfg->tls_cert, def_cert) == 0 &&
	    strcmp(cfg->tls_key, def_key) == 0;
	int ret = -1;

	if (defaults) {
		char *dir = dir_of(def_cert);
		bool created;

		struct stat st;

		if (mkdir_p(dir, 0700) < 0) {
			*error_r = xasprintf("cannot create %s: %s", dir,
			    strerror(errno));
			free(dir);
			goto out;
		}
		/* Root writes the key here: refuse a link to elsewhere. */
		if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
		    (st.st_uid != geteuid() && st.st_uid != 0)) {
			*error_r = xasprintf("%s must be a directory owned "
			    "by root or by the user running herald", dir);
			free(dir);
			goto out;
		}
		free(dir);
		if (tls_ensure_self_signed(def_cert, def_key, &created,
		    error_r) < 0)
			goto out;
		if (created)
			log_info("generated a self-signed certificate: %s",
			    def_cert);
	}
	m->tls_ctx = tls_ctx_new(cfg->tls_cert, cfg->tls_key, error_r);
	if (m->tls_ctx == NULL)
		goto out;
	ret = 0;
out:
	free(def_cert);
	free(def_key);
	return ret;
}

static void
user_exists_cb(const char *user, void *ctx)
{
	*(bool *)ctx = true;
}

/*
 * The embedded set-up's demo account: created with a random password the
 * first time the passwd file has no users; the password is kept next to
 * it (mode 0600) so every start can print it.
 */
static void
master_demo_user(struct master *m)
{
	const struct config *cfg = m->cfg;
	static const char alphabet[] =
	    "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	char *pwfile = xasprintf("%s/demo-password", cfg->data_dir);
	char password[17];
	bool any = false;
	char *error = NULL;
	FILE *f;

	if (!cfg->demo_user)
		goto out;
	(void)passwd_file_list(cfg->passwd_file, user_exists_cb, &any,
	    &error);
	free(error);
	error = NULL;
	if (!any) {
		unsigned char rnd[16];
		char *hash;
		const char *herr;
		int fd;

		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			fatal("getrandom");
		for (size_t i = 0; i < 16; i++)
			password[i] = alphabet[rnd[i] %
			    (sizeof(alphabet) - 1)];
		password[16] = '\0';
		hash = password_hash(password, NULL, &herr);
		if (hash == NULL ||
		    passwd_file_add(cfg->passwd_file, DEMO_USER, hash,
		    &error) < 0) {
			log_warnx("cannot create the demo user: %s",
			    error != NULL ? error : herr);
			free(error);
			free(hash);
			goto out;
		}
		free(hash);
		(void)unlink(pwfile);
		fd = open(pwfile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd >= 0) {
			(void)!write(fd, password, 16);
			(void)!write(fd, "\n", 1);
			close(fd);
		}
		log_info("created the demo user '%s'", DEMO_USER);
	}
	f = fopen(pwfile, "r");
	if (f != NULL) {
		if (fgets(password, sizeof(password), f) != NULL &&
		    strlen(password) == 16) {
			printf("\n  Demo account: user %s, password %s\n"
			    "  (from %s; remove it with: herald user del "
			    "%s)\n\n", DEMO_USER, password, pwfile,
			    DEMO_USER);
			fflush(stdout);
		}
		fclose(f);
	}
out:
	explicit_bzero(password, sizeof(password));
	free(pwfile);
}

/*
 * chown one path to uid:gid as root without following a symbolic link:
 * data_dir belongs to the service account, which could otherwise point a
 * link at /etc/shadow and have root hand it over.  A missing path is fine.
 */
static int
chown_nofollow(const char *path, uid_t uid, gid_t gid, bool dir,
    char **error_r)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
	    (dir ? O_DIRECTORY : 0));
	struct stat st;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		*error_r = xasprintf("%s: %s (a symbolic link is refused)",
		    path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && (st.st_uid != uid || st.st_gid != gid) &&
	    fchown(fd, uid, gid) < 0) {
		*error_r = xasprintf("chown %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* nftw() has no context argument. */
static uid_t walk_uid;
static gid_t walk_gid;
static const char *walk_skip;

static int
walk_chown(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	if (walk_skip != NULL && strcmp(path, walk_skip) == 0)
		return FTW_SKIP_SUBTREE;
	if (type == FTW_SL || (st->st_uid == walk_uid &&
	    st->st_gid == walk_gid))
		return FTW_CONTINUE;
	if (lchown(path, walk_uid, walk_gid) < 0)
		log_warn("chown %s", path);
	return FTW_CONTINUE;
}

/*
 * Hand data_dir to the service account.  The first time (data_dir still
 * owned by someone else, e.g. after running as root) everything under it
 * is walked, links not followed, tls/ left to root; later only the top
 * entries are checked, so a start stays cheap with millions of messages.
 */
static int
give_data_dir(const struct config *cfg, uid_t uid, gid_t gid,
    char **error_r)
{
	static const char *const subdirs[] = { "run", "tmp", "users" };
	struct stat st;
	char *tls;

	if (lstat(cfg->data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("%s: not a directory", cfg->data_dir);
		return -1;
	}
	if (st.st_uid != uid) {
		tls = xasprintf("%s/tls", cfg->data_dir);
		walk_uid = uid;
		walk_gid = gid;
		walk_skip = tls;
		if (nftw(cfg->data_dir, walk_chown, 64,
		    FTW_PHYS | FTW_ACTIONRETVAL) < 0)
			log_warn("walking %s", cfg->data_dir);
		walk_skip = NULL;
		free(tls);
	}
	if (chown_nofollow(cfg->data_dir, uid, gid, true, error_r) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		char *p = xasprintf("%s/%s", cfg->data_dir, subdirs[i]);
		int r = chown_nofollow(p, uid, gid, true, error_r);

		free(p);
		if (r < 0)
			return -1;
	}
	return chown_nofollow(cfg->passwd_file, uid, gid, false, error_r);
}

static int
master_drop_privileges(struct master *m, char **error_r)
{
	const struct config *cfg = m->cfg;
	struct passwd *pw;

	if (geteuid() != 0) {
		if (cfg->user[0] != '\0')
			log_info("not running as root: user=%s ignored",
			    cfg->user);
		return 0;
	}
	if (cfg->user[0] == '\0') {
		log_warnx("running as root: set 'user' to an unprivileged "
		    "account");
		return 0;
	}
	pw = getpwnam(cfg->user);
	if (pw == NULL) {
		*error_r = xasprintf("user '%s' does not exist", cfg->user);
		return -1;
	}
	/* The account must be able to use its data and read passwords. */
	if (give_data_dir(cfg, pw->pw_uid, pw->pw_gid, error_r) < 0)
		return -1;
	if (setgroups(1, &pw->pw_gid) < 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
		*error_r = xasprintf("cannot switch to user %s: %s",
		    cfg->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		*error_r = xasprintf("privileges could be regained");
		return -1;
	}
	prctl(PR_SET_DUMPABLE, 1);
	log_info("running as user %s", cfg->user);
	return 0;
}

static void
master_spawn(struct master *m, unsigned w)
{
	pid_t pid = fork();

	if (pid < 0) {
		log_warn("fork worker %u", w);
		m->slots[w].restart_at = time(NULL) + 1;
		return;
	}
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* Keep this worker's sockets only (and the shared ones). */
		for (unsigned o = 0; o < m->nworkers; o++) {
			if (o == w)
				continue;
			for (unsigned a = 0; a < m->naddrs; a++)
				if (m->fds[o * m->naddrs + a] !=
				    m->fds[w * m->naddrs + a])
					close(m->fds[o * m->naddrs + a]);
		}
		worker_process_main(m->src, m->cfg, w,
		    &m->fds[w * m->naddrs], m->kinds, m->naddrs, m->tls_ctx);
	}
	m->slots[w].pid = pid;
	m->slots[w].started = time(NULL);
	m->slots[w].restart_at = 0;
	log_info("worker %u started pid=%d", w, (int)pid);
}

static void
master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned w = 0; w < m->nworkers; w++) {
			time_t now = time(NULL);

			if (m->slots[w].pid != pid)
				continue;
			m->slots[w].pid = 0;
			if (m->stopping)
				break;
			if (WIFSIGNALED(status))
				log_errx("worker %u pid=%d killed by signal "
				    "%d: restarting", w, (int)pid,
				    WTERMSIG(status));
			else
				log_errx("worker %u pid=%d exited with "
				    "status %d: restarting", w, (int)pid,
				    WEXITSTATUS(status));
			m->slots[w].restart_at =
			    now - m->slots[w].started < WORKER_MIN_LIFETIME ?
			    now + 1 : now;
			break;
		}
	}
}

static void
master_signal_workers(struct master *m, int sig)
{
	for (unsigned w = 0; w < m->nworkers; w++)
		if (m->slots[w].pid > 0)
			kill(m->slots[w].pid, sig);
}

static unsigned
master_running(const struct master *m)
{
	unsigned n = 0;

	for (unsigned w = 0; w < m->nworkers; w++)
		if (m->slots[w].pid > 0)
			n++;
	return n;
}

static void
master_reload(struct master *m)
{
	char *error = NULL;
	struct config *cfg = config_source_load(m->src, &error);

	if (cfg == NULL) {
		log_errx("reload failed, keeping the old configuration: %s",
		    error);
		free(error);
		return;
	}
	/* Listeners and workers are fixed at start; the rest applies. */
	log_set_level(cfg->log_level);
	config_free(&m->cfg);
	m->cfg = cfg;
	log_info("configuration reloaded");
	master_signal_workers(m, SIGHUP);
}

int
serve_main(const struct config_source *src, struct config *cfg)
{
	struct master m = { .src = src, .cfg = cfg };
	sigset_t set;
	char *error = NULL;
	time_t stop_deadline = 0;

	log_init("master", cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	m.nworkers = cfg->workers;
	umask(077);
	if (mkdir_p(cfg->data_dir, 0700) < 0)
		fatal("cannot create data_dir %s", cfg->data_dir);
	{
		char *dir = dir_of(cfg->passwd_file);

		if (mkdir_p(dir, 0700) < 0)
			fatal("cannot create %s", dir);
		free(dir);
	}
	if (master_tls(&m, &error) < 0 || master_bind(&m, &error) < 0)
		fatalx("%s", error);
	master_demo_user(&m);
	if (master_drop_privileges(&m, &error) < 0)
		fatalx("%s", error);

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);

	m.slots = xcalloc(m.nworkers, sizeof(*m.slots));
	for (unsigned w = 0; w < m.nworkers; w++)
		master_spawn(&m, w);
	log_info("herald %s ready: %u workers", HERALD_VERSION_STRING,
	    m.nworkers);

	for (;;) {
		struct timespec ts = { 1, 0 };
		int sig = sigtimedwait(&set, NULL, &ts);
		time_t now = time(NULL);

		switch (sig) {
		case SIGCHLD:
			master_reap(&m);
			break;
		case SIGTERM:
		case SIGINT:
			if (!m.stopping) {
				log_info("shutting down");
				m.stopping = true;
				stop_deadline = now +
				    m.cfg->shutdown_timeout + 5;
				master_signal_workers(&m, SIGTERM);
			} else if (sig == SIGINT) {
				master_signal_workers(&m, SIGKILL);
			}
			break;
		case SIGHUP:
			master_reload(&m);
			break;
		default:
			break;
		}
		master_reap(&m);
		if (m.stopping) {
			if (master_running(&m) == 0)
				break;
			if (now >= stop_deadline)
				master_signal_workers(&m, SIGKILL);
			continue;
		}
		for (unsigned w = 0; w < m.nworkers; w++)
			if (m.slots[w].pid == 0 && m.slots[w].restart_at != 0 &&
			    now >= m.slots[w].restart_at)
				master_spawn(&m, w);
	}
	master_unlink_sockets(&m);
	log_info("stopped");
	master_free(&m);
	return 0;
}
