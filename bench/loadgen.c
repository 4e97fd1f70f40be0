/*
 * loadgen: IMAP load generator for the Herald-vs-Dovecot benchmarks
 * (bench/README in docs/BENCHMARKS.md).
 *
 * One parent forks P worker processes; each drives its share of the
 * connections with epoll and non-blocking sockets (plain or TLS), binding
 * source addresses 127.0.0.2 .. 127.0.0.254 in turn.  Workers write their
 * results to a file and talk to the parent over two pipes; the parent
 * aggregates and prints one JSON object on stdout.
 *
 * Modes
 *   idle    N connections LOGIN, SELECT INBOX, IDLE; print "READY {...}"
 *           and hold them until a line arrives on stdin (or -H seconds).
 *   push    idle, then (after stdin's line, with -W) make events: LMTP
 *           deliveries, flag changes, expunges; every idler timestamps
 *           "* n EXISTS" / "* n FETCH" / "* n EXPUNGE"; latencies out.
 *   mixed   C clients run sessions of weighted commands for D seconds.
 *   storm   C clients connect, LOGIN, LOGOUT, close, for D seconds.
 *   bigbox  one session runs the big-mailbox script, timing each command.
 *
 * Only 127.0.0.0/8 is ever connected to.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_PROCS 64
#define LG_RBUF_INIT 2048
#define LG_RBUF_MAX (64u << 20)
#define LG_MAX_EVENTS 100000

enum lg_mode { MODE_IDLE, MODE_PUSH, MODE_MIXED, MODE_STORM, MODE_BIGBOX };

enum lg_state {
	ST_FREE,
	ST_CONNECTING,
	ST_TLS,
	ST_GREETING,
	ST_LOGIN,
	ST_SELECT,
	ST_IDLE_WAIT,
	ST_IDLING,
	ST_RUN,         /* mixed / bigbox: a command is outstanding */
	ST_APPEND_WAIT, /* APPEND sent, waiting for "+" */
	ST_LOGOUT,
};

/* Commands of the mixed workload, in the order of their weights. */
enum lg_op {
	OP_LOGIN,
	OP_SELECT,
	OP_FETCH_FLAGS,
	OP_FETCH_HDR,
	OP_FETCH_BODY,
	OP_SEARCH,
	OP_STORE,
	OP_APPEND,
	OP_EXPUNGE_MARK,
	OP_EXPUNGE,
	OP_LOGOUT,
	OP_BIG, /* bigbox script step */
	OP_COUNT,
};

static const char *const op_names[OP_COUNT] = {
	"login", "select", "fetch_flags", "fetch_headers", "fetch_body",
	"search", "store", "append", "store_deleted", "expunge", "logout",
	"bigbox",
};

/* Per-session weights of the mixed workload (sum 100). */
static const struct {
	enum lg_op op;
	int weight;
} mixed_weights[] = {
	{OP_FETCH_FLAGS, 26}, {OP_FETCH_HDR, 20}, {OP_FETCH_BODY, 16},
	{OP_SEARCH, 8},       {OP_STORE, 18},     {OP_APPEND, 6},
	{OP_EXPUNGE_MARK, 6},
};

/* Notification kinds seen by idlers. */
enum lg_kind { KIND_EXISTS, KIND_FETCH, KIND_EXPUNGE, KIND_COUNT };
static const char *const kind_names[KIND_COUNT] = {"exists", "flags",
	"expunge"};

struct lg_conn {
	int fd;
	SSL *ssl;
	uint32_t gidx;     /* global connection index */
	uint32_t user;     /* user number */
	uint32_t tagn;
	uint32_t exists;
	uint32_t lit_left; /* bytes of a literal still to skip */
	uint8_t state;
	uint8_t op;
	bool want_out : 1;
	bool after_lit : 1; /* the next line continues a response */
	bool counted : 1;   /* already counted as established */
	int ops_left;       /* commands left in this mixed session */
	uint32_t append_len; /* APPEND literal announced, not yet sent */
	char *rbuf;
	uint32_t rlen, rcap;
	char *wbuf;
	uint32_t wlen, woff, wcap;
	uint64_t t_start; /* connection start */
	uint64_t t_cmd;   /* current command sent */
	uint64_t deadline;
};

/* One notification seen by an idler (written to the result file). */
struct lg_arrival {
	uint32_t user;
	uint32_t kind;
	uint64_t t;
};

/* Statistics of one worker process (written to the result file). */
struct lg_stats {
	uint64_t established;
	uint64_t failed;
	uint64_t fail_connect, fail_closed, fail_no, fail_timeout, fail_tls;
	uint64_t dropped; /* idlers closed by the server while held */
	uint64_t t_first_ok, t_last_ok;
	uint64_t ops_ok[OP_COUNT], ops_no[OP_COUNT], ops_bad[OP_COUNT];
	uint64_t ops_ns[OP_COUNT];
	uint64_t sessions, conns_done;
	uint64_t big_ns[16];
	uint64_t big_bytes[16];
	uint64_t big_status[16]; /* 0 ok, 1 no, 2 bad, 3 not run */
	uint64_t narrivals;
};

struct lg_opts {
	enum lg_mode mode;
	char host[64];
	int port;
	bool tls;
	int procs;
	int conns;
	int users;
	int user_base;
	char user_prefix[32];
	char password[64];
	int duration;
	int hold;
	int lmtp_port;
	int events;
	int gap_ms;
	int timeout;
	int inflight;
	bool per_user;     /* push: deliveries to every user (else user 0) */
	int event_users;   /* push: users sampled for flag/expunge events */
	bool wait_stdin;
	int src_first, src_last;
	char resdir[256];
	char maildir_fmt[256]; /* push via Maildir rename instead of LMTP */
	char search_header[64];
	char search_body[64];
	int msg_size;
};

static struct lg_opts o = {
	.host = "127.0.0.1",
	.port = 1143,
	.procs = 1,
	.conns = 1,
	.users = 1,
	.user_prefix = "user",
	.password = "secret",
	.duration = 10,
	.hold = 0,
	.lmtp_port = 2424,
	.events = 3,
	.gap_ms = 500,
	.timeout = 120,
	.inflight = 200,
	.event_users = 100,
	.src_first = 2,
	.src_last = 254,
	.resdir = "/tmp",
	.search_header = "needle-subject",
	.search_body = "needle-body",
	.msg_size = 3000,
};

static SSL_CTX *ssl_ctx;
static int epfd;
static struct lg_conn *conns;
static int nconns;
static struct lg_stats st;
static struct lg_arrival *arrivals;
static size_t narrivals, carrivals;
static int ctl_fd = -1;
static bool stop_flag;
static int big_step;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL && n != 0)
		die("out of memory");
	return p;
}

/* Cheap per-process PRNG (xorshift64*). */
static uint64_t rng_state = 88172645463325252ull;

static uint32_t
rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return n == 0 ? 0 :
	    (uint32_t)((rng_state * 2685821657736338717ull) >> 33) % n;
}

/* ---- Connections ---- */

