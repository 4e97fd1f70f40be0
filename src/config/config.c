#include "config/config.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * The file syntax, shared by config_load_file() and config_set_kv():
 *
 *   - One "key = value" per line; whitespace around key and value is
 *     dropped.  Blank lines are fine.  A key given twice: the last wins.
 *   - '#' starts a comment at the start of a line, and in the middle of a
 *     line when it follows whitespace: "user = mail # x" sets "mail", but
 *     "user = a#b" sets "a#b".  A '#' before the '=' always starts one.
 *   - A value that starts with '"' runs to the next unescaped '"', keeping
 *     spaces and '#'; inside it \" and \\ stand for " and \.  Only a
 *     comment may follow the closing quote.  Unquoted, '"' and '\' are
 *     ordinary characters.
 *   - Control characters other than tab are refused everywhere, so that
 *     config_dump() always prints one line per option.
 *
 * config_set() takes the value verbatim: the shell already did the quoting.
 */

enum opt_type {
	OPT_STRING,
	OPT_PATH,	/* a string; config_finish() makes it absolute */
	OPT_STRLIST,	/* comma- and/or space-separated; "" = empty list */
	OPT_UINT,	/* unsigned, plain decimal */
	OPT_SIZE,	/* uint64_t bytes; suffix k/K, M, G (powers of 1024) */
	OPT_DURATION,	/* unsigned seconds; suffix s, m, h */
	OPT_BOOL,
	OPT_ENUM,	/* unsigned-sized enum; names[i] is the value i */
};

struct option {
	const char *name;
	enum opt_type type;
	size_t offset;
	const char *def;		/* parsed by config_new() */
	uint64_t min, max;		/* OPT_UINT, OPT_SIZE, OPT_DURATION */
	const char *const *names;	/* OPT_ENUM, NULL-terminated */
	const char *desc;
};

static const char *const log_level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
	NULL,
};

static const char *const plaintext_auth_names[] = {
	[CONFIG_PLAINTEXT_AUTH_NO] = "no",
	[CONFIG_PLAINTEXT_AUTH_LOOPBACK] = "loopback",
	[CONFIG_PLAINTEXT_AUTH_YES] = "yes",
	NULL,
};

/* OPT_ENUM fields are read and written as unsigned (GCC and clang give an
 * enum without negative values the type unsigned int). */
_Static_assert(sizeof(enum log_level) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum config_plaintext_auth) == sizeof(unsigned),
    "enum size");

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

/*
 * Offset of a field, refusing to compile if its type is not T: a row can
 * never write a uint64_t into an unsigned.
 */
#define FIELD(f, T)							\
	(offsetof(struct config, f) +					\
	    0 * sizeof(char[__builtin_types_compatible_p(		\
		__typeof__(((struct config *)0)->f), T) ? 1 : -1]))

