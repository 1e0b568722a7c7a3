/*
 * Small helpers shared by the core: cleanup attributes, checked allocation,
 * whole-file I/O relative to a directory fd, and a growable byte buffer.
 */
#ifndef STRATA_UTIL_H
#define STRATA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "error.h"

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}
static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void cleanup_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define auto_free __attribute__((cleanup(cleanup_freep)))
#define auto_close __attribute__((cleanup(cleanup_closep)))
#define auto_fclose __attribute__((cleanup(cleanup_fclosep)))

/* Moves ownership out of a cleanup variable: returns *p and empties it. */
#define steal_pointer(p) ({ __typeof__(*(p)) _v = *(p); *(p) = NULL; _v; })
#define steal_fd(p) ({ int _fd = *(p); *(p) = -1; _fd; })

/* Allocation that aborts on failure: out-of-memory is not a recoverable state here. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct strbuf {
	char *data;
	size_t len;
	size_t cap;
};
void strbuf_append(struct strbuf *sb, const void *bytes, size_t n);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_release(struct strbuf *sb);

/* Writes all of buf, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);

/* Reads a whole regular file below dirfd (no symlink follow at the last step). */
int read_file_at(int dirfd, const char *name, char **data, size_t *len, struct strata_error **err);

/*
 * Writes a file atomically below dirfd: data goes to a temporary name in the
 * same directory, is fsync'ed, and is renamed over `name`.
 */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			 struct strata_error **err);

/*
 * Removes `name` below dirfd and everything under it, never following
 * symlinks.  Directories without write permission are made writable first.
 * A missing `name` is not an error.
 */
int rmtree_at(int dirfd, const char *name, struct strata_error **err);

/* mkdir that accepts an existing directory. */
int mkdir_p_at(int dirfd, const char *path, mode_t mode, struct strata_error **err);

/*
 * Sums what lies below dirfd, never following symlinks: the sizes of the
 * regular files, or with `allocated` the disk blocks of every entry.  An
 * inode with several hard links counts once.
 */
uint64_t dir_usage_at(int dirfd, bool allocated);

/* Current time in nanoseconds (CLOCK_REALTIME). */
int64_t now_ns(void);

#endif
