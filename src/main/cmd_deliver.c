#include "main/cmd_deliver.h"

#include "auth/passdb.h"
#include "config/config.h"
#include "core/xmalloc.h"
#include "lmtp/deliver.h"
#include "log/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

static int
usage(void)
{
	fprintf(stderr, "usage: herald deliver -u USER [-m MAILBOX] "
	    "[-f SENDER] [-a ADDRESS] [-c FILE] [-o key=value]\n");
	return EX_USAGE;
}

/* As root with `user` configured: become that user, as the server does,
 * so that the new files are the server's. */
static int
drop_privileges(const struct config *cfg)
{
	struct passwd *pw;

	if (geteuid() != 0 || cfg->user[0] == '\0')
		return 0;
	pw = getpwnam(cfg->user);
	if (pw == NULL) {
		fprintf(stderr, "herald deliver: user '%s' does not exist\n",
		    cfg->user);
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) < 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
		fprintf(stderr, "herald deliver: cannot switch to user %s: "
		    "%s\n", cfg->user, strerror(errno));
		return -1;
	}
	return 0;
}

static ssize_t
read_stdin(char *buf, size_t size)
{
	ssize_t n;

	do {
		n = read(STDIN_FILENO, buf, size);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		fprintf(stderr, "herald deliver: reading stdin: %s\n",
		    strerror(errno));
	return n;
}

/* Append to the spool, enforcing max_message_size.  An exit status. */
static int
spool_write(const struct config *cfg, int fd, const char *p, size_t len,
    uint64_t *total)
{
	*total += len;
	if (*total > cfg->max_message_size) {
		fprintf(stderr, "herald deliver: message larger than "
		    "max_message_size (%llu bytes)\n",
		    (unsigned long long)cfg->max_message_size);
		return EX_DATAERR;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "herald deliver: writing a temporary "
			    "file: %s\n", strerror(errno));
			return EX_TEMPFAIL;
		}
		p += w;
		len -= (size_t)w;
	}
	return EX_OK;
}

/*
 * Copy stdin into a spool file, dropping a leading "From " line.  Returns
 * EX_OK with *fd_r, or an exit status after printing why.
 */
static int
spool_stdin(const struct config *cfg, int *fd_r)
{
	char buf[65536];
	uint64_t total = 0;
	size_t hlen = 0;
	bool skipping;
	ssize_t n;
	int fd, ret = EX_OK;

	fd = deliver_spool_open(cfg->data_dir);
	if (fd < 0)
		fd = deliver_spool_open(P_tmpdir);
	if (fd < 0) {
		fprintf(stderr, "herald deliver: cannot create a temporary "
		    "file: %s\n", strerror(errno));
		return EX_TEMPFAIL;
	}
	/* The first five bytes tell an mbox separator line. */
	while (hlen < 5) {
		n = read_stdin(buf + hlen, 5 - hlen);
		if (n < 0) {
			ret = EX_TEMPFAIL;
			goto out;
		}
		if (n == 0)
			break;
		hlen += (size_t)n;
	}
	skipping = hlen == 5 && memcmp(buf, "From ", 5) == 0;
	if (!skipping && hlen > 0)
		ret = spool_write(cfg, fd, buf, hlen, &total);
	while (ret == EX_OK && (n = read_stdin(buf, sizeof(buf))) != 0) {
		const char *p = buf;
		size_t len = (size_t)n;

		if (n < 0) {
			ret = EX_TEMPFAIL;
			break;
		}
		if (skipping) {
			const char *nl = memchr(p, '\n', len);

			if (nl == NULL)
				continue;
			skipping = false;
			len -= (size_t)(nl + 1 - p);
			p = nl + 1;
		}
		ret = spool_write(cfg, fd, p, len, &total);
	}
	if (ret == EX_OK && total == 0) {
		fprintf(stderr, "herald deliver: empty message\n");
		ret = EX_DATAERR;
	}
out:
	if (ret != EX_OK) {
		close(fd);
		return ret;
	}
	*fd_r = fd;
	return EX_OK;
}

int
cmd_deliver(int argc, char **argv, const struct config *cfg)
{
	const char *user = NULL, *mailbox = NULL;
	struct deliver_envelope env = { 0 };
	struct deliver_result res;
	struct store_error err;
	struct passdb *db;
	int opt, fd, ret, found;

	optind = 1;
	opterr = 0;
	while ((opt = getopt(argc, argv, "+u:m:f:a:")) != -1) {
		switch (opt) {
		case 'u':
			user = optarg;
			break;
		case 'm':
			mailbox = optarg;
			break;
		case 'f':
			env.return_path = optarg;
			break;
		case 'a':
			env.delivered_to = optarg;
			break;
		default:
			return usage();
		}
	}
	if (optind != argc || user == NULL)
		return usage();
	umask(077);
	if (drop_privileges(cfg) < 0)
		return EX_TEMPFAIL;
	if (!passwd_user_name_valid(user)) {
		fprintf(stderr, "herald deliver: %s: no such user\n", user);
		return EX_NOUSER;
	}
	db = passdb_new(cfg->passwd_file);
	found = passdb_user_lookup(db, user);
	passdb_free(&db);
	if (found < 0) {
		fprintf(stderr, "herald deliver: cannot read %s\n",
		    cfg->passwd_file);
		return EX_TEMPFAIL;
	}
	if (found == 0) {
		fprintf(stderr, "herald deliver: %s: no such user\n", user);
		return EX_NOUSER;
	}
	if ((ret = spool_stdin(cfg, &fd)) != EX_OK)
		return ret;
	ret = deliver_message(cfg, user, mailbox, fd, &env, &res, &err);
	close(fd);
	if (ret < 0) {
		fprintf(stderr, "herald deliver: %s: %s\n", user, err.text);
		return EX_TEMPFAIL;
	}
	log_debug("deliver: user=%s mailbox=%s uid=%u size=%llu: saved",
	    user, res.mailbox, res.uid, (unsigned long long)res.size);
	return EX_OK;
}