static void
conn_events(struct lg_conn *c)
{
	struct epoll_event ev = {.data.ptr = c};

	ev.events = EPOLLIN | EPOLLRDHUP;
	if (c->want_out || c->state == ST_CONNECTING)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void conn_close(struct lg_conn *c);
static int conn_start(struct lg_conn *c);

static void
conn_fail(struct lg_conn *c, uint64_t *reason)
{
	if (c->state == ST_LOGOUT && reason == &st.fail_closed) {
		/* closed right after LOGOUT: that is the normal end */
		st.conns_done++;
		if (o.mode == MODE_BIGBOX)
			stop_flag = true;
	} else if (c->state == ST_IDLING && (o.mode == MODE_IDLE ||
	    o.mode == MODE_PUSH)) {
		st.dropped++;
	} else if (o.mode == MODE_IDLE || o.mode == MODE_PUSH ||
	    o.mode == MODE_BIGBOX || !stop_flag) {
		st.failed++;
		(*reason)++;
	}
	conn_close(c);
}

static void
conn_close(struct lg_conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	free(c->rbuf);
	free(c->wbuf);
	c->rbuf = c->wbuf = NULL;
	c->rlen = c->rcap = c->wlen = c->woff = c->wcap = 0;
	c->lit_left = 0;
	c->after_lit = false;
	c->want_out = false;
	c->state = ST_FREE;
}

/* Write what we can; returns -1 when the connection failed. */
static int
conn_flush(struct lg_conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n;
		size_t len = c->wlen - c->woff;

		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, c->wbuf + c->woff, (int)len);

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ)
					break;
				return -1;
			}
			n = r;
		} else {
			n = send(c->fd, c->wbuf + c->woff, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				return -1;
			}
		}
		c->woff += (uint32_t)n;
	}
	if (c->woff == c->wlen) {
		c->woff = c->wlen = 0;
		if (c->wcap > 65536) {
			free(c->wbuf);
			c->wbuf = NULL;
			c->wcap = 0;
		}
	}
	bool want = c->wlen > 0;

	if (want != c->want_out) {
		c->want_out = want;
		conn_events(c);
	}
	return 0;
}

static void
conn_put(struct lg_conn *c, const char *data, size_t len)
{
	if (c->wlen + len > c->wcap) {
		size_t cap = c->wcap == 0 ? 256 : c->wcap;

		while (cap < c->wlen + len)
			cap *= 2;
		c->wbuf = xrealloc(c->wbuf, cap);
		c->wcap = (uint32_t)cap;
	}
	memcpy(c->wbuf + c->wlen, data, len);
	c->wlen += (uint32_t)len;
}

static void __attribute__((format(printf, 3, 4)))
conn_cmd(struct lg_conn *c, enum lg_op op, const char *fmt, ...)
{
	char line[1024];
	int n;
	va_list ap;

	c->tagn++;
	n = snprintf(line, sizeof(line), "a%u ", c->tagn);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 2, fmt, ap);
	va_end(ap);
	line[n++] = '\r';
	line[n++] = '\n';
	conn_put(c, line, (size_t)n);
	c->op = (uint8_t)op;
	c->t_cmd = now_ns();
	c->deadline = c->t_cmd + (uint64_t)o.timeout * 1000000000u;
}

static char *user_name(uint32_t user, char *buf, size_t size);

static void
send_login(struct lg_conn *c)
{
	char name[64];

	conn_cmd(c, OP_LOGIN, "LOGIN %s %s", user_name(c->user, name,
	    sizeof(name)), o.password);
	c->state = ST_LOGIN;
}

static char *
user_name(uint32_t user, char *buf, size_t size)
{
	snprintf(buf, size, "%s%u", o.user_prefix, user);
	return buf;
}

/* A test message of about o.msg_size bytes. */
static size_t
make_message(char *buf, size_t size, const char *to, uint32_t seq)
{
	size_t n;

	n = (size_t)snprintf(buf, size,
	    "From: Load Generator <lg@bench.invalid>\r\n"
	    "To: <%s@bench.invalid>\r\n"
	    "Subject: bench message %u\r\n"
	    "Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
	    "Message-ID: <lg.%u.%" PRIu64 "@bench.invalid>\r\n"
	    "\r\n", to, seq, seq, now_ns());
	while (n + 80 < size && n < (size_t)o.msg_size) {
		n += (size_t)snprintf(buf + n, size - n,
		    "The quick brown fox jumps over the lazy dog %u.\r\n",
		    rnd(100000));
	}
	return n;
}

/* ---- Mode logic: what to send next ---- */

static void
mixed_next(struct lg_conn *c)
{
	uint32_t e = c->exists;
	uint32_t r = e > 0 ? 1 + rnd(e) : 1;
	int w = (int)rnd(100);
	enum lg_op op = OP_FETCH_FLAGS;

	if (c->ops_left-- <= 0 || stop_flag) {
		conn_cmd(c, OP_LOGOUT, "LOGOUT");
		c->state = ST_LOGOUT;
		return;
	}
	for (size_t i = 0; i < sizeof(mixed_weights) /
	    sizeof(mixed_weights[0]); i++) {
		if (w < mixed_weights[i].weight) {
			op = mixed_weights[i].op;
			break;
		}
		w -= mixed_weights[i].weight;
	}
	if (e == 0 && op != OP_APPEND)
		op = OP_APPEND;
	c->state = ST_RUN;
	switch (op) {
	case OP_FETCH_FLAGS:
		conn_cmd(c, op, "FETCH 1:* (UID FLAGS)");
		break;
	case OP_FETCH_HDR: {
		uint32_t hi = r + 4 > e ? e : r + 4;

		conn_cmd(c, op, "FETCH %u:%u (UID RFC822.SIZE "
		    "BODY.PEEK[HEADER])", r, hi);
		break;
	}
	case OP_FETCH_BODY:
		conn_cmd(c, op, "FETCH %u (UID BODY.PEEK[])", r);
		break;
	case OP_SEARCH:
		if (rnd(2) == 0)
			conn_cmd(c, op, "UID SEARCH UNSEEN");
		else
			conn_cmd(c, op, "UID SEARCH SUBJECT \"message %u\"",
			    rnd(50));
		break;
	case OP_STORE:
		conn_cmd(c, op, "STORE %u %cFLAGS (\\Seen)", r,
		    rnd(2) ? '+' : '-');
		break;
	case OP_APPEND: {
		char msg[8192];
		size_t n = make_message(msg, sizeof(msg), "mixed", rnd(1000));

		conn_cmd(c, op, "APPEND INBOX (\\Seen) {%zu}", n);
		c->state = ST_APPEND_WAIT;
		c->append_len = (uint32_t)n; /* sent on "+" */
		break;
	}
	case OP_EXPUNGE_MARK:
		conn_cmd(c, op, "STORE %u +FLAGS.SILENT (\\Deleted)", r);
		break;
	default:
		conn_cmd(c, OP_FETCH_FLAGS, "FETCH 1:* (UID FLAGS)");
		break;
	}
}

