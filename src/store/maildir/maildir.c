#include "store/maildir/maildir.h"
#include "store/store_private.h"
#include "core/xmalloc.h"
#include "log/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Our system flags and their Maildir letters (ASCII order matters only
 * when writing, see maildir_name_build()). */
static const struct {
	char c;
	uint32_t flag;
} flag_letters[] = {
	{ 'D', STORE_F_DRAFT },
	{ 'F', STORE_F_FLAGGED },
	{ 'R', STORE_F_ANSWERED },
	{ 'S', STORE_F_SEEN },
	{ 'T', STORE_F_DELETED },
};

size_t
maildir_name_base_len(const char *name)
{
	const char *p = strchr(name, ':');

	return p == NULL ? strlen(name) : (size_t)(p - name);
}

static const char *
flags_suffix(const char *name)
{
	const char *p = strchr(name, ':');

	if (p == NULL || strncmp(p, ":2,", 3) != 0)
		return NULL;
	return p + 3;
}

uint32_t
maildir_name_flags(const char *name)
{
	const char *s = flags_suffix(name);
	uint32_t flags = 0;

	if (s == NULL)
		return 0;
	for (; *s != '\0'; s++) {
		for (size_t i = 0; i < ARRAY_SIZE(flag_letters); i++)
			if (*s == flag_letters[i].c)
				flags |= flag_letters[i].flag;
	}
	return flags;
}

/* Find the ",U=" field inside BASE: start and length of ",U=digits". */
static bool
find_uid_field(const char *name, size_t base_len, size_t *start_r,
    size_t *len_r)
{
	const char *p = name, *end = name + base_len;

	while ((p = memchr(p, ',', (size_t)(end - p))) != NULL) {
		const char *q = p + 1;
		const char *next = memchr(q, ',', (size_t)(end - q));

		if (next == NULL)
			next = end;
		if (end - q >= 2 && q[0] == 'U' && q[1] == '=') {
			*start_r = (size_t)(p - name);
			*len_r = (size_t)(next - p);
			return true;
		}
		p = next;
	}
	return false;
}

bool
maildir_name_uid(const char *name, uint32_t *uid_r)
{
	size_t base_len = maildir_name_base_len(name), start, len;
	uint64_t v = 0;

	if (!find_uid_field(name, base_len, &start, &len) || len <= 3 ||
	    len > 13)
		return false;
	for (size_t i = start + 3; i < start + len; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	if (v == 0 || v > UINT32_MAX)
		return false;
	*uid_r = (uint32_t)v;
	return true;
}

static int
cmp_char(const void *a, const void *b)
{
	return *(const unsigned char *)a - *(const unsigned char *)b;
}

char *
maildir_name_build(const char *name, uint32_t uid, uint32_t flags)
{
	size_t base_len = maildir_name_base_len(name), start, len;
	const char *old = flags_suffix(name);
	char letters[64];
	size_t n = 0;
	char *base, *out;

	/* Keep letters we do not manage (P, keyword letters of other
	 * programs), drop ours, then add ours from flags. */
	for (; old != NULL && *old != '\0' && n < sizeof(letters) - 8; old++) {
		bool ours = false;

		for (size_t i = 0; i < ARRAY_SIZE(flag_letters); i++)
			if (*old == flag_letters[i].c)
				ours = true;
		if (!ours && (unsigned char)*old > 0x20 &&
		    (unsigned char)*old < 0x7f && *old != '/' &&
		    memchr(letters, *old, n) == NULL)
			letters[n++] = *old;
	}
	for (size_t i = 0; i < ARRAY_SIZE(flag_letters); i++)
		if ((flags & flag_letters[i].flag) != 0)
			letters[n++] = flag_letters[i].c;
	qsort(letters, n, 1, cmp_char);
	letters[n] = '\0';

	if (find_uid_field(name, base_len, &start, &len))
		base = xasprintf("%.*s%.*s", (int)start, name,
		    (int)(base_len - start - len), name + start + len);
	else
		base = xstrndup(name, base_len);
	if (uid != 0)
		out = xasprintf("%s,U=%" PRIu32 ":2,%s", base, uid, letters);
	else
		out = xasprintf("%s:2,%s", base, letters);
	free(base);
	return out;
}

void
maildir_random(void *buf, size_t len)
{
	/* Uniqueness comes from time, pid and counter; randomness only
	 * guards against pid reuse, so a failure is not fatal. */
	if (getrandom(buf, len, GRND_NONBLOCK) != (ssize_t)len)
		memset(buf, 0, len);
}

char *
maildir_name_new_base(void)
{
	static unsigned counter;
	char host[256], safe[1024], *d = safe;
	unsigned char rnd[8];
	struct timeval tv;

	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	/* The Maildir spec escapes '/' and ':' as octal; ',' too here since
	 * it separates our fields. */
	for (const char *s = host; *s != '\0'; s++) {
		if (*s == '/' || *s == ':' || *s == ',') {
			d += sprintf(d, "\\%03o", (unsigned char)*s);
		} else if ((unsigned char)*s > 0x20 && *s != 0x7f) {
			*d++ = *s;
		}
	}
	*d = '\0';
	maildir_random(rnd, sizeof(rnd));
	gettimeofday(&tv, NULL);
	return xasprintf("%lld.M%ldP%dQ%uR%02x%02x%02x%02x%02x%02x%02x%02x.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(), ++counter,
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7],
	    safe);
}

