#include "main/cmd_user.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth/passdb.h"
#include "auth/password.h"
#include "config/config.h"
#include "core/xmalloc.h"

/* PASSWORD_MAX_LEN bytes, a line break, a NUL.  UNSAFE: sized by hand. */
#define PW_BUF_SIZE (PASSWORD_MAX_LEN + 2)

static struct termios saved_termios;

static void
usage(void)
{
	fprintf(stderr, "usage: herald user add [-s SCHEME] NAME\n"
	                "       herald user passwd [-s SCHEME] NAME\n"
	                "       herald user del NAME\n"
	                "       herald user list\n");
}

/* Leave the terminal echoing when interrupted at the prompt. */
static void
restore_tty_signal(int sig)
{
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
	/* SA_RESETHAND restored the default action; it runs on return. */
	raise(sig);
}

static const int tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

/*
 * Read one line from fd into buf byte by byte, so that no copy of the
 * password stays in a stdio buffer.  Trailing CR/LF are stripped.  Returns
 * the length, -1 on a read error, -2 when the line is too long, -3 at EOF
 * before any byte.
 */
static long
read_secret_line(int fd, char *buf, size_t size)
{
	size_t len = 0;
	bool any = false, too_long = false;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		any = true;
		if (c == '\n')
			break;
		if (len + 1 >= size)
			too_long = true;
		else
			buf[len++] = c;
	}
	c = '\0';
	while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == '\n'))
		len--;
	buf[len] = '\0';
	if (too_long)
		return -2;
	return any ? (long)len : -3;
}

/* Read with echo off (the newline is still echoed). */
static long
read_tty_password(const char *prompt, char *buf, size_t size)
{
	struct sigaction sa, old[ARRAY_SIZE(tty_signals)];
	struct termios noecho;
	long ret;
	int saved;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_tty_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(tty_signals); i++) {
		/* A signal our parent has us ignore stays ignored. */
		sigaction(tty_signals[i], NULL, &old[i]);
		if (old[i].sa_handler != SIG_IGN)
			sigaction(tty_signals[i], &sa, NULL);
	}
	noecho = saved_termios;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho) < 0)
		ret = -1;
	else
		ret = read_secret_line(STDIN_FILENO, buf, size);
	saved = errno;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
	for (size_t i = 0; i < ARRAY_SIZE(tty_signals); i++)
		sigaction(tty_signals[i], &old[i], NULL);
	errno = saved;
	return ret;
}

static int
report_read_error(long r)
{
	switch (r) {
	case -1:
		fprintf(stderr, "herald: cannot read the password: %s\n",
		        strerror(errno));
		break;
	case -2:
		fprintf(stderr,
		        "herald: password too long (at most %d "
		        "bytes)\n",
		        PASSWORD_MAX_LEN);
		break;
	default:
		fprintf(stderr, "herald: no password given\n");
		break;
	}
	return -1;
}

/* Get the new password into pw (PW_BUF_SIZE bytes).  0 or -1. */
static int
get_password(char *pw)
{
	char again[PW_BUF_SIZE];
	long r;
	int ret = 0;

	if (!isatty(STDIN_FILENO)) {
		r = read_secret_line(STDIN_FILENO, pw, PW_BUF_SIZE);
		if (r < 0)
			return report_read_error(r);
	} else {
		r = read_tty_password("New password: ", pw, PW_BUF_SIZE);
		if (r < 0)
			return report_read_error(r);
		r = read_tty_password("Retype new password: ", again,
		                      sizeof(again));
		if (r < 0)
			ret = report_read_error(r);
		else if (strcmp(pw, again) != 0) {
			fprintf(stderr, "herald: passwords do not match\n");
			ret = -1;
		}
		explicit_bzero(again, sizeof(again));
	}
	if (ret == 0 && pw[0] == '\0') {
		fprintf(stderr, "herald: empty password\n");
		ret = -1;
	}
	return ret;
}

/* mkdir -p the directory holding path; created directories get 0700. */
static int
make_parent_dir(const char *path)
{
	char *dir;
	const char *slash = strrchr(path, '/');
	struct stat st;
	int ret = 0;

	if (slash == NULL || slash == path)
		return 0;
	dir = xstrndup(path, (size_t)(slash - path));
	if (stat(dir, &st) == 0) {
		free(dir);
		return 0;
	}
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr,
			        "herald: cannot create directory %s: "
			        "%s\n",
			        dir, strerror(errno));
			ret = -1;
			break;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(dir);
	return ret;
}

struct find_ctx {
	const char *user;
	bool found;
};

static void
find_cb(const char *user, void *ctx)
{
	struct find_ctx *fc = ctx;

	if (strcmp(user, fc->user) == 0)
		fc->found = true;
}

static void
list_cb(const char *user, void *ctx)
{
	printf("%s\n", user);
}

/* 1 if user is in the file, 0 if not, -1 on error (reported). */
static int
user_exists(const char *path, const char *user)
{
	struct find_ctx fc = {.user = user};
	char *error;

	if (passwd_file_list(path, find_cb, &fc, &error) < 0) {
		fprintf(stderr, "herald: %s\n", error);
		free(error);
		return -1;
	}
	return fc.found ? 1 : 0;
}