static void
bigbox_next(struct lg_conn *c)
{
	c->state = ST_RUN;
	switch (big_step) {
	case 0:
		conn_cmd(c, OP_BIG, "SELECT INBOX");
		break;
	case 1:
		conn_cmd(c, OP_BIG, "FETCH 1:* (UID FLAGS)");
		break;
	case 2:
		conn_cmd(c, OP_BIG, "UID SEARCH HEADER Subject \"%s\"",
		    o.search_header);
		break;
	case 3:
		conn_cmd(c, OP_BIG, "UID SEARCH BODY \"%s\"", o.search_body);
		break;
	case 4: {
		uint32_t lo = c->exists > 1000 ? c->exists / 2 : 1;
		uint32_t hi = lo + 999 > c->exists ? c->exists : lo + 999;

		conn_cmd(c, OP_BIG, "FETCH %u:%u (ENVELOPE)", lo, hi);
		break;
	}
	default:
		conn_cmd(c, OP_LOGOUT, "LOGOUT");
		c->state = ST_LOGOUT;
		break;
	}
}

static void
established(struct lg_conn *c)
{
	uint64_t t = now_ns();

	if (!c->counted) {
		c->counted = true;
		st.established++;
		if (st.t_first_ok == 0)
			st.t_first_ok = t;
		st.t_last_ok = t;
	}
}

static void
record_arrival(struct lg_conn *c, enum lg_kind kind)
{
	if (narrivals == carrivals) {
		carrivals = carrivals == 0 ? 4096 : carrivals * 2;
		arrivals = xrealloc(arrivals, carrivals * sizeof(*arrivals));
	}
	arrivals[narrivals].user = c->user;
	arrivals[narrivals].kind = kind;
	arrivals[narrivals].t = now_ns();
	narrivals++;
}

/* Untagged "* n WORD" parsing: returns n, sets *word. */
static bool
parse_untagged_num(const char *line, size_t len, uint32_t *n_r,
    const char **word_r)
{
	const char *p = line + 2, *end = line + len;
	uint32_t n = 0;

	if (p >= end || *p < '0' || *p > '9')
		return false;
	while (p < end && *p >= '0' && *p <= '9')
		n = n * 10 + (uint32_t)(*p++ - '0');
	if (p >= end || *p != ' ')
		return false;
	*n_r = n;
	*word_r = p + 1;
	return true;
}

static bool
word_is(const char *w, const char *end, const char *lit)
{
	size_t l = strlen(lit);

	return (size_t)(end - w) >= l && strncasecmp(w, lit, l) == 0 &&
	    ((size_t)(end - w) == l || w[l] == ' ' || w[l] == '\r');
}

static void
handle_tagged(struct lg_conn *c, int status)
{
	uint64_t dt = now_ns() - c->t_cmd;

	if (c->op < OP_COUNT) {
		if (status == 0)
			st.ops_ok[c->op]++;
		else if (status == 1)
			st.ops_no[c->op]++;
		else
			st.ops_bad[c->op]++;
		st.ops_ns[c->op] += dt;
	}
	switch (c->state) {
	case ST_LOGIN:
		if (status != 0) {
			conn_fail(c, &st.fail_no);
			return;
		}
		if (o.mode == MODE_STORM) {
			conn_cmd(c, OP_LOGOUT, "LOGOUT");
			c->state = ST_LOGOUT;
			return;
		}
		conn_cmd(c, OP_SELECT, "SELECT INBOX");
		c->state = ST_SELECT;
		if (o.mode == MODE_BIGBOX) {
			c->op = OP_BIG;
			c->state = ST_RUN;
			big_step = 0;
		}
		return;
	case ST_SELECT:
		if (status != 0) {
			conn_fail(c, &st.fail_no);
			return;
		}
		if (o.mode == MODE_MIXED) {
			st.sessions++;
			c->ops_left = 5 + (int)rnd(21);
			mixed_next(c);
			return;
		}
		conn_cmd(c, OP_COUNT, "IDLE");
		c->op = OP_COUNT;
		c->state = ST_IDLE_WAIT;
		return;
	case ST_RUN:
	case ST_APPEND_WAIT:
		if (o.mode == MODE_BIGBOX) {
			st.big_ns[big_step] = dt;
			st.big_status[big_step] = (uint64_t)status;
			big_step++;
			bigbox_next(c);
			return;
		}
		if (c->op == OP_EXPUNGE_MARK && status == 0) {
			conn_cmd(c, OP_EXPUNGE, "EXPUNGE");
			return;
		}
		mixed_next(c);
		return;
	case ST_LOGOUT:
		/* The main loop starts the next session. */
		st.conns_done++;
		conn_close(c);
		if (o.mode == MODE_BIGBOX)
			stop_flag = true;
		return;
	default:
		return;
	}
}

static void
handle_line(struct lg_conn *c, const char *line, size_t len, bool cont)
{
	const char *end = line + len;

	if (o.mode == MODE_BIGBOX && big_step < 16)
		st.big_bytes[big_step] += len;
	if (cont)
		return;
	if (len >= 2 && line[0] == '*' && line[1] == ' ') {
		uint32_t n;
		const char *w;

		if (c->state == ST_GREETING) {
			if (word_is(line + 2, end, "OK") ||
			    word_is(line + 2, end, "PREAUTH")) {
				send_login(c);
			} else {
				conn_fail(c, &st.fail_no);
			}
			return;
		}
		if (!parse_untagged_num(line, len, &n, &w))
			return;
		if (word_is(w, end, "EXISTS")) {
			c->exists = n;
			if (c->state == ST_IDLING)
				record_arrival(c, KIND_EXISTS);
		} else if (word_is(w, end, "EXPUNGE")) {
			if (c->exists > 0)
				c->exists--;
			if (c->state == ST_IDLING)
				record_arrival(c, KIND_EXPUNGE);
		} else if (c->state == ST_IDLING && word_is(w, end, "FETCH")) {
			record_arrival(c, KIND_FETCH);
		}
		return;
	}
	if (len >= 1 && line[0] == '+') {
		if (c->state == ST_IDLE_WAIT) {
			c->state = ST_IDLING;
			established(c);
		} else if (c->state == ST_APPEND_WAIT) {
			char msg[8192];
			size_t n = make_message(msg, sizeof(msg), "mixed",
			    rnd(1000));

			/* Same length as announced: pad or cut. */
			size_t want = c->append_len;

			if (n < want) {
				memset(msg + n, 'x', want - n);
			}
			n = want;
			conn_put(c, msg, n);
			conn_put(c, "\r\n", 2);
			c->state = ST_RUN;
		}
		return;
	}
	/* Tagged: "a<n> OK|NO|BAD" */
	if (len > 1 && line[0] == 'a') {
		const char *p = line + 1;
		uint32_t t = 0;

		while (p < end && *p >= '0' && *p <= '9')
			t = t * 10 + (uint32_t)(*p++ - '0');
		if (p >= end || *p != ' ' || t != c->tagn)
			return;
		p++;
		if (word_is(p, end, "OK"))
			handle_tagged(c, 0);
		else if (word_is(p, end, "NO"))
			handle_tagged(c, 1);
		else
			handle_tagged(c, 2);
	}
}