int
maildir_fsync_dir(const char *path, bool do_fsync)
{
	int fd, ret;

	if (!do_fsync)
		return 0;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

int
maildir_folder_create(const char *path, bool maildirfolder,
    struct store_error *err)
{
	static const char *const subdirs[] = { "cur", "new", "tmp" };

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return store_error_errno(err, errno, "mkdir(%s)", path);
	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		char *p = xasprintf("%s/%s", path, subdirs[i]);

		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			int e = errno;

			free(p);
			return store_error_errno(err, e, "mkdir(%s/%s)", path,
			    subdirs[i]);
		}
		free(p);
	}
	if (maildirfolder) {
		/* Maildir++: marks a folder for delivery agents. */
		char *p = xasprintf("%s/maildirfolder", path);
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

		free(p);
		if (fd < 0)
			return store_error_errno(err, errno,
			    "create %s/maildirfolder", path);
		close(fd);
	}
	return 0;
}

void
maildir_remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (d == NULL) {
		if (errno != ENOENT && errno != ENOTDIR)
			log_warn("store: opendir(%s)", path);
		if (errno == ENOTDIR && unlink(path) < 0)
			log_warn("store: unlink(%s)", path);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char *p;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", path, de->d_name);
		if (de->d_type == DT_DIR)
			maildir_remove_tree(p);
		else if (unlink(p) < 0 && errno != ENOENT) {
			if (errno == EISDIR)
				maildir_remove_tree(p);
			else
				log_warn("store: unlink(%s)", p);
		}
		free(p);
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT)
		log_warn("store: rmdir(%s)", path);
}

void
maildir_tmp_clean(const char *path)
{
	char *tmp = xasprintf("%s/tmp", path);
	time_t limit = time(NULL) - MAILDIR_TMP_MAX_AGE;
	DIR *d = opendir(tmp);
	struct dirent *de;
	struct stat st;

	if (d == NULL) {
		free(tmp);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
		    0 && S_ISREG(st.st_mode) && st.st_atime < limit &&
		    st.st_mtime < limit && st.st_ctime < limit)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	free(tmp);
}

