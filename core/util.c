#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		STRATA_BUG("out of memory");
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		STRATA_BUG("out of memory");
	return p;
}

void *xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);

	if (q == NULL)
		STRATA_BUG("out of memory");
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		STRATA_BUG("out of memory");
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		STRATA_BUG("out of memory");
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		STRATA_BUG("out of memory");
	va_end(ap);
	return text;
}

void strbuf_append(struct strbuf *sb, const void *bytes, size_t n)
{
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 64;

		while (cap < sb->len + n + 1)
			cap *= 2;
		sb->data = xrealloc(sb->data, cap);
		sb->cap = cap;
	}
	if (n)
		memcpy(sb->data + sb->len, bytes, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

void strbuf_addstr(struct strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strlen(s));
}

void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		STRATA_BUG("out of memory");
	va_end(ap);
	strbuf_addstr(sb, text);
	free(text);
}

void strbuf_release(struct strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

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

int read_file_at(int dirfd, const char *name, char **data, size_t *len, struct strata_error **err)
{
	auto_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf;
	size_t done = 0;

	if (fd < 0)
		return strata_error_set(err, errno, "cannot open `%s`", name);
	if (fstat(fd, &st) < 0)
		return strata_error_set(err, errno, "cannot stat `%s`", name);
	if (!S_ISREG(st.st_mode))
		return strata_error_set(err, 0, "`%s` is not a regular file", name);

	buf = xmalloc((size_t)st.st_size + 1);
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return strata_error_set(err, n < 0 ? errno : EIO, "cannot read `%s`", name);
		}
		done += (size_t)n;
	}
	buf[done] = '\0';
	*data = buf;
	*len = done;
	return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			 struct strata_error **err)
{
	auto_free char *tmp = xasprintf("%s.tmp-%d", name, (int)getpid());
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);

	if (fd < 0)
		return strata_error_set(err, errno, "cannot create `%s`", tmp);
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		int saved = errno;

		close(fd);
		unlinkat(dirfd, tmp, 0);
		return strata_error_set(err, saved, "cannot write `%s`", tmp);
	}
	if (close(fd) < 0) {
		int saved = errno;

		unlinkat(dirfd, tmp, 0);
		return strata_error_set(err, saved, "cannot write `%s`", tmp);
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int saved = errno;

		unlinkat(dirfd, tmp, 0);
		return strata_error_set(err, saved, "cannot rename `%s` to `%s`", tmp, name);
	}
	return 0;
}

/*
 * Empties the directory open at fd.  Recursion depth equals tree depth; the
 * extraction limits keep trees shallow enough (see unpack.c, MAX_DEPTH).
 */
static int empty_dir(int fd, const char *path, struct strata_error **err)
{
	DIR *dir;
	struct dirent *de;
	int rc = 0;
	int dupfd = dup(fd);

	if (dupfd < 0)
		return strata_error_set(err, errno, "cannot read directory `%s`", path);
	dir = fdopendir(dupfd);
	if (dir == NULL) {
		close(dupfd);
		return strata_error_set(err, errno, "cannot read directory `%s`", path);
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			continue;
		if (errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			rc = strata_error_set(err, errno, "cannot remove `%s/%s`", path, de->d_name);
			break;
		}
		{
			auto_free char *sub = xasprintf("%s/%s", path, de->d_name);

			if (rmtree_at(fd, de->d_name, err) < 0) {
				rc = -1;
				break;
			}
			(void)sub;
		}
	}
	closedir(dir);
	return rc;
}

int rmtree_at(int dirfd, const char *name, struct strata_error **err)
{
	struct stat st;
	auto_close int fd = -1;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return strata_error_set(err, errno, "cannot stat `%s`", name);
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return strata_error_set(err, errno, "cannot remove `%s`", name);
		return 0;
	}

	if ((st.st_mode & 0700) != 0700)
		fchmodat(dirfd, name, (st.st_mode & 07777) | 0700, 0);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return strata_error_set(err, errno, "cannot open directory `%s`", name);
	if (empty_dir(fd, name, err) < 0)
		return -1;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return strata_error_set(err, errno, "cannot remove directory `%s`", name);
	return 0;
}

int mkdir_p_at(int dirfd, const char *path, mode_t mode, struct strata_error **err)
{
	auto_free char *copy = xstrdup(path);
	char *p = copy;

	while (*p == '/')
		p++;
	for (;;) {
		char *slash = strchr(p, '/');

		if (slash)
			*slash = '\0';
		if (mkdirat(dirfd, copy, mode) < 0 && errno != EEXIST)
			return strata_error_set(err, errno, "cannot create directory `%s`", copy);
		if (slash == NULL)
			break;
		*slash = '/';
		p = slash + 1;
	}
	return 0;
}

/* Inodes with several links seen so far: an open-addressing set, 0 marks a free slot. */
struct inode_set {
	ino_t *slots;
	size_t cap;
	size_t used;
};

static bool inode_set_add(struct inode_set *set, ino_t ino)
{
	if ((set->used + 1) * 2 > set->cap) {
		struct inode_set old = *set;

		set->cap = old.cap ? old.cap * 2 : 256;
		set->slots = xcalloc(set->cap, sizeof(ino_t));
		set->used = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.slots[i])
				inode_set_add(set, old.slots[i]);
		free(old.slots);
	}
	for (size_t i = (size_t)ino * 11400714819323198485ULL & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		if (set->slots[i] == ino)
			return false;
		if (set->slots[i] == 0) {
			set->slots[i] = ino;
			set->used++;
			return true;
		}
	}
}

static uint64_t usage_below(int dirfd, bool allocated, struct inode_set *seen)
{
	int fd = dup(dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	uint64_t total = 0;

	if (dir == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(dir)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !inode_set_add(seen, st.st_ino))
			continue;
		if (allocated)
			total += (uint64_t)st.st_blocks * 512;
		else if (S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0) {
				total += usage_below(sub, allocated, seen);
				close(sub);
			}
		}
	}
	closedir(dir);
	return total;
}

uint64_t dir_usage_at(int dirfd, bool allocated)
{
	struct inode_set seen = {0};
	uint64_t total = usage_below(dirfd, allocated, &seen);

	free(seen.slots);
	return total;
}

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