/* Split the read buffer into lines, skipping literals. */
static void
conn_parse(struct lg_conn *c)
{
	uint32_t off = 0;

	while (off < c->rlen && c->state != ST_FREE) {
		if (c->lit_left > 0) {
			uint32_t take = c->rlen - off;

			if (take > c->lit_left)
				take = c->lit_left;
			if (o.mode == MODE_BIGBOX && big_step < 16)
				st.big_bytes[big_step] += take;
			c->lit_left -= take;
			off += take;
			continue;
		}
		char *nl = memchr(c->rbuf + off, '\n', c->rlen - off);

		if (nl == NULL)
			break;
		size_t len = (size_t)(nl - (c->rbuf + off)) + 1;
		const char *line = c->rbuf + off;
		bool cont = c->after_lit;
		size_t l = len;

		/* Does the line end with a literal announcement {n}? */
		c->after_lit = false;
		if (l >= 3 && line[l - 2] == '\r' && line[l - 3] == '}') {
			const char *q = line + l - 4;
			uint32_t v = 0, mul = 1;

			while (q > line && *q >= '0' && *q <= '9') {
				v += (uint32_t)(*q - '0') * mul;
				mul *= 10;
				q--;
			}
			if (*q == '{' && q < line + l - 4) {
				c->lit_left = v;
				c->after_lit = true;
			}
		}
		off += (uint32_t)len;
		handle_line(c, line, len, cont);
	}
	if (c->state == ST_FREE)
		return;
	if (off > 0) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	/* Idle connections keep no read buffer. */
	if (c->rlen == 0 && c->rcap > LG_RBUF_INIT) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
}

static void
conn_read(struct lg_conn *c)
{
	for (;;) {
		if (c->rcap - c->rlen < 1024) {
			uint32_t cap = c->rcap == 0 ? LG_RBUF_INIT :
			    c->rcap * 2;

			if (cap > LG_RBUF_MAX) {
				conn_fail(c, &st.fail_closed);
				return;
			}
			c->rbuf = xrealloc(c->rbuf, cap);
			c->rcap = cap;
		}
		ssize_t n;

		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, c->rbuf + c->rlen,
			    (int)(c->rcap - c->rlen));

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE)
					return;
				conn_fail(c, &st.fail_closed);
				return;
			}
			n = r;
		} else {
			n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen,
			    0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n <= 0) {
				conn_fail(c, &st.fail_closed);
				return;
			}
		}
		c->rlen += (uint32_t)n;
		conn_parse(c);
		if (c->state == ST_FREE)
			return;
		if (conn_flush(c) < 0) {
			conn_fail(c, &st.fail_closed);
			return;
		}
		if ((size_t)n < 1024 && c->ssl == NULL)
			return;
	}
}

static void
conn_tls_step(struct lg_conn *c)
{
	int r = SSL_connect(c->ssl);

	if (r == 1) {
		c->state = ST_GREETING;
		if (c->want_out) {
			c->want_out = false;
			conn_events(c);
		}
		conn_read(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		bool want = e == SSL_ERROR_WANT_WRITE;

		if (want != c->want_out) {
			c->want_out = want;
			conn_events(c);
		}
		return;
	}
	conn_fail(c, &st.fail_tls);
}

static int
conn_start(struct lg_conn *c)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	struct sockaddr_in dst = {.sin_family = AF_INET};
	int one = 1;
	int span = o.src_last - o.src_first + 1;
	static uint32_t rot;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		st.failed++;
		st.fail_connect++;
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	    sizeof(one));
	src.sin_addr.s_addr = htonl(0x7f000000u |
	    (uint32_t)(o.src_first + (int)((c->gidx + rot++) %
	    (uint32_t)span)));
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0)
		die("bind: %s", strerror(errno));
	dst.sin_port = htons((uint16_t)o.port);
	if (inet_pton(AF_INET, o.host, &dst.sin_addr) != 1)
		die("bad host %s", o.host);
	c->state = ST_CONNECTING;
	c->t_start = now_ns();
	c->deadline = c->t_start + (uint64_t)o.timeout * 1000000000u;
	c->tagn = 0;
	c->exists = 0;
	c->counted = false;
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN,
		.data.ptr = c};

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl add: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, &st.fail_connect);
		return -1;
	}
	return 0;
}

static void
conn_connected(struct lg_conn *c)
{
	int err = 0;
	socklen_t l = sizeof(err);

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
	if (err != 0) {
		conn_fail(c, &st.fail_connect);
		return;
	}
	if (o.tls) {
		c->ssl = SSL_new(ssl_ctx);
		SSL_set_fd(c->ssl, c->fd);
		c->state = ST_TLS;
		conn_tls_step(c);
		return;
	}
	c->state = ST_GREETING;
	conn_events(c);
}

static void
conn_event(struct lg_conn *c, uint32_t ev)
{
	if (c->state == ST_CONNECTING) {
		conn_connected(c);
		return;
	}
	if (c->state == ST_TLS) {
		conn_tls_step(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
		conn_read(c);
		if (c->state == ST_FREE)
			return;
	}
	if (ev & EPOLLOUT) {
		if (conn_flush(c) < 0)
			conn_fail(c, &st.fail_closed);
	}
}

/* ---- Worker process ---- */

static void
write_results(int idx)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/lg.%d.%d", o.resdir, (int)getppid(),
	    idx);
	f = fopen(path, "w");
	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	st.narrivals = narrivals;
	fwrite(&st, sizeof(st), 1, f);
	if (narrivals > 0)
		fwrite(arrivals, sizeof(*arrivals), narrivals, f);
	fclose(f);
}