static int
write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
maildir_tmp_write(const char *path, int in_fd, const void *data, size_t len,
    int64_t mtime, bool do_fsync, char **base_r, uint64_t *size_r,
    struct store_error *err)
{
	char *base = maildir_name_new_base();
	char *tmp = xasprintf("%s/tmp/%s", path, base);
	struct timespec ts[2];
	uint64_t size = 0;
	int fd, e;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		goto fail;
	}
	if (len > 0) {
		if (write_all(fd, data, len) < 0) {
			e = errno;
			goto fail_unlink;
		}
		size = len;
	}
	if (in_fd >= 0) {
		char buf[65536];
		ssize_t n;

		for (;;) {
			n = read(in_fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				e = errno;
				goto fail_unlink;
			}
			if (n == 0)
				break;
			if (write_all(fd, buf, (size_t)n) < 0) {
				e = errno;
				goto fail_unlink;
			}
			size += (uint64_t)n;
		}
	}
	/* The Maildir internal date is the file's mtime (as Dovecot). */
	ts[0].tv_sec = ts[1].tv_sec = (time_t)mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(fd, ts) < 0 || (do_fsync && fsync(fd) < 0)) {
		e = errno;
		goto fail_unlink;
	}
	if (close(fd) < 0) {
		e = errno;
		fd = -1;
		goto fail_unlink;
	}
	free(tmp);
	*base_r = base;
	*size_r = size;
	return 0;

fail_unlink:
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
fail:
	store_error_errno(err, e, "write %s", tmp);
	free(tmp);
	free(base);
	return -1;
}

static int
scan_dir(const char *path, const char *sub, bool in_new, struct arena *arena,
    struct maildir_entry **entries, unsigned *count, unsigned *cap,
    struct store_error *err)
{
	char *dir = xasprintf("%s/%s", path, sub);
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL) {
		int e = errno;

		free(dir);
		if (e == ENOENT)
			return 0;
		return store_error_errno(err, e, "opendir(%s/%s)", path, sub);
	}
	free(dir);
	while ((de = readdir(d)) != NULL) {
		/* Dot files are not messages (the spec). */
		if (de->d_name[0] == '.')
			continue;
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN &&
		    de->d_type != DT_LNK)
			continue;
		if (*count == *cap) {
			*cap = *cap == 0 ? 64 : *cap * 2;
			*entries = xrealloc(*entries,
			    *cap * sizeof(**entries));
		}
		(*entries)[*count].name = arena_strdup(arena, de->d_name);
		(*entries)[*count].in_new = in_new;
		(*count)++;
	}
	closedir(d);
	return 0;
}

int
maildir_scan(const char *path, struct arena *arena,
    struct maildir_entry **entries_r, unsigned *count_r,
    struct store_error *err)
{
	struct maildir_entry *entries = NULL, *out;
	unsigned count = 0, cap = 0;

	if (scan_dir(path, "new", true, arena, &entries, &count, &cap,
	    err) < 0 ||
	    scan_dir(path, "cur", false, arena, &entries, &count, &cap,
	    err) < 0) {
		free(entries);
		return -1;
	}
	out = arena_alloc(arena, (count + 1) * sizeof(*out));
	if (count > 0)
		memcpy(out, entries, count * sizeof(*out));
	free(entries);
	*entries_r = out;
	*count_r = count;
	return 0;
}

int
maildir_write_file_atomic(const char *path, const void *data, size_t len,
    bool do_fsync, struct store_error *err)
{
	unsigned char rnd[4] = { 0 };
	char *tmp, *dir, *slash;
	int fd, e;

	maildir_random(rnd, sizeof(rnd));
	tmp = xasprintf("%s.tmp.%d.%02x%02x%02x%02x", path, (int)getpid(),
	    rnd[0], rnd[1], rnd[2], rnd[3]);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		free(tmp);
		return store_error_errno(err, e, "create %s", path);
	}
	if (write_all(fd, data, len) < 0 || (do_fsync && fsync(fd) < 0)) {
		e = errno;
		close(fd);
		(void)unlink(tmp);
		free(tmp);
		return store_error_errno(err, e, "write %s", path);
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		e = errno;
		(void)unlink(tmp);
		free(tmp);
		return store_error_errno(err, e, "rename to %s", path);
	}
	free(tmp);
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash != NULL) {
		*slash = '\0';
		if (maildir_fsync_dir(dir, do_fsync) < 0) {
			e = errno;
			free(dir);
			return store_error_errno(err, e, "fsync dir of %s",
			    path);
		}
	}
	free(dir);
	return 0;
}