/* No password field may break the passwd-file line; only PLAIN can. */
static bool
hash_storable(const char *hash)
{
	for (const unsigned char *p = (const unsigned char *)hash; *p != '\0';
	     p++) {
		if (*p < 0x20 || *p == 0x7f || *p == ':')
			return false;
	}
	return true;
}

static int
user_set_password(const char *path, const char *user, const char *scheme,
                  bool add)
{
	char pw[PW_BUF_SIZE];
	const char *herror;
	char *hash, *error;
	int r;

	if ((r = user_exists(path, user)) < 0)
		return 1;
	if (add && r == 1) {
		fprintf(stderr, "herald: user '%s' already exists\n", user);
		return 1;
	}
	if (!add && r == 0) {
		fprintf(stderr, "herald: user '%s' does not exist\n", user);
		return 1;
	}
	if (add && make_parent_dir(path) < 0)
		return 1;
	if (get_password(pw) < 0) {
		explicit_bzero(pw, sizeof(pw));
		return 1;
	}
	hash = password_hash(pw, scheme, &herror);
	explicit_bzero(pw, sizeof(pw));
	if (hash == NULL) {
		fprintf(stderr, "herald: %s\n", herror);
		return 1;
	}
	if (!hash_storable(hash)) {
		fprintf(stderr,
		        "herald: scheme %s cannot store a password "
		        "containing ':' or control characters\n",
		        scheme);
		xfree_secret(hash, strlen(hash));
		return 1;
	}
	r = add ? passwd_file_add(path, user, hash, &error)
	        : passwd_file_set(path, user, hash, &error);
	xfree_secret(hash, strlen(hash));
	if (r < 0) {
		fprintf(stderr, "herald: %s\n", error);
		free(error);
		return 1;
	}
	fprintf(stderr, "herald: %s user '%s'\n",
	        add ? "added" : "changed the password of", user);
	return 0;
}

int
cmd_user(int argc, char **argv, const struct config *cfg)
{
	const char *verb, *scheme = PASSWORD_DEFAULT_SCHEME, *user = NULL;
	char *path, *error;
	bool scheme_given = false;
	int c, nargs, ret = 1;

	if (argc < 2) {
		usage();
		return 1;
	}
	verb = argv[1];
	/* Options follow the verb: getopt sees the verb as its argv[0].
	 * optind = 0 makes glibc's getopt start afresh after main's. */
	optind = 0;
	opterr = 0;
	while ((c = getopt(argc - 1, argv + 1, "s:")) != -1) {
		switch (c) {
		case 's':
			scheme = optarg;
			scheme_given = true;
			break;
		default:
			if (optopt == 's')
				fprintf(stderr, "herald: option -s needs a "
				                "scheme\n");
			else
				fprintf(stderr,
				        "herald: unknown option "
				        "-%c\n",
				        optopt);
			usage();
			return 1;
		}
	}
	nargs = argc - 1 - optind;
	if (nargs == 1)
		user = argv[1 + optind];

	if (strcmp(verb, "list") == 0) {
		if (nargs != 0 || scheme_given) {
			fprintf(stderr, "herald: user list takes no "
			                "arguments\n");
			usage();
			return 1;
		}
	} else if (strcmp(verb, "add") == 0 || strcmp(verb, "passwd") == 0 ||
	           strcmp(verb, "del") == 0) {
		if (scheme_given && strcmp(verb, "del") == 0) {
			fprintf(stderr, "herald: -s only applies to add and "
			                "passwd\n");
			return 1;
		}
		if (nargs != 1) {
			fprintf(stderr, "herald: user %s needs one user name\n",
			        verb);
			usage();
			return 1;
		}
		if (!passwd_user_name_valid(user)) {
			fprintf(stderr,
			        "herald: invalid user name (1-255 "
			        "bytes, no ':', '/', spaces or control "
			        "characters, not '.', '..' or starting with "
			        "'#')\n");
			return 1;
		}
		if (!password_scheme_supported(scheme)) {
			fprintf(stderr,
			        "herald: unknown password scheme "
			        "'%s' (try SHA512-CRYPT, SHA256-CRYPT, "
			        "BLF-CRYPT, CRYPT or PLAIN)\n",
			        scheme);
			return 1;
		}
	} else {
		fprintf(stderr, "herald: unknown user command '%s'\n", verb);
		usage();
		return 1;
	}

	if (cfg->passwd_file != NULL && cfg->passwd_file[0] != '\0')
		path = xstrdup(cfg->passwd_file);
	else
		path = xasprintf("%s/passwd", cfg->data_dir);

	if (strcmp(verb, "list") == 0) {
		if (passwd_file_list(path, list_cb, NULL, &error) < 0) {
			fprintf(stderr, "herald: %s\n", error);
			free(error);
		} else if (fflush(stdout) != 0 || ferror(stdout))
			fprintf(stderr, "herald: cannot write the list: %s\n",
			        strerror(errno));
		else
			ret = 0;
	} else if (strcmp(verb, "del") == 0) {
		if (passwd_file_del(path, user, &error) < 0) {
			fprintf(stderr, "herald: %s\n", error);
			free(error);
		} else {
			fprintf(stderr, "herald: deleted user '%s'\n", user);
			ret = 0;
		}
	} else
		ret = user_set_password(path, user, scheme,
		                        strcmp(verb, "add") == 0);
	free(path);
	return ret;
}