static int
worker_main(int idx, int first, int count, int ctl, int status)
{
	struct epoll_event evs[512];
	int active = 0, next = 0;
	bool ready_sent = false;
	uint64_t t_end = 0, t0 = now_ns(), t_scan = 0;
	bool holding = o.mode == MODE_IDLE || o.mode == MODE_PUSH;

	rng_state ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
	ctl_fd = ctl;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	conns = calloc((size_t)count, sizeof(*conns));
	nconns = count;
	for (int i = 0; i < count; i++) {
		conns[i].fd = -1;
		conns[i].gidx = (uint32_t)(first + i);
		conns[i].user = (uint32_t)(o.user_base +
		    (o.users > 0 ? (first + i) % o.users : 0));
	}
	struct epoll_event cev = {.events = EPOLLIN, .data.ptr = NULL};

	epoll_ctl(epfd, EPOLL_CTL_ADD, ctl, &cev);
	for (int k = 0; k < 16; k++)
		st.big_status[k] = 3;
	if (o.mode == MODE_MIXED || o.mode == MODE_STORM)
		t_end = t0 + (uint64_t)o.duration * 1000000000u;
	if (!holding) {
		for (int i = 0; i < count; i++)
			conn_start(&conns[i]);
		next = count;
	}
	for (;;) {
		uint64_t t = now_ns();

		/* Ramp up idlers with a bounded number in flight. */
		if (holding && !ready_sent) {
			int pending = 0;

			active = 0;
			for (int i = 0; i < next; i++) {
				if (conns[i].state != ST_FREE) {
					active++;
					if (conns[i].state != ST_IDLING)
						pending++;
				}
			}
			while (next < count && pending < o.inflight) {
				if (conn_start(&conns[next]) == 0)
					pending++;
				next++;
			}
			if (!ready_sent && next == count && pending == 0) {
				char line[256];
				int n = snprintf(line, sizeof(line),
				    "READY %" PRIu64 " %" PRIu64 " %" PRIu64
				    " %" PRIu64 "\n", st.established, st.failed,
				    st.t_first_ok, st.t_last_ok);

				if (write(status, line, (size_t)n) < 0)
					die("status pipe: %s", strerror(errno));
				ready_sent = true;
			}
		}
		/* Timeouts (not for idlers: they wait forever). */
		for (int i = 0; t >= t_scan && i < count; i++) {
			struct lg_conn *c = &conns[i];

			if (c->state != ST_FREE && c->state != ST_IDLING &&
			    t > c->deadline) {
				conn_fail(c, &st.fail_timeout);
				if (!holding && !stop_flag)
					conn_start(c);
			}
		}
		if (t >= t_scan)
			t_scan = t + 500000000u;
		if (t_end != 0 && t >= t_end && !stop_flag) {
			stop_flag = true;
			/* Stop counting: whatever is outstanding is cut. */
			break;
		}
		if (stop_flag && o.mode == MODE_BIGBOX)
			break;
		int n = epoll_wait(epfd, evs, 512, holding && !ready_sent ?
		    20 : 200);

		for (int i = 0; i < n; i++) {
			struct lg_conn *c = evs[i].data.ptr;

			if (c == NULL) {
				char b;

				if (read(ctl, &b, 1) <= 0 || b == 'R')
					goto out;
				continue;
			}
			if (c->state == ST_FREE)
				continue;
			conn_event(c, evs[i].events);
			/* Conns of mixed/storm restart themselves; a conn
			   closed on error restarts here. */
			if (c->state == ST_FREE && !holding && !stop_flag &&
			    o.mode != MODE_BIGBOX)
				conn_start(c);
		}
	}
out:
	(void)active;
	write_results(idx);
	for (int i = 0; i < count; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	if (write(status, "DONE\n", 5) < 0)
		return 1;
	return 0;
}

/* ---- Parent: blocking helpers for events ---- */

struct bconn {
	int fd;
	char buf[65536];
	size_t len;
};

static int
bconn_open(struct bconn *b, int port)
{
	struct sockaddr_in dst = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 30};
	int one = 1;

	b->len = 0;
	b->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->fd < 0)
		return -1;
	setsockopt(b->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	dst.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, o.host, &dst.sin_addr);
	if (connect(b->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		close(b->fd);
		b->fd = -1;
		return -1;
	}
	return 0;
}

/* Reads one line (without CRLF) into line; -1 on EOF/timeout. */
static int
bconn_line(struct bconn *b, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr(b->buf, '\n', b->len);

		if (nl != NULL) {
			size_t l = (size_t)(nl - b->buf);
			size_t c = l > 0 && b->buf[l - 1] == '\r' ? l - 1 : l;

			if (c >= size)
				c = size - 1;
			memcpy(line, b->buf, c);
			line[c] = '\0';
			memmove(b->buf, nl + 1, b->len - l - 1);
			b->len -= l + 1;
			return 0;
		}
		if (b->len == sizeof(b->buf))
			b->len = 0; /* drop an overlong line */
		ssize_t n = recv(b->fd, b->buf + b->len, sizeof(b->buf) -
		    b->len, 0);

		if (n <= 0)
			return -1;
		b->len += (size_t)n;
	}
}