#define O_STRING(f, def, desc) \
	{ #f, OPT_STRING, FIELD(f, char *), def, 0, 0, NULL, desc }
#define O_PATH(f, def, desc) \
	{ #f, OPT_PATH, FIELD(f, char *), def, 0, 0, NULL, desc }
#define O_STRLIST(f, def, desc) \
	{ #f, OPT_STRLIST, FIELD(f, struct config_strlist), def, 0, 0, \
	    NULL, desc }
#define O_UINT(f, def, min, max, desc) \
	{ #f, OPT_UINT, FIELD(f, unsigned), def, min, max, NULL, desc }
#define O_SIZE(f, def, min, max, desc) \
	{ #f, OPT_SIZE, FIELD(f, uint64_t), def, min, max, NULL, desc }
#define O_DURATION(f, def, min, max, desc) \
	{ #f, OPT_DURATION, FIELD(f, unsigned), def, min, max, NULL, desc }
#define O_BOOL(f, def, desc) \
	{ #f, OPT_BOOL, FIELD(f, bool), def, 0, 0, NULL, desc }
#define O_ENUM(f, T, names, def, desc) \
	{ #f, OPT_ENUM, FIELD(f, T), def, 0, 0, names, desc }

static const struct option options[] = {
	O_PATH(data_dir, "./var",
	    "directory for mail, state, TLS files and passwd"),
	O_PATH(tls_cert, "",
	    "PEM certificate chain; empty = DATA_DIR/tls/cert.pem"),
	O_PATH(tls_key, "",
	    "PEM private key; empty = DATA_DIR/tls/key.pem"),
	O_PATH(passwd_file, "",
	    "user database; empty = DATA_DIR/passwd"),

	O_STRLIST(imap_listen, "127.0.0.1:1143",
	    "IMAP (STARTTLS) addresses; empty = off"),
	O_STRLIST(imaps_listen, "127.0.0.1:1993",
	    "IMAPS (implicit TLS) addresses; empty = off"),
	O_STRLIST(lmtp_listen, "127.0.0.1:2424",
	    "LMTP addresses or UNIX socket paths (/...); empty = off"),

	O_UINT(workers, "0", 0, 64,
	    "worker processes; 0 = one per CPU core (at most 64)"),
	O_STRING(user, "",
	    "user to switch to after binding; empty = do not switch"),
	O_ENUM(log_level, enum log_level, log_level_names, "info",
	    "least important messages logged: error, warn, info, debug"),
	O_BOOL(demo_user, "yes",
	    "create the user \"demo\" on first start"),
	O_BOOL(fsync, "yes",
	    "fsync mail and index before acknowledging; no = tests only"),
	O_BOOL(fts_index_on_delivery, "yes",
	    "index the BODY text and Subject/From/To/Cc of delivered/"
	    "appended mail at once; no = at the first search"),

	O_ENUM(plaintext_auth, enum config_plaintext_auth,
	    plaintext_auth_names, "loopback",
	    "passwords without TLS: no, loopback (127/8, ::1) or yes"),
	O_UINT(auth_failure_delay_ms, "2000", 0, 60000,
	    "milliseconds before answering a failed login"),
	O_UINT(auth_throttle_failures, "10", 1, 1000000,
	    "failures from one IP in the window that start throttling"),
	O_DURATION(auth_throttle_window, "300", 1, 86400,
	    "window in which failures from one IP are counted"),
	O_DURATION(auth_throttle_delay_max, "15", 1, 3600,
	    "cap of the doubling delay for a throttled IP"),
	O_UINT(max_auth_failures, "3", 1, 1000,
	    "failed logins on one connection before BYE"),

	O_SIZE(max_line_length, "65536", 64, 16 * MIB,
	    "longest command line after login, literals excluded"),
	O_SIZE(max_literal_size, "1M", 0, GIB,
	    "largest literal after login (held in memory)"),
	O_SIZE(max_command_size, "2M", 64, 4 * GIB,
	    "largest command after login, text plus literals"),
	O_SIZE(max_message_size, "64M", 1, 64 * GIB,
	    "largest message APPEND accepts (streamed to a temp file)"),
	O_UINT(max_list_depth, "16", 1, 1000,
	    "deepest parenthesised list nesting after login"),
	O_UINT(max_command_args, "100000", 1, 10000000,
	    "most arguments in one command, all levels"),
	O_SIZE(preauth_max_line_length, "8192", 64, 16 * MIB,
	    "longest command line before login"),
	O_SIZE(preauth_max_literal_size, "8192", 0, 16 * MIB,
	    "largest literal before login"),
	O_UINT(preauth_max_list_depth, "2", 0, 1000,
	    "deepest list nesting before login; 0 = no lists"),
	O_UINT(max_bad_commands, "20", 1, 100000,
	    "BAD replies in a row before BYE"),

	O_UINT(max_connections, "20000", 1, 1000000,
	    "client connections per worker (IMAP, IMAPS, LMTP)"),
	O_SIZE(output_high_water, "64K", 1, GIB,
	    "queued output at which a connection stops reading commands"),
	O_SIZE(max_output_buffer, "16M", KIB, 4 * GIB,
	    "queued output at which a stuck client is disconnected"),
	O_DURATION(preauth_timeout, "60", 1, 86400,
	    "time to log in before the connection is closed"),
	O_DURATION(autologout_timeout, "1800", 1, 7 * 86400,
	    "idle time without a command before logout (RFC 9051: >= 30m)"),
	O_DURATION(shutdown_timeout, "10", 0, 3600,
	    "grace period for sessions after SIGTERM"),

	O_DURATION(idle_keepalive, "120", 1, 86400,
	    "interval of \"* OK Still here\" during IDLE"),
	O_DURATION(idle_max, "1800", 1, 7 * 86400,
	    "longest IDLE before the server ends it"),
	O_DURATION(idle_poll_interval, "30", 0, 86400,
	    "seconds between mtime checks of watched folders; 0 = off"),
	O_DURATION(idle_release, "10", 0, 86400,
	    "close an idling user's index after this quiet; 0 = never"),
};

static const struct option *
option_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
		if (strcmp(options[i].name, name) == 0)
			return &options[i];
	}
	return NULL;
}

/* The field of opt in cfg, as a T (const in OPT_CPTR). */
#define OPT_PTR(cfg, opt, T) \
	((__typeof__(T) *)(void *)((char *)(cfg) + (opt)->offset))
#define OPT_CPTR(cfg, opt, T) \
	((const __typeof__(T) *)(const void *)((const char *)(cfg) + \
	    (opt)->offset))

static void
strlist_clear(struct config_strlist *l)
{
	for (unsigned i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

/* Free whatever the field of opt owns. */
static void
option_clear(struct config *cfg, const struct option *opt)
{
	switch (opt->type) {
	case OPT_STRING:
	case OPT_PATH: {
		char **p = OPT_PTR(cfg, opt, char *);

		free(*p);
		*p = NULL;
		break;
	}
	case OPT_STRLIST:
		strlist_clear(OPT_PTR(cfg, opt, struct config_strlist));
		break;
	default:
		break;
	}
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Control characters other than tab. */
static bool
is_control(char c)
{
	return ((unsigned char)c < 0x20 && c != '\t') || c == 0x7f;
}

static const char *
find_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if (is_control(*s))
			return s;
	}
	return NULL;
}

static bool
parse_digits(const char *s, const char **end_r, uint64_t *v_r)
{
	uint64_t v = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return false;
	*end_r = p;
	*v_r = v;
	return true;
}

static char *
format_size(uint64_t v)
{
	if (v != 0 && v % GIB == 0)
		return xasprintf("%" PRIu64 "G", v / GIB);
	if (v != 0 && v % MIB == 0)
		return xasprintf("%" PRIu64 "M", v / MIB);
	if (v != 0 && v % KIB == 0)
		return xasprintf("%" PRIu64 "K", v / KIB);
	return xasprintf("%" PRIu64, v);
}

static char *
format_duration(uint64_t v)
{
	if (v != 0 && v % 3600 == 0)
		return xasprintf("%" PRIu64 "h", v / 3600);
	if (v != 0 && v % 60 == 0)
		return xasprintf("%" PRIu64 "m", v / 60);
	return xasprintf("%" PRIu64 "s", v);
}

static char *
format_number(const struct option *opt, uint64_t v)
{
	switch (opt->type) {
	case OPT_SIZE:
		return format_size(v);
	case OPT_DURATION:
		return format_duration(v);
	default:
		return xasprintf("%" PRIu64, v);
	}
}

/* Parse a number of opt's type, with its suffixes, and check the bounds. */
static int
parse_number(const struct option *opt, const char *value, uint64_t *v_r,
    char **error_r)
{
	const char *end;
	uint64_t v, mult = 1;
	char *lo, *hi;

	if (*value == '\0') {
		*error_r = xstrdup("missing value");
		return -1;
	}
	if (!parse_digits(value, &end, &v))
		goto bad;
	if (opt->type == OPT_SIZE && end[0] != '\0' && end[1] == '\0') {
		switch (end[0]) {
		case 'k':
		case 'K':
			mult = KIB;
			break;
		case 'M':
			mult = MIB;
			break;
		case 'G':
			mult = GIB;
			break;
		default:
			goto bad;
		}
		end++;
	} else if (opt->type == OPT_DURATION && end[0] != '\0' &&
	    end[1] == '\0') {
		switch (end[0]) {
		case 's':
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		default:
			goto bad;
		}
		end++;
	}
	if (*end != '\0')
		goto bad;
	if (v > UINT64_MAX / mult)
		goto range;
	v *= mult;
	if (v < opt->min || v > opt->max)
		goto range;
	*v_r = v;
	return 0;

bad:
	switch (opt->type) {
	case OPT_SIZE:
		*error_r = xasprintf("'%s' is not a size (a number with an "
		    "optional k, K, M or G suffix)", value);
		break;
	case OPT_DURATION:
		*error_r = xasprintf("'%s' is not a duration (seconds, or a "
		    "number with an s, m or h suffix)", value);
		break;
	default:
		*error_r = xasprintf("'%s' is not a number", value);
		break;
	}
	return -1;

range:
	lo = format_number(opt, opt->min);
	hi = format_number(opt, opt->max);
	*error_r = xasprintf("'%s' is out of range (%s to %s)", value, lo, hi);
	free(lo);
	free(hi);
	return -1;
}

static int
parse_bool(const char *value, bool *v_r, char **error_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(value, yes[i]) == 0) {
			*v_r = true;
			return 0;
		}
		if (strcmp(value, no[i]) == 0) {
			*v_r = false;
			return 0;
		}
	}
	*error_r = xasprintf("'%s' is not a boolean (use yes or no)", value);
	return -1;
}

static int
parse_enum(const struct option *opt, const char *value, unsigned *v_r,
    char **error_r)
{
	char *list, *tmp;

	for (unsigned i = 0; opt->names[i] != NULL; i++) {
		if (strcmp(value, opt->names[i]) == 0) {
			*v_r = i;
			return 0;
		}
	}
	list = xstrdup(opt->names[0]);
	for (unsigned i = 1; opt->names[i] != NULL; i++) {
		tmp = xasprintf("%s, %s", list, opt->names[i]);
		free(list);
		list = tmp;
	}
	*error_r = xasprintf("'%s' is not one of %s", value, list);
	free(list);
	return -1;
}

/* Split on runs of commas and blanks; items is always NULL-terminated. */
static void
parse_strlist(const char *value, struct config_strlist *l)
{
	const char *p = value, *start;
	unsigned n = 0;

	l->items = xcalloc(strlen(value) / 2 + 2, sizeof(*l->items));
	for (;;) {
		while (*p == ',' || is_space(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && *p != ',' && !is_space(*p))
			p++;
		l->items[n++] = xstrndup(start, (size_t)(p - start));
	}
	l->count = n;
}

/*
 * Set one option from its textual value.  On error the field is unchanged
 * and *error_r says what is wrong with the value, without naming the key.
 */
static int
option_set(struct config *cfg, const struct option *opt, const char *value,
    char **error_r)
{
	uint64_t num;
	unsigned e;
	bool b;

	if (find_control(value) != NULL) {
		*error_r = xstrdup("control character in value");
		return -1;
	}
	switch (opt->type) {
	case OPT_STRING:
	case OPT_PATH:
		option_clear(cfg, opt);
		*OPT_PTR(cfg, opt, char *) = xstrdup(value);
		return 0;
	case OPT_STRLIST:
		option_clear(cfg, opt);
		parse_strlist(value, OPT_PTR(cfg, opt, struct config_strlist));
		return 0;
	case OPT_UINT:
	case OPT_DURATION:
		if (parse_number(opt, value, &num, error_r) < 0)
			return -1;
		*OPT_PTR(cfg, opt, unsigned) = (unsigned)num;
		return 0;
	case OPT_SIZE:
		if (parse_number(opt, value, &num, error_r) < 0)
			return -1;
		*OPT_PTR(cfg, opt, uint64_t) = num;
		return 0;
	case OPT_BOOL:
		if (parse_bool(value, &b, error_r) < 0)
			return -1;
		*OPT_PTR(cfg, opt, bool) = b;
		return 0;
	case OPT_ENUM:
		if (parse_enum(opt, value, &e, error_r) < 0)
			return -1;
		*OPT_PTR(cfg, opt, unsigned) = e;
		return 0;
	}
	fatalx("config: option %s has an unknown type", opt->name);
}

/* Copy the field of opt from src to dst (which owns nothing there). */
static void
option_copy(struct config *dst, const struct config *src,
    const struct option *opt)
{
	switch (opt->type) {
	case OPT_STRING:
	case OPT_PATH:
		*OPT_PTR(dst, opt, char *) =
		    xstrdup(*OPT_CPTR(src, opt, char *));
		break;
	case OPT_STRLIST: {
		const struct config_strlist *s =
		    OPT_CPTR(src, opt, struct config_strlist);
		struct config_strlist *d =
		    OPT_PTR(dst, opt, struct config_strlist);

		d->items = xcalloc(s->count + 1, sizeof(*d->items));
		for (unsigned i = 0; i < s->count; i++)
			d->items[i] = xstrdup(s->items[i]);
		d->count = s->count;
		break;
	}
	case OPT_UINT:
	case OPT_DURATION:
	case OPT_ENUM:
		*OPT_PTR(dst, opt, unsigned) = *OPT_CPTR(src, opt, unsigned);
		break;
	case OPT_SIZE:
		*OPT_PTR(dst, opt, uint64_t) = *OPT_CPTR(src, opt, uint64_t);
		break;
	case OPT_BOOL:
		*OPT_PTR(dst, opt, bool) = *OPT_CPTR(src, opt, bool);
		break;
	}
}

struct config *
config_new(void)
{
	struct config *cfg = xmalloc(sizeof(*cfg));
	char *error;

	for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
		if (option_set(cfg, &options[i], options[i].def, &error) < 0)
			fatalx("config: bad default for %s: %s",
			    options[i].name, error);
	}
	cfg->source = xstrdup("");
	return cfg;
}

static struct config *
config_dup(const struct config *src)
{
	struct config *cfg = xmalloc(sizeof(*cfg));

	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		option_copy(cfg, src, &options[i]);
	cfg->source = xstrdup(src->source);
	return cfg;
}

void
config_free(struct config **cfgp)
{
	struct config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		option_clear(cfg, &options[i]);
	free(cfg->source);
	free(cfg);
	*cfgp = NULL;
}

static char *
trim(char *s)
{
	char *end;

	while (is_space(*s))
		s++;
	end = s + strlen(s);
	while (end > s && is_space(end[-1]))
		end--;
	*end = '\0';
	return s;
}

/*
 * Unquote and strip the comment from a value, in place (see the syntax at
 * the top).  s has no leading blanks.
 */
static int
parse_value(char *s, char **value_r, char **error_r)
{
	char *r, *w;

	if (*s != '"') {
		for (r = s; *r != '\0'; r++) {
			if (*r == '#' && (r == s || is_space(r[-1]))) {
				*r = '\0';
				break;
			}
		}
		*value_r = trim(s);
		return 0;
	}
	for (r = w = s + 1; *r != '"'; r++) {
		if (*r == '\0') {
			*error_r = xstrdup("missing closing '\"'");
			return -1;
		}
		if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
			r++;
		*w++ = *r;
	}
	*w = '\0';
	r = trim(r + 1);
	if (*r != '\0' && *r != '#') {
		*error_r = xasprintf("text after closing '\"': '%s'", r);
		return -1;
	}
	*value_r = s + 1;
	return 0;
}

enum line_result {
	LINE_EMPTY,
	LINE_SETTING,
	LINE_ERROR,
};

/*
 * Split a line (without its newline) into key and value, in place.  For
 * LINE_ERROR, *key_r is the key if one was found (else NULL) and *error_r
 * the message.
 */
static enum line_result
parse_line(char *line, char **key_r, char **value_r, char **error_r)
{
	char *key, *eq, *hash;

	*key_r = NULL;
	if (find_control(line) != NULL) {
		*error_r = xstrdup("control character in line");
		return LINE_ERROR;
	}
	key = trim(line);
	if (*key == '\0' || *key == '#')
		return LINE_EMPTY;
	eq = strchr(key, '=');
	hash = strchr(key, '#');
	if (hash != NULL && (eq == NULL || hash < eq)) {
		*hash = '\0';
		eq = NULL;
	}
	if (eq == NULL) {
		*error_r = xasprintf("missing '=' after '%s'", trim(key));
		return LINE_ERROR;
	}
	*eq = '\0';
	key = trim(key);
	if (*key == '\0') {
		*error_r = xstrdup("missing key before '='");
		return LINE_ERROR;
	}
	*key_r = key;
	if (parse_value(trim(eq + 1), value_r, error_r) < 0)
		return LINE_ERROR;
	return LINE_SETTING;
}

/* The absolute form of path against cwd, without leading "./" parts and
 * trailing slashes.  Not realpath(): the path need not exist yet. */
static char *
absolute_path(const char *path, const char *cwd)
{
	size_t len;
	char *abs;

	if (path[0] == '/') {
		abs = xstrdup(path);
	} else {
		while (path[0] == '.' && path[1] == '/') {
			path += 2;
			while (*path == '/')
				path++;
		}
		if (strcmp(path, ".") == 0 || *path == '\0')
			abs = xstrdup(cwd);
		else if (strcmp(cwd, "/") == 0)
			abs = xasprintf("/%s", path);
		else
			abs = xasprintf("%s/%s", cwd, path);
	}
	len = strlen(abs);
	while (len > 1 && abs[len - 1] == '/')
		abs[--len] = '\0';
	return abs;
}

static char *
current_dir(char **error_r)
{
	char *cwd = getcwd(NULL, 0);

	if (cwd == NULL)
		*error_r = xasprintf("cannot get the working directory: %s",
		    strerror(errno));
	return cwd;
}

int
config_load_file(struct config *cfg, const char *path, char **error_r)
{
	struct config *tmp, swap;
	const struct option *opt;
	char *line = NULL, *key, *value, *msg, *cwd;
	size_t size = 0;
	unsigned lineno = 0;
	ssize_t n;
	FILE *f;
	int ret = 0;

	if ((f = fopen(path, "r")) == NULL) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	/* Apply to a copy so that a failed load leaves cfg as it was. */
	tmp = config_dup(cfg);
	while (ret == 0 && (n = getline(&line, &size, f)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (strlen(line) != (size_t)n) {
			*error_r = xasprintf("%s:%u: NUL byte in line", path,
			    lineno);
			ret = -1;
			break;
		}
		switch (parse_line(line, &key, &value, &msg)) {
		case LINE_EMPTY:
			continue;
		case LINE_ERROR:
			if (key != NULL)
				*error_r = xasprintf("%s:%u: %s: %s", path,
				    lineno, key, msg);
			else
				*error_r = xasprintf("%s:%u: %s", path,
				    lineno, msg);
			free(msg);
			ret = -1;
			continue;
		case LINE_SETTING:
			break;
		}
		if ((opt = option_find(key)) == NULL) {
			*error_r = xasprintf("%s:%u: unknown key '%s'", path,
			    lineno, key);
			ret = -1;
		} else if (option_set(tmp, opt, value, &msg) < 0) {
			*error_r = xasprintf("%s:%u: %s: %s", path, lineno,
			    key, msg);
			free(msg);
			ret = -1;
		}
	}
	if (ret == 0 && ferror(f)) {
		*error_r = xasprintf("%s: read error: %s", path,
		    strerror(errno));
		ret = -1;
	}
	free(line);
	fclose(f);
	if (ret == 0) {
		/* Remember the file absolutely: a reload may run after a
		 * chdir(). */
		if ((cwd = current_dir(error_r)) == NULL) {
			ret = -1;
		} else {
			free(tmp->source);
			tmp->source = absolute_path(path, cwd);
			free(cwd);
			swap = *cfg;
			*cfg = *tmp;
			*tmp = swap;
		}
	}
	config_free(&tmp);
	return ret;
}

int
config_set(struct config *cfg, const char *key, const char *value,
    char **error_r)
{
	const struct option *opt;
	char *msg;

	if ((opt = option_find(key)) == NULL) {
		*error_r = xasprintf("-o %s: unknown key", key);
		return -1;
	}
	if (option_set(cfg, opt, value, &msg) < 0) {
		*error_r = xasprintf("-o %s: %s", key, msg);
		free(msg);
		return -1;
	}
	return 0;
}

int
config_set_kv(struct config *cfg, const char *kv, char **error_r)
{
	char *copy, *key, *value, *msg;
	int ret = -1;

	if (strchr(kv, '=') == NULL) {
		*error_r = xasprintf("-o %s: missing '='", kv);
		return -1;
	}
	copy = xstrdup(kv);
	switch (parse_line(copy, &key, &value, &msg)) {
	case LINE_EMPTY:
		*error_r = xasprintf("-o '%s': expected key=value", kv);
		break;
	case LINE_ERROR:
		if (key != NULL)
			*error_r = xasprintf("-o %s: %s", key, msg);
		else
			*error_r = xasprintf("-o '%s': %s", kv, msg);
		free(msg);
		break;
	case LINE_SETTING:
		ret = config_set(cfg, key, value, error_r);
		break;
	}
	free(copy);
	return ret;
}

static void
make_absolute(char **pathp, const char *cwd)
{
	char *abs = absolute_path(*pathp, cwd);

	free(*pathp);
	*pathp = abs;
}

static bool
sockaddr_equal(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	size_t len;

	if (a->ss_family != b->ss_family)
		return false;
	len = a->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	return memcmp(a, b, len) == 0;
}

/* A UNIX socket path of lmtp_listen (item i): absolute, short enough for
 * sockaddr_un, listed once. */
static int
check_unix_listener(const struct config_strlist *l, unsigned i,
    char **error_r)
{
	const char *path = l->items[i];

	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		*error_r = xasprintf("lmtp_listen: socket path '%s' is too "
		    "long", path);
		return -1;
	}
	for (unsigned j = 0; j < i; j++) {
		if (strcmp(l->items[j], path) == 0) {
			*error_r = xasprintf("lmtp_listen: socket path '%s' "
			    "is listed twice", path);
			return -1;
		}
	}
	return 0;
}

/* Check every listen address, refusing one given twice. */
static int
check_listeners(const struct config *cfg, char **error_r)
{
	const struct config_strlist *lists[] = {
		&cfg->imap_listen, &cfg->imaps_listen, &cfg->lmtp_listen,
	};
	const char *names[] = { "imap_listen", "imaps_listen", "lmtp_listen" };
	struct sockaddr_storage *addrs;
	unsigned n = 0;
	char *msg;
	int ret = 0;

	addrs = xcalloc(cfg->imap_listen.count + cfg->imaps_listen.count +
	    cfg->lmtp_listen.count + 1, sizeof(*addrs));
	for (size_t l = 0; l < ARRAY_SIZE(lists) && ret == 0; l++) {
		for (unsigned i = 0; i < lists[l]->count && ret == 0; i++) {
			const char *s = lists[l]->items[i];

			if (lists[l] == &cfg->lmtp_listen && s[0] == '/') {
				ret = check_unix_listener(&cfg->lmtp_listen,
				    i, error_r);
				continue;
			}
			if (config_parse_listen(s, &addrs[n], &msg) < 0) {
				*error_r = xasprintf("%s: %s", names[l], msg);
				free(msg);
				ret = -1;
				break;
			}
			for (unsigned j = 0; j < n; j++) {
				if (sockaddr_equal(&addrs[j], &addrs[n])) {
					*error_r = xasprintf("%s: address "
					    "'%s' is listed twice", names[l],
					    s);
					ret = -1;
					break;
				}
			}
			n++;
		}
	}
	free(addrs);
	if (ret == 0 &&
	    cfg->imap_listen.count + cfg->imaps_listen.count == 0) {
		*error_r = xstrdup("no listener: imap_listen and "
		    "imaps_listen are both empty");
		ret = -1;
	}
	return ret;
}

int
config_finish(struct config *cfg, char **error_r)
{
	char *cwd;
	long cores;

	if (cfg->data_dir[0] == '\0') {
		*error_r = xstrdup("data_dir: must not be empty");
		return -1;
	}
	if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
		*error_r = xstrdup("tls_cert and tls_key must both be set "
		    "or both be empty");
		return -1;
	}
	if (check_listeners(cfg, error_r) < 0)
		return -1;
	if (cfg->autologout_timeout < 1) {
		*error_r = xstrdup("autologout_timeout: must be at least 1s");
		return -1;
	}

	if ((cwd = current_dir(error_r)) == NULL)
		return -1;
	make_absolute(&cfg->data_dir, cwd);
	if (cfg->tls_cert[0] == '\0') {
		free(cfg->tls_cert);
		cfg->tls_cert = xasprintf("%s/tls/cert.pem", cfg->data_dir);
		free(cfg->tls_key);
		cfg->tls_key = xasprintf("%s/tls/key.pem", cfg->data_dir);
	}
	if (cfg->passwd_file[0] == '\0') {
		free(cfg->passwd_file);
		cfg->passwd_file = xasprintf("%s/passwd", cfg->data_dir);
	}
	make_absolute(&cfg->tls_cert, cwd);
	make_absolute(&cfg->tls_key, cwd);
	make_absolute(&cfg->passwd_file, cwd);
	free(cwd);

	if (cfg->workers == 0) {
		cores = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->workers = cores < 1 ? 1 : cores > 64 ? 64 :
		    (unsigned)cores;
	}
	if (cfg->workers < 1 || cfg->workers > 64) {
		*error_r = xasprintf("workers: %u is out of range (1 to 64)",
		    cfg->workers);
		return -1;
	}
	return 0;
}

/* Quote s for the file syntax if it would not read back as itself. */
static char *
quote_if_needed(const char *s, bool list)
{
	bool need = *s == '\0' || *s == '"' || strchr(s, '#') != NULL;
	char *out, *w;

	if (!list && (is_space(*s) || strpbrk(s, " \t") != NULL))
		need = true;
	if (!need)
		return xstrdup(s);
	out = w = xmalloc(strlen(s) * 2 + 3);
	*w++ = '"';
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			*w++ = '\\';
		*w++ = *s;
	}
	*w++ = '"';
	return out;
}

static char *
format_value(const struct config *cfg, const struct option *opt)
{
	switch (opt->type) {
	case OPT_STRING:
	case OPT_PATH:
		return quote_if_needed(*OPT_CPTR(cfg, opt, char *), false);
	case OPT_STRLIST: {
		const struct config_strlist *l =
		    OPT_CPTR(cfg, opt, struct config_strlist);
		size_t len = 1;
		char *joined, *out;

		for (unsigned i = 0; i < l->count; i++)
			len += strlen(l->items[i]) + 2;
		joined = xmalloc(len);
		for (unsigned i = 0; i < l->count; i++) {
			if (i > 0)
				strcat(joined, ", ");
			strcat(joined, l->items[i]);
		}
		out = quote_if_needed(joined, true);
		free(joined);
		return out;
	}
	case OPT_UINT:
	case OPT_DURATION:
		return format_number(opt, *OPT_CPTR(cfg, opt, unsigned));
	case OPT_SIZE:
		return format_number(opt, *OPT_CPTR(cfg, opt, uint64_t));
	case OPT_BOOL:
		return xstrdup(*OPT_CPTR(cfg, opt, bool) ? "yes" : "no");
	case OPT_ENUM:
		return xstrdup(opt->names[*OPT_CPTR(cfg, opt, unsigned)]);
	}
	fatalx("config: option %s has an unknown type", opt->name);
}

void
config_dump(const struct config *cfg, FILE *out)
{
	char *value;

	fprintf(out, "# herald: effective configuration\n");
	if (cfg->source[0] == '\0') {
		fprintf(out, "# source: built-in defaults\n");
	} else {
		/* A file name may hold a newline; keep the comment one line. */
		fprintf(out, "# source: ");
		for (const char *p = cfg->source; *p != '\0'; p++)
			fputc(is_control(*p) ? '?' : *p, out);
		fprintf(out, "\n");
	}
	for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
		value = format_value(cfg, &options[i]);
		fprintf(out, "%s = %s\n", options[i].name, value);
		free(value);
	}
}

int
config_parse_listen(const char *s, struct sockaddr_storage *ss,
    char **error_r)
{
	struct addrinfo hints, *res = NULL;
	const char *colon, *port, *why;
	char *host;
	uint64_t num;
	const char *end;
	int family, rc;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL) {
			why = "missing ']'";
			goto bad;
		}
		if (close[1] != ':') {
			why = "expected ':PORT' after ']'";
			goto bad;
		}
		host = xstrndup(s + 1, (size_t)(close - s - 1));
		port = close + 2;
		family = AF_INET6;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			why = "expected HOST:PORT";
			goto bad;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			why = "an IPv6 address needs brackets: [ADDR]:PORT";
			goto bad;
		}
		host = xstrndup(s, (size_t)(colon - s));
		port = colon + 1;
		family = AF_INET;
		if (strcmp(host, "*") == 0) {
			free(host);
			host = xstrdup("0.0.0.0");
		}
	}
	if (*host == '\0') {
		free(host);
		why = "missing address (use * for any IPv4 address)";
		goto bad;
	}
	if (!parse_digits(port, &end, &num) || *end != '\0' || num < 1 ||
	    num > 65535) {
		free(host);
		why = "port must be a number from 1 to 65535";
		goto bad;
	}

	/* glibc reads a host of "*" as "any address"; only "*:port" means
	 * that here, and it was replaced above. */
	if (strchr(host, '*') != NULL) {
		free(host);
		why = family == AF_INET6 ? "not a numeric IPv6 address" :
		    "not a numeric IPv4 address";
		goto bad;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	free(host);
	if (rc != 0 || res == NULL) {
		if (res != NULL)
			freeaddrinfo(res);
		why = family == AF_INET6 ? "not a numeric IPv6 address" :
		    "not a numeric IPv4 address";
		goto bad;
	}
	if (ss != NULL) {
		memset(ss, 0, sizeof(*ss));
		memcpy(ss, res->ai_addr, res->ai_addrlen);
	}
	freeaddrinfo(res);
	return 0;

bad:
	*error_r = xasprintf("invalid listen address '%s': %s", s, why);
	return -1;
}
