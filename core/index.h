/*
 * The layer index: one record per entry of a layer tar, written while the
 * layer is unpacked, so that later commands (layers, diff, du) read one file
 * instead of walking the tree.
 *
 * File format (host byte order; the store is local to one machine):
 *   header   struct strata_index_header
 *   records  count x struct strata_index_record, in archive order
 *   sorted   count x uint32_t, record numbers ordered by path (memcmp order)
 *   strings  strings_size bytes: paths, link targets and xattr blobs
 * Loading is one read() of the file plus pointer arithmetic, so 100,000
 * entries load in a few milliseconds.
 *
 * Whiteouts are stored under the path they hide ("etc/.wh.foo" is recorded
 * as "etc/foo" with type WHITEOUT).  An opaque marker (".wh..wh..opq") sets
 * STRATA_ENTRY_OPAQUE on its directory's record.
 */
#ifndef STRATA_INDEX_H
#define STRATA_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "util.h"

#define STRATA_INDEX_MAGIC "STRIDX01"
#define STRATA_INDEX_NONE UINT32_MAX

enum strata_entry_type {
	STRATA_ENTRY_REG = 1,
	STRATA_ENTRY_DIR = 2,
	STRATA_ENTRY_SYMLINK = 3,
	STRATA_ENTRY_HARDLINK = 4,  /* `link` names the target; content fields copy the target's */
	STRATA_ENTRY_CHAR = 5,
	STRATA_ENTRY_BLOCK = 6,
	STRATA_ENTRY_FIFO = 7,
	STRATA_ENTRY_WHITEOUT = 8,
};

enum strata_entry_flags {
	STRATA_ENTRY_OPAQUE = 1 << 0,           /* directory hides everything lower layers had there */
	STRATA_ENTRY_IMPLICIT = 1 << 1,         /* directory created because a child needed it */
	STRATA_ENTRY_NOT_CREATED = 1 << 2,      /* recorded only: device node in a non-root store */
	STRATA_ENTRY_LOWER_COPY = 1 << 3,       /* hard link to a lower layer's file, stored as a copy */
	STRATA_ENTRY_SPARSE = 1 << 4,           /* sparse file: size is the apparent size */
	STRATA_ENTRY_XATTR_NOT_SET = 1 << 5,    /* some xattrs are recorded but not set on disk */
	STRATA_ENTRY_OWNER_NOT_SET = 1 << 6,    /* non-root store: uid/gid recorded, file owned by the user */
};

struct strata_index_header {
	char magic[8];
	uint32_t version;
	uint32_t count;
	uint64_t strings_size;
	uint64_t reserved[2];
};

struct strata_index_record {
	uint64_t size;          /* content bytes (apparent size for sparse files) */
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;          /* permission bits and S_IFMT type bits as in the tar header */
	uint32_t uid;
	uint32_t gid;
	uint32_t path_off;
	uint32_t path_len;
	uint32_t link_off;      /* symlink target or hard link target path */
	uint32_t link_len;
	uint32_t xattr_off;     /* xattrs: repeated (name NUL, uint32 value length, value) */
	uint32_t xattr_len;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	uint16_t type;          /* enum strata_entry_type */
	uint16_t flags;         /* enum strata_entry_flags */
	uint32_t link_record;   /* hard link target's record number in this layer, or STRATA_INDEX_NONE */
	uint8_t sha256[32];     /* content digest of regular files and hard links; zero otherwise */
};

/* Entry as the unpacker hands it to the writer. */
struct strata_index_entry {
	const char *path;
	size_t path_len;
	const char *link;
	size_t link_len;
	const void *xattrs;
	size_t xattrs_len;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	enum strata_entry_type type;
	uint16_t flags;
	uint32_t link_record;
	const uint8_t *sha256;  /* NULL for none */
};

struct strata_index_writer {
	struct strata_index_record *records;
	size_t count;
	size_t cap;
	struct strbuf strings;
};

void strata_index_writer_init(struct strata_index_writer *w);
void strata_index_writer_release(struct strata_index_writer *w);
/* Appends a record and returns its number. */
uint32_t strata_index_writer_add(struct strata_index_writer *w, const struct strata_index_entry *e);
/* Record access while writing (pointers are invalidated by the next add). */
struct strata_index_record *strata_index_writer_record(struct strata_index_writer *w, uint32_t n);
/* Sorts, then writes the index file atomically below dirfd. */
int strata_index_writer_write(struct strata_index_writer *w, int dirfd, const char *name,
			      struct strata_error **err);

struct strata_index {
	char *buf;
	size_t buf_len;
	uint32_t count;
	const struct strata_index_record *records;
	const uint32_t *sorted;
	const char *strings;
	uint64_t strings_size;
};

/* Loads and validates an index file (every offset is bounds-checked). */
int strata_index_load(int dirfd, const char *name, struct strata_index *idx, struct strata_error **err);
void strata_index_release(struct strata_index *idx);

/* Returns a NUL-free view of a record's path; *len receives its length. */
const char *strata_index_path(const struct strata_index *idx, uint32_t n, size_t *len);
const char *strata_index_link(const struct strata_index *idx, uint32_t n, size_t *len);
/* Finds a record by exact path with a binary search; returns STRATA_INDEX_NONE if absent. */
uint32_t strata_index_find(const struct strata_index *idx, const char *path, size_t len);

const char *strata_entry_type_name(enum strata_entry_type type);
/* Returns the entry type of a stat mode: sockets and unknown types count as regular files. */
enum strata_entry_type strata_entry_type_from_mode(mode_t mode);
/* Returns the S_IF* file type an entry has on disk (a whiteout is a character device). */
mode_t strata_entry_type_mode(enum strata_entry_type type);

/*
 * Sets a record's xattrs on fd, leaving out overlayfs's own (trusted.overlay.*
 * and user.overlay.*, which would change how layers merge) and, for a
 * non-root store, all but user.*.  Failures are ignored: the index keeps
 * the values.
 */
void strata_index_apply_xattrs(const struct strata_index *idx, const struct strata_index_record *r, int fd,
			       bool rootless);

#endif