static int
bconn_send(struct bconn *b, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(b->fd, data, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends an IMAP command, waits for its tagged reply; 0 = OK. */
static int
bconn_imap(struct bconn *b, const char *tag, const char *cmd)
{
	char line[4096];
	size_t tl = strlen(tag);

	if (bconn_send(b, tag, tl) < 0 || bconn_send(b, " ", 1) < 0 ||
	    bconn_send(b, cmd, strlen(cmd)) < 0 ||
	    bconn_send(b, "\r\n", 2) < 0)
		return -1;
	for (;;) {
		if (bconn_line(b, line, sizeof(line)) < 0)
			return -1;
		if (strncmp(line, tag, tl) == 0 && line[tl] == ' ')
			return strncmp(line + tl + 1, "OK", 2) == 0 ? 0 : 1;
	}
}

/* Reads an SMTP/LMTP reply (multi-line); returns its code. */
static int
bconn_smtp_reply(struct bconn *b)
{
	char line[1024];

	for (;;) {
		if (bconn_line(b, line, sizeof(line)) < 0)
			return -1;
		if (strlen(line) < 4 || line[3] != '-')
			return atoi(line);
	}
}

struct lg_event {
	int32_t user;  /* -1: all idlers (fan-out) */
	uint32_t kind;
	uint64_t t;
	bool scored;
	uint32_t credited;
};

static struct lg_event *events;
static size_t nevents, cevents;

static void
add_event(int32_t user, enum lg_kind kind, uint64_t t, bool scored)
{
	if (nevents == cevents) {
		cevents = cevents == 0 ? 1024 : cevents * 2;
		events = xrealloc(events, cevents * sizeof(*events));
	}
	events[nevents++] = (struct lg_event){user, kind, t, scored, 0};
}

/* Delivers one message to user by LMTP (session kept open in b). */
static int
lmtp_deliver(struct bconn *b, uint32_t user, bool fanout)
{
	char name[64], cmd[256], msg[8192];
	size_t n;

	user_name(user, name, sizeof(name));
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<lg@bench.invalid>\r\n"
	    "RCPT TO:<%s>\r\nDATA\r\n", name);
	if (bconn_send(b, cmd, strlen(cmd)) < 0)
		return -1;
	if (bconn_smtp_reply(b) != 250 || bconn_smtp_reply(b) != 250 ||
	    bconn_smtp_reply(b) != 354)
		return -1;
	n = make_message(msg, sizeof(msg) - 8, name, user);
	memcpy(msg + n, ".\r\n", 3);
	n += 3;
	if (bconn_send(b, msg, n) < 0)
		return -1;
	add_event(fanout ? -1 : (int32_t)user, KIND_EXISTS, now_ns(), true);
	return bconn_smtp_reply(b) == 250 ? 0 : -1;
}

/* Delivers by writing a Maildir file (tmp/ then rename into new/). */
static int
maildir_deliver(uint32_t user, bool fanout)
{
	char dir[512], tmp[700], dst[700], name[64], msg[8192];
	static unsigned seq;
	size_t n;
	int fd;

	user_name(user, name, sizeof(name));
	/* MAILDIR_FMT: "%s" stands for the user name. */
	const char *pos = strstr(o.maildir_fmt, "%s");

	if (pos == NULL)
		snprintf(dir, sizeof(dir), "%s", o.maildir_fmt);
	else
		snprintf(dir, sizeof(dir), "%.*s%s%s",
		    (int)(pos - o.maildir_fmt), o.maildir_fmt, name, pos + 2);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%ld.lg%u_%d.bench", dir,
	    (long)time(NULL), seq, (int)getpid());
	snprintf(dst, sizeof(dst), "%s/new/%ld.lg%u_%d.bench", dir,
	    (long)time(NULL), seq, (int)getpid());
	seq++;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		return -1;
	n = make_message(msg, sizeof(msg), name, user);
	if (write(fd, msg, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	close(fd);
	if (rename(tmp, dst) < 0)
		return -1;
	add_event(fanout ? -1 : (int32_t)user, KIND_EXISTS, now_ns(), true);
	return 0;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Flag changes and expunges made by other sessions: one session per
   sampled user, all opened first, then each phase on every session
   (so users are independent and phases are o.gap_ms apart). */
static int
imap_events(const uint32_t *users, int nusers, bool fanout, int count)
{
	struct bconn *b = calloc((size_t)nusers, sizeof(*b));
	char line[512], name[64], cmd[256];
	int fails = 0;
	bool *ok = calloc((size_t)nusers, sizeof(bool));

	for (int i = 0; i < nusers; i++) {
		if (bconn_open(&b[i], o.port) < 0) {
			fails++;
			continue;
		}
		snprintf(cmd, sizeof(cmd), "LOGIN %s %s", user_name(users[i],
		    name, sizeof(name)), o.password);
		if (bconn_line(&b[i], line, sizeof(line)) < 0 ||
		    bconn_imap(&b[i], "l", cmd) != 0 ||
		    bconn_imap(&b[i], "s", "SELECT INBOX") != 0) {
			fails++;
			close(b[i].fd);
			continue;
		}
		ok[i] = true;
	}
	for (int k = 0; k < count; k++) {
		static const char *const cmds[3] = {
			NULL, "STORE 1 +FLAGS.SILENT (\\Deleted)", "EXPUNGE"};
		static const enum lg_kind kinds[3] = {KIND_FETCH, KIND_FETCH,
			KIND_EXPUNGE};

		for (int ph = 0; ph < 3; ph++) {
			/* Message 1 is expunged each round: the next
			   round flags a new, unflagged message 1. */
			const char *c = ph == 0 ?
			    "STORE 1 +FLAGS (\\Flagged)" : cmds[ph];

			for (int i = 0; i < nusers; i++) {
				if (!ok[i])
					continue;
				/* The \Deleted change is seen too: unscored */
				add_event(fanout ? -1 : (int32_t)users[i],
				    kinds[ph], now_ns(), ph != 1);
				if (bconn_imap(&b[i], "e", c) != 0)
					fails++;
			}
			sleep_ms(ph == 1 ? o.gap_ms / 2 + 1 : o.gap_ms);
		}
	}
	for (int i = 0; i < nusers; i++) {
		if (!ok[i])
			continue;
		bconn_imap(&b[i], "z", "LOGOUT");
		close(b[i].fd);
	}
	free(b);
	free(ok);
	return fails;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return -1;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return (double)v[i] / 1e6;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen MODE [options]  (MODE: idle push mixed storm "
	    "bigbox)\n"
	    "  -h HOST (127.x only)  -p PORT  -t (TLS)  -P PROCS  -n CONNS\n"
	    "  -u USERS  -b USER_BASE  -f USER_PREFIX (user)  -w PASSWORD\n"
	    "  -d SECONDS (mixed/storm)  -H HOLD_SECONDS (idle, 0 = stdin)\n"
	    "  -W (push: wait for a stdin line before the events)\n"
	    "  -l LMTP_PORT  -M MAILDIR_FMT (deliver by rename, %%s = user)\n"
	    "  -e EVENTS  -g GAP_MS  -x (push: per-user deliveries)\n"
	    "  -E EVENT_USERS  -T TIMEOUT  -i INFLIGHT  -r RESULT_DIR\n"
	    "  -S SUBJECT_NEEDLE  -B BODY_NEEDLE  -z MSG_SIZE\n");
	exit(2);
}

static void
parse_args(int argc, char **argv)
{
	int ch;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "idle") == 0)
		o.mode = MODE_IDLE;
	else if (strcmp(argv[1], "push") == 0)
		o.mode = MODE_PUSH;
	else if (strcmp(argv[1], "mixed") == 0)
		o.mode = MODE_MIXED;
	else if (strcmp(argv[1], "storm") == 0)
		o.mode = MODE_STORM;
	else if (strcmp(argv[1], "bigbox") == 0)
		o.mode = MODE_BIGBOX;
	else
		usage();
	optind = 2;
	while ((ch = getopt(argc, argv,
	    "h:p:tP:n:u:b:f:w:d:H:Wl:M:e:g:xE:T:i:r:S:B:z:")) != -1) {
		switch (ch) {
		case 'h': snprintf(o.host, sizeof(o.host), "%s", optarg); break;
		case 'p': o.port = atoi(optarg); break;
		case 't': o.tls = true; break;
		case 'P': o.procs = atoi(optarg); break;
		case 'n': o.conns = atoi(optarg); break;
		case 'u': o.users = atoi(optarg); break;
		case 'b': o.user_base = atoi(optarg); break;
		case 'f':
			snprintf(o.user_prefix, sizeof(o.user_prefix), "%s",
			    optarg);
			break;
		case 'w':
			snprintf(o.password, sizeof(o.password), "%s", optarg);
			break;
		case 'd': o.duration = atoi(optarg); break;
		case 'H': o.hold = atoi(optarg); break;
		case 'W': o.wait_stdin = true; break;
		case 'l': o.lmtp_port = atoi(optarg); break;
		case 'M':
			snprintf(o.maildir_fmt, sizeof(o.maildir_fmt), "%s",
			    optarg);
			break;
		case 'e': o.events = atoi(optarg); break;
		case 'g': o.gap_ms = atoi(optarg); break;
		case 'x': o.per_user = true; break;
		case 'E': o.event_users = atoi(optarg); break;
		case 'T': o.timeout = atoi(optarg); break;
		case 'i': o.inflight = atoi(optarg); break;
		case 'r':
			snprintf(o.resdir, sizeof(o.resdir), "%s", optarg);
			break;
		case 'S':
			snprintf(o.search_header, sizeof(o.search_header),
			    "%s", optarg);
			break;
		case 'B':
			snprintf(o.search_body, sizeof(o.search_body), "%s",
			    optarg);
			break;
		case 'z': o.msg_size = atoi(optarg); break;
		default: usage();
		}
	}
	if (strncmp(o.host, "127.", 4) != 0)
		die("only 127.0.0.0/8 may be used");
	if (o.procs < 1 || o.procs > LG_MAX_PROCS || o.conns < 1)
		die("bad -P or -n");
	if (o.mode == MODE_BIGBOX)
		o.procs = o.conns = 1;
	if (o.users < 1)
		o.users = 1;
	if (o.src_first < 1 || o.src_last > 254 || o.src_first > o.src_last)
		die("bad source range");
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	if ((rlim_t)(o.conns / o.procs + 64) > rl.rlim_cur)
		die("%d connections per process exceed the open-file limit "
		    "%lu: use more -P", o.conns / o.procs + 1,
		    (unsigned long)rl.rlim_cur);
}

/* Waits until every child has written a line starting with want. */
static int
wait_children(int *status_fds, int procs, const char *want, char **lines,
    int timeout_s)
{
	int got = 0;
	uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;
	bool *done = calloc((size_t)procs, sizeof(bool));

	while (got < procs && now_ns() < deadline) {
		struct pollfd pfd[LG_MAX_PROCS];

		for (int i = 0; i < procs; i++) {
			pfd[i].fd = done[i] ? -1 : status_fds[i];
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)procs, 1000) <= 0)
			continue;
		for (int i = 0; i < procs; i++) {
			char buf[256];
			ssize_t n;

			if (pfd[i].fd < 0 || !(pfd[i].revents &
			    (POLLIN | POLLHUP)))
				continue;
			n = read(status_fds[i], buf, sizeof(buf) - 1);
			if (n <= 0) {
				done[i] = true;
				got++;
				continue;
			}
			buf[n] = '\0';
			if (strncmp(buf, want, strlen(want)) == 0) {
				if (lines != NULL)
					lines[i] = strdup(buf);
				done[i] = true;
				got++;
			}
		}
	}
	free(done);
	return got == procs ? 0 : -1;
}