int
maildir_uidmap_append(const char *path, const char *data, size_t len,
    bool do_fsync, struct store_error *err)
{
	char *file = xasprintf("%s/" MAILDIR_UIDMAP_NAME, path);
	bool created = access(file, F_OK) < 0;
	struct stat st;
	char last = '\n';
	int fd, e;

	fd = open(file, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	free(file);
	if (fd < 0)
		return store_error_errno(err, errno, "open %s/%s", path,
		    MAILDIR_UIDMAP_NAME);
	/* A crash may have cut the last line: end it, so that it cannot
	 * run into the first one we add (readers skip it). */
	if (fstat(fd, &st) == 0 && st.st_size > 0 &&
	    pread(fd, &last, 1, st.st_size - 1) != 1)
		last = '\n';
	if ((last != '\n' && write_all(fd, "\n", 1) < 0) ||
	    write_all(fd, data, len) < 0 || (do_fsync && fsync(fd) < 0)) {
		e = errno;
		close(fd);
		return store_error_errno(err, e, "write %s/%s", path,
		    MAILDIR_UIDMAP_NAME);
	}
	close(fd);
	if (created && maildir_fsync_dir(path, do_fsync) < 0)
		return store_error_errno(err, errno, "fsync(%s)", path);
	return 0;
}

int
maildir_uidmap_read(const char *path, char **data_r, size_t *len_r,
    struct store_error *err)
{
	char *file = xasprintf("%s/" MAILDIR_UIDMAP_NAME, path);
	struct stat st;
	size_t got = 0;
	char *data;
	int fd;

	*data_r = NULL;
	*len_r = 0;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	free(file);
	if (fd < 0)
		return errno == ENOENT ? 0 : store_error_errno(err, errno,
		    "open %s/%s", path, MAILDIR_UIDMAP_NAME);
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		return store_error_errno(err, e, "fstat %s", path);
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			free(data);
			return store_error_errno(err, e, "read %s", path);
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	data[got] = '\0';
	*data_r = data;
	*len_r = got;
	return 0;
}

int
maildir_uidlist_read(const char *path, struct maildir_uidlist *ul_r,
    struct store_error *err)
{
	char *file = xasprintf("%s/" MAILDIR_UIDLIST_NAME, path);
	char buf[256];
	unsigned long long v, u, m, s;
	int version;
	ssize_t n;
	int fd;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		free(file);
		if (e == ENOENT || e == ENOTDIR)
			return 0;
		return store_error_errno(err, e, "open %s/%s", path,
		    MAILDIR_UIDLIST_NAME);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		int e = errno;

		free(file);
		return store_error_errno(err, e, "read %s", path);
	}
	buf[n] = '\0';
	if (sscanf(buf, "herald-uidlist %d V%llu U%llu M%llu S%llu", &version,
	    &v, &u, &m, &s) != 5 || version != 1 || v == 0 ||
	    v > UINT32_MAX || u == 0 || u > UINT32_MAX) {
		log_warnx("store: ignoring unparsable %s", file);
		free(file);
		return 0;
	}
	free(file);
	ul_r->uidvalidity = (uint32_t)v;
	ul_r->uid_reserved = (uint32_t)u;
	ul_r->modseq_reserved = m;
	ul_r->special_use = (unsigned)s & STORE_MBOX_SPECIAL_USE_MASK;
	return 1;
}

int
maildir_uidlist_write(const char *path, const struct maildir_uidlist *ul,
    bool do_fsync, struct store_error *err)
{
	char *file = xasprintf("%s/" MAILDIR_UIDLIST_NAME, path);
	char buf[256];
	int n, ret;

	n = snprintf(buf, sizeof(buf),
	    "herald-uidlist 1 V%" PRIu32 " U%" PRIu32 " M%" PRIu64 " S%u\n",
	    ul->uidvalidity, ul->uid_reserved, ul->modseq_reserved,
	    ul->special_use);
	ret = maildir_write_file_atomic(file, buf, (size_t)n, do_fsync, err);
	free(file);
	return ret;
}