static void
print_ops(const struct lg_stats *t, double secs)
{
	uint64_t ok = 0, no = 0, bad = 0;

	printf("\"ops\": {");
	for (int i = 0; i < OP_COUNT; i++) {
		uint64_t all = t->ops_ok[i] + t->ops_no[i] + t->ops_bad[i];

		ok += t->ops_ok[i];
		no += t->ops_no[i];
		bad += t->ops_bad[i];
		printf("%s\"%s\": {\"ok\": %" PRIu64 ", \"no\": %" PRIu64
		    ", \"bad\": %" PRIu64 ", \"avg_ms\": %.3f}", i ? ", " : "",
		    op_names[i], t->ops_ok[i], t->ops_no[i], t->ops_bad[i],
		    all ? (double)t->ops_ns[i] / (double)all / 1e6 : 0.0);
	}
	printf("}, \"ok\": %" PRIu64 ", \"no\": %" PRIu64 ", \"bad\": %" PRIu64
	    ", \"cmds_per_s\": %.1f, \"ok_per_s\": %.1f", ok, no, bad,
	    (double)(ok + no + bad) / secs, (double)ok / secs);
}

int
main(int argc, char **argv)
{
	int ctl[LG_MAX_PROCS], status[LG_MAX_PROCS];
	pid_t pids[LG_MAX_PROCS];
	char *ready[LG_MAX_PROCS] = {0};
	struct lg_stats tot = {0};
	uint64_t t0;
	int push_fails = 0;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (o.tls) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS |
		    SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
	}
	mkdir(o.resdir, 0700);
	t0 = now_ns();
	for (int i = 0; i < o.procs; i++) {
		int cp[2], sp[2];
		int first = (int)((int64_t)o.conns * i / o.procs);
		int last = (int)((int64_t)o.conns * (i + 1) / o.procs);

		if (pipe2(cp, O_CLOEXEC) < 0 || pipe2(sp, O_CLOEXEC) < 0)
			die("pipe: %s", strerror(errno));
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork: %s", strerror(errno));
		if (pids[i] == 0) {
			close(cp[1]);
			close(sp[0]);
			_exit(worker_main(i, first, last - first, cp[0],
			    sp[1]));
		}
		close(cp[0]);
		close(sp[1]);
		ctl[i] = cp[1];
		status[i] = sp[0];
	}

	bool holding = o.mode == MODE_IDLE || o.mode == MODE_PUSH;
	double est_s = 0;

	if (holding) {
		uint64_t ok = 0, fail = 0, tlast = 0;
		int r = wait_children(status, o.procs, "READY", ready,
		    o.timeout + 600);

		for (int i = 0; i < o.procs; i++) {
			uint64_t a = 0, b = 0, c = 0, d = 0;

			if (ready[i] != NULL)
				sscanf(ready[i], "READY %" SCNu64 " %" SCNu64
				    " %" SCNu64 " %" SCNu64, &a, &b, &c, &d);
			ok += a;
			fail += b;
			if (d > tlast)
				tlast = d;
		}
		est_s = tlast > t0 ? (double)(tlast - t0) / 1e9 : 0;
		printf("READY {\"established\": %" PRIu64 ", \"failed\": %"
		    PRIu64 ", \"establish_s\": %.3f, \"complete\": %s}\n", ok,
		    fail, est_s, r == 0 ? "true" : "false");
		fflush(stdout);
		if (o.mode == MODE_IDLE) {
			if (o.hold > 0) {
				sleep((unsigned)o.hold);
			} else {
				char line[64];

				if (fgets(line, sizeof(line), stdin) == NULL) {
					/* stdin closed: stop */
				}
			}
		} else {
			if (o.wait_stdin) {
				char line[64];

				if (fgets(line, sizeof(line), stdin) == NULL) {
					/* go on */
				}
			}
			/* Push events. */
			struct bconn lb = {.fd = -1};
			bool use_lmtp = o.maildir_fmt[0] == '\0';
			int nusers = o.per_user ? o.users : 1;

			if (use_lmtp) {
				if (bconn_open(&lb, o.lmtp_port) < 0 ||
				    bconn_smtp_reply(&lb) != 220 ||
				    bconn_send(&lb, "LHLO loadgen\r\n", 14) < 0 ||
				    bconn_smtp_reply(&lb) != 250)
					push_fails = -1;
			}
			for (int k = 0; k < o.events && push_fails >= 0; k++) {
				for (int u = 0; u < nusers; u++) {
					int r2 = use_lmtp ?
					    lmtp_deliver(&lb, (uint32_t)(
					    o.user_base + u), !o.per_user) :
					    maildir_deliver((uint32_t)(
					    o.user_base + u), !o.per_user);

					if (r2 < 0) {
						push_fails++;
						if (use_lmtp) {
							/* reopen the session */
							close(lb.fd);
							if (bconn_open(&lb,
							    o.lmtp_port) < 0 ||
							    bconn_smtp_reply(
							    &lb) != 220 ||
							    bconn_send(&lb,
							    "LHLO lg\r\n", 9)
							    < 0 ||
							    bconn_smtp_reply(
							    &lb) != 250) {
								push_fails = -1;
								break;
							}
						}
					}
				}
				if (!o.per_user)
					sleep_ms(o.gap_ms);
			}
			sleep_ms(o.gap_ms);
			if (lb.fd >= 0) {
				bconn_send(&lb, "QUIT\r\n", 6);
				close(lb.fd);
			}
			/* Flag changes and expunges. */
			int eu = o.per_user ? (o.event_users < o.users ?
			    o.event_users : o.users) : 1;
			uint32_t *eus = calloc((size_t)eu, sizeof(uint32_t));

			for (int u = 0; u < eu; u++)
				eus[u] = (uint32_t)(o.user_base +
				    (int)((int64_t)u * o.users / eu));
			int imap_fails = imap_events(eus, eu, !o.per_user,
			    o.per_user ? 1 : o.events);

			free(eus);
			if (imap_fails > 0 && push_fails >= 0)
				push_fails += imap_fails;
			sleep_ms(1000 + o.gap_ms);
		}
		for (int i = 0; i < o.procs; i++)
			if (write(ctl[i], "R", 1) < 0)
				die("ctl: %s", strerror(errno));
	}
	wait_children(status, o.procs, "DONE", NULL, o.duration + 900);
	for (int i = 0; i < o.procs; i++)
		waitpid(pids[i], NULL, 0);
	double secs = (double)(now_ns() - t0) / 1e9;

	if (!holding && o.mode != MODE_BIGBOX)
		secs = o.duration;

	/* Aggregate. */
	uint64_t *lat[KIND_COUNT] = {0};
	size_t nlat[KIND_COUNT] = {0}, clat[KIND_COUNT] = {0};
	uint64_t *idlers_per_user = NULL;
	uint64_t stray = 0;
	int max_user = o.user_base + o.users;

	idlers_per_user = calloc((size_t)max_user + 1, sizeof(uint64_t));
	for (int i = 0; i < o.procs; i++) {
		char path[512];
		struct lg_stats s;
		FILE *f;

		snprintf(path, sizeof(path), "%s/lg.%d.%d", o.resdir,
		    (int)getpid(), i);
		f = fopen(path, "r");
		if (f == NULL || fread(&s, sizeof(s), 1, f) != 1) {
			fprintf(stderr, "loadgen: no results from process %d\n",
			    i);
			if (f != NULL)
				fclose(f);
			continue;
		}
		tot.established += s.established;
		tot.failed += s.failed;
		tot.fail_connect += s.fail_connect;
		tot.fail_closed += s.fail_closed;
		tot.fail_no += s.fail_no;
		tot.fail_timeout += s.fail_timeout;
		tot.fail_tls += s.fail_tls;
		tot.dropped += s.dropped;
		tot.sessions += s.sessions;
		tot.conns_done += s.conns_done;
		for (int k = 0; k < OP_COUNT; k++) {
			tot.ops_ok[k] += s.ops_ok[k];
			tot.ops_no[k] += s.ops_no[k];
			tot.ops_bad[k] += s.ops_bad[k];
			tot.ops_ns[k] += s.ops_ns[k];
		}
		for (int k = 0; k < 16; k++) {
			tot.big_ns[k] += s.big_ns[k];
			tot.big_bytes[k] += s.big_bytes[k];
			tot.big_status[k] += s.big_status[k];
		}
		for (uint64_t a = 0; a < s.narrivals; a++) {
			struct lg_arrival ar;

			if (fread(&ar, sizeof(ar), 1, f) != 1)
				break;
			/* Latest event of this kind for this user. */
			struct lg_event *best = NULL;

			for (size_t e = nevents; e-- > 0;) {
				struct lg_event *ev = &events[e];

				if (ev->kind != ar.kind || ev->t > ar.t)
					continue;
				if (ev->user != -1 &&
				    ev->user != (int32_t)ar.user)
					continue;
				best = ev;
				break;
			}
			if (best == NULL || !best->scored) {
				stray++;
				continue;
			}
			best->credited++;
			if (nlat[ar.kind] == clat[ar.kind]) {
				clat[ar.kind] = clat[ar.kind] ? clat[ar.kind] *
				    2 : 4096;
				lat[ar.kind] = xrealloc(lat[ar.kind],
				    clat[ar.kind] * sizeof(uint64_t));
			}
			lat[ar.kind][nlat[ar.kind]++] = ar.t - best->t;
		}
		fclose(f);
		unlink(path);
	}
	/* Idlers per user, to count missed notifications. */
	for (int g = 0; g < o.conns; g++)
		idlers_per_user[o.user_base + g % o.users]++;

	printf("{\"mode\": \"%s\", \"port\": %d, \"tls\": %s, \"procs\": %d, "
	    "\"conns\": %d, \"users\": %d, \"wall_s\": %.3f, ", argv[1],
	    o.port, o.tls ? "true" : "false", o.procs, o.conns, o.users, secs);
	printf("\"established\": %" PRIu64 ", \"failed\": %" PRIu64
	    ", \"fail_connect\": %" PRIu64 ", \"fail_closed\": %" PRIu64
	    ", \"fail_no\": %" PRIu64 ", \"fail_timeout\": %" PRIu64
	    ", \"fail_tls\": %" PRIu64 ", \"dropped\": %" PRIu64,
	    tot.established, tot.failed, tot.fail_connect, tot.fail_closed,
	    tot.fail_no, tot.fail_timeout, tot.fail_tls, tot.dropped);
	if (holding)
		printf(", \"establish_s\": %.3f", est_s);
	if (o.mode == MODE_PUSH) {
		printf(", \"push_fails\": %d, \"stray\": %" PRIu64
		    ", \"latency_ms\": {", push_fails, stray);
		for (int k = 0; k < KIND_COUNT; k++) {
			uint64_t expected = 0;

			for (size_t e = 0; e < nevents; e++) {
				if (events[e].kind != (uint32_t)k ||
				    !events[e].scored)
					continue;
				expected += events[e].user == -1 ?
				    (uint64_t)o.conns :
				    idlers_per_user[events[e].user];
			}
			if (lat[k] != NULL)
				qsort(lat[k], nlat[k], sizeof(uint64_t),
				    cmp_u64);
			printf("%s\"%s\": {\"n\": %zu, \"expected\": %" PRIu64
			    ", \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
			    "\"max\": %.3f}", k ? ", " : "", kind_names[k],
			    nlat[k], expected, pct(lat[k], nlat[k], 0.5),
			    pct(lat[k], nlat[k], 0.9),
			    pct(lat[k], nlat[k], 0.99),
			    nlat[k] ? (double)lat[k][nlat[k] - 1] / 1e6 : -1);
		}
		printf("}");
	}
	if (o.mode == MODE_MIXED) {
		printf(", \"sessions\": %" PRIu64 ", ", tot.sessions);
		print_ops(&tot, secs);
	}
	if (o.mode == MODE_STORM) {
		printf(", \"logins_ok\": %" PRIu64 ", \"conns_per_s\": %.1f",
		    tot.conns_done, (double)tot.conns_done / secs);
	}
	if (o.mode == MODE_BIGBOX) {
		static const char *const names[] = {"select", "fetch_uid_flags",
			"search_header", "search_body", "fetch_1000_envelopes"};

		printf(", \"steps\": {");
		for (int k = 0; k < 5; k++)
			printf("%s\"%s\": {\"ms\": %.3f, \"status\": \"%s\", "
			    "\"bytes\": %" PRIu64 "}", k ? ", " : "", names[k],
			    (double)tot.big_ns[k] / 1e6,
			    tot.big_status[k] == 0 ? "OK" :
			    tot.big_status[k] == 1 ? "NO" :
			    tot.big_status[k] == 2 ? "BAD" : "not run",
			    tot.big_bytes[k]);
		printf("}");
	}
	printf("}\n");
	return 0;
}
