#define _GNU_SOURCE
#include "unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include "digest.h"
#include "index.h"
#include "path.h"
#include "util.h"

#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META_PREFIX ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"

/* tar-split record tags; the format is private to this file. */
#define SPLIT_RAW 'R'   /* uint32 length, then that many bytes of the original stream */
#define SPLIT_FILE 'F'  /* uint32 path length, path, uint64 size: content comes from the unpacked file */
#define SPLIT_END 'E'

void strata_unpack_limits_default(struct strata_unpack_limits *limits)
{
	limits->max_entries = 4000000;
	limits->max_layer_bytes = UINT64_C(256) << 30;
	limits->max_image_bytes = UINT64_C(1) << 40;
	limits->max_path_length = 4096;
	limits->max_path_depth = 256;
	limits->max_xattr_size = 65536;
}

/* Maps paths to index record numbers (open addressing, linear probing). */
struct pathmap {
	uint32_t *slots;
	size_t cap;
	size_t used;
};

struct unpacker {
	const struct strata_unpack_options *opts;
	struct archive *ar;
	int rootfd;

	/* Source stream and tar-split capture. */
	strata_read_fn read;
	void *read_ctx;
	struct strata_error *read_err;
	/*
	 * Stream bytes from pending_start on are not yet classified as tar
	 * metadata (kept in tar-split) or file content (dropped).  Those before
	 * the current chunk are copied in `pending`.  Those in the current chunk
	 * are read from it in place, so file content in it is never copied.
	 */
	uint64_t supplied;          /* stream bytes handed to libarchive so far */
	const char *cur;            /* the chunk libarchive reads: stream bytes [cur_start, supplied) */
	uint64_t cur_start;
	struct strbuf pending;      /* pending.data[pending_off..] = stream bytes [pending_start, cur_start) */
	size_t pending_off;         /* consumed prefix of pending, compacted now and then */
	uint64_t pending_start;
	gzFile split;
	struct strata_sha256 *file_hash;

	struct strata_index_writer index;
	struct pathmap paths;

	/* Cache of the last parent directory opened. */
	char *parent_path;
	int parent_fd;

	char **aufs_meta;           /* AUFS metadata entries to remove at the end */
	size_t n_aufs_meta;
	bool warned_devices;
	bool warned_xattrs;

	struct strata_unpack_result *result;
	uid_t euid;                 /* owner of what we create, so matching chowns can be skipped */
	gid_t egid;
};

static uint64_t hash_path(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static uint32_t pathmap_get(struct unpacker *u, const char *path, size_t len)
{
	size_t mask;
	size_t i;

	if (u->paths.cap == 0)
		return STRATA_INDEX_NONE;
	mask = u->paths.cap - 1;
	for (i = hash_path(path, len) & mask;; i = (i + 1) & mask) {
		uint32_t n = u->paths.slots[i];
		const struct strata_index_record *r;

		if (n == STRATA_INDEX_NONE)
			return STRATA_INDEX_NONE;
		r = &u->index.records[n];
		if (r->path_len == len && memcmp(u->index.strings.data + r->path_off, path, len) == 0)
			return n;
	}
}

static void pathmap_put(struct unpacker *u, uint32_t n);

static void pathmap_grow(struct unpacker *u)
{
	struct pathmap old = u->paths;

	u->paths.cap = old.cap ? old.cap * 2 : 1024;
	u->paths.slots = xmalloc(u->paths.cap * sizeof(uint32_t));
	memset(u->paths.slots, 0xff, u->paths.cap * sizeof(uint32_t));
	u->paths.used = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i] != STRATA_INDEX_NONE)
			pathmap_put(u, old.slots[i]);
	free(old.slots);
}

/* Inserts or replaces the mapping for record n's path. */
static void pathmap_put(struct unpacker *u, uint32_t n)
{
	const struct strata_index_record *r;
	const char *path;
	size_t mask;

	if ((u->paths.used + 1) * 2 > u->paths.cap)
		pathmap_grow(u);
	r = &u->index.records[n];
	path = u->index.strings.data + r->path_off;
	mask = u->paths.cap - 1;
	for (size_t i = hash_path(path, r->path_len) & mask;; i = (i + 1) & mask) {
		uint32_t m = u->paths.slots[i];

		if (m == STRATA_INDEX_NONE) {
			u->paths.slots[i] = n;
			u->paths.used++;
			return;
		}
		if (u->index.records[m].path_len == r->path_len &&
		    memcmp(u->index.strings.data + u->index.records[m].path_off, path, r->path_len) == 0) {
			u->paths.slots[i] = n;
			return;
		}
	}
}

/* ---- tar-split capture ------------------------------------------------- */

static int split_write(struct unpacker *u, const void *data, size_t len, struct strata_error **err)
{
	while (len > 0) {
		unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
		int n = gzwrite(u->split, data, chunk);

		if (n <= 0)
			return strata_error_set(err, EIO, "cannot write `tar-split.gz`");
		data = (const char *)data + n;
		len -= (size_t)n;
	}
	return 0;
}

static int split_raw(struct unpacker *u, const void *data, size_t len, struct strata_error **err)
{
	uint32_t n32;
	char tag = SPLIT_RAW;

	while (len > 0) {
		size_t chunk = len > UINT32_MAX ? UINT32_MAX : len;

		n32 = (uint32_t)chunk;
		if (split_write(u, &tag, 1, err) < 0 || split_write(u, &n32, 4, err) < 0 ||
		    split_write(u, data, chunk, err) < 0)
			return -1;
		data = (const char *)data + chunk;
		len -= chunk;
	}
	return 0;
}

/* Drops n bytes from the front of the pending copy. */
static void pending_consume(struct unpacker *u, size_t n)
{
	u->pending_off += n;
	if (u->pending_off >= u->pending.len) {
		u->pending.len = 0;
		u->pending_off = 0;
	} else if (u->pending_off > (1u << 20) && u->pending_off > u->pending.len / 2) {
		memmove(u->pending.data, u->pending.data + u->pending_off, u->pending.len - u->pending_off);
		u->pending.len -= u->pending_off;
		u->pending_off = 0;
	}
}

/* Emits the unclassified stream bytes below `offset` as raw bytes. */
static int split_flush_to(struct unpacker *u, uint64_t offset, struct strata_error **err)
{
	if (offset <= u->pending_start)
		return 0;
	if (offset > u->supplied)
		STRATA_BUG("tar-split flush past the supplied stream");

	/* First what was copied from earlier chunks, then the rest from the current one. */
	if (u->pending_start < u->cur_start) {
		uint64_t upto = offset < u->cur_start ? offset : u->cur_start;
		size_t n = (size_t)(upto - u->pending_start);

		if (split_raw(u, u->pending.data + u->pending_off, n, err) < 0)
			return -1;
		pending_consume(u, n);
		u->pending_start = upto;
	}
	if (offset > u->pending_start) {
		if (split_raw(u, u->cur + (u->pending_start - u->cur_start), (size_t)(offset - u->pending_start), err) < 0)
			return -1;
		u->pending_start = offset;
	}
	return 0;
}

/*
 * Records that the stream bytes [start, start + size) are the content of the
 * file at `path`.  They are dropped from the capture because the unpacked
 * file contains them.
 */
static int split_reference(struct unpacker *u, uint64_t start, uint64_t size, const char *path,
			   struct strata_error **err)
{
	char tag = SPLIT_FILE;
	uint64_t end = start + size;
	uint32_t path_len = (uint32_t)strlen(path);

	if (split_flush_to(u, start, err) < 0)
		return -1;
	if (split_write(u, &tag, 1, err) < 0 || split_write(u, &path_len, 4, err) < 0 ||
	    split_write(u, path, path_len, err) < 0 || split_write(u, &size, 8, err) < 0)
		return -1;

	/* Skip the content: in the copy, in the current chunk, or in chunks still to come. */
	if (u->pending_start < u->cur_start)
		pending_consume(u, (size_t)((end < u->cur_start ? end : u->cur_start) - u->pending_start));
	u->pending_start = end;
	return 0;
}

static la_ssize_t archive_read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct unpacker *u = ctx;
	ssize_t n;

	/*
	 * The current chunk is valid only until the next read, which may hand
	 * it back to the producer: copy its unclassified tail first.
	 */
	if (u->cur && u->pending_start < u->supplied) {
		uint64_t from = u->pending_start > u->cur_start ? u->pending_start : u->cur_start;

		strbuf_append(&u->pending, u->cur + (from - u->cur_start), (size_t)(u->supplied - from));
	}
	u->cur = NULL;
	u->cur_start = u->supplied;

	n = u->read(u->read_ctx, buf, &u->read_err);
	(void)a;
	if (n < 0) {
		archive_set_error(a, EIO, "read failed");
		return -1;
	}
	if (n == 0)
		return 0;
	u->cur = *buf;
	u->supplied += (uint64_t)n;
	if (u->supplied > u->opts->limits.max_layer_bytes) {
		strata_error_set(&u->read_err, EFBIG,
				 "%s is larger than the limit of %llu uncompressed bytes per layer (raise it with --max-layer-bytes)",
				 u->opts->layer_name, (unsigned long long)u->opts->limits.max_layer_bytes);
		archive_set_error(a, EFBIG, "layer too large");
		return -1;
	}
	return n;
}

/* ---- safe path resolution ---------------------------------------------- */

/*
 * Walks a path like openat2 does, for Linux before 5.6 and for valgrind, which
 * does not support that system call. Each component is opened with O_NOFOLLOW,
 * so a symlink anywhere fails with ELOOP or ENOTDIR. "." and ".." are rejected
 * with EXDEV, as RESOLVE_BENEATH would. NOTE: mount crossings are not detected.
 */
static int openat_walk(int dirfd, const char *path, int flags)
{
	auto_free char *copy = xstrdup(path);
	char *save = NULL;
	char *part = strtok_r(copy, "/", &save);
	int fd = dup(dirfd);

	if (path[0] == '/') {
		close(fd);
		errno = EXDEV;
		return -1;
	}
	while (fd >= 0 && part) {
		char *next = strtok_r(NULL, "/", &save);
		int sub;

		if (strcmp(part, ".") == 0 || strcmp(part, "..") == 0) {
			close(fd);
			errno = EXDEV;
			return -1;
		}
		if (next)
			sub = openat(fd, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		else
			sub = openat(fd, part, flags | O_NOFOLLOW | O_CLOEXEC, 0);
		close(fd);
		fd = sub;
		part = next;
	}
	return fd;
}

int strata_openat_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	static bool no_openat2;
	int fd;

	if (!no_openat2) {
		fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0 || errno != ENOSYS)
			return fd;
		no_openat2 = true;
	}
	return openat_walk(dirfd, path, flags);
}

static uint32_t add_implicit_dir(struct unpacker *u, const char *path, size_t len)
{
	struct strata_index_entry e = {
		.path = path,
		.path_len = len,
		.mode = S_IFDIR | 0755,
		.type = STRATA_ENTRY_DIR,
		.flags = STRATA_ENTRY_IMPLICIT,
		.link_record = STRATA_INDEX_NONE,
	};
	uint32_t n = strata_index_writer_add(&u->index, &e);

	pathmap_put(u, n);
	u->result->entries++;
	return n;
}

/*
 * Opens the parent directory of `path` below the layer root, creating
 * missing directories (recorded as implicit, mode 0755, owner 0:0).  A
 * component that is a symlink or not a directory is an error: resolving it
 * could reach outside the layer.  Returns an O_PATH fd owned by the cache.
 */
static int open_parent(struct unpacker *u, const char *path, const char *entry_name, struct strata_error **err)
{
	const char *slash = strrchr(path, '/');
	size_t plen = slash ? (size_t)(slash - path) : 0;
	auto_free char *parent = xstrndup(path, plen);
	int fd;

	if (u->parent_path && strcmp(u->parent_path, parent) == 0)
		return u->parent_fd;
	if (u->parent_fd >= 0 && u->parent_fd != u->rootfd)
		close(u->parent_fd);
	free(u->parent_path);
	u->parent_path = NULL;
	u->parent_fd = -1;

	if (plen == 0) {
		fd = u->rootfd;
	} else {
		fd = strata_openat_beneath(u->rootfd, parent, O_PATH | O_DIRECTORY);
		if (fd < 0 && errno == ENOENT) {
			/* Create the missing components one at a time. */
			for (char *p = parent;; ) {
				char *next = strchr(p, '/');

				if (next)
					*next = '\0';
				if (mkdirat(u->rootfd, parent, 0700) == 0) {
					add_implicit_dir(u, parent, strlen(parent));
				} else if (errno != EEXIST) {
					int saved = errno;

					if (next)
						*next = '/';
					return strata_error_set(err, saved, "%s: cannot create directory for entry `%s`",
								u->opts->layer_name, entry_name);
				}
				/* mkdirat resolves the prefix; re-check it without symlinks. */
				fd = strata_openat_beneath(u->rootfd, parent, O_PATH | O_DIRECTORY);
				if (fd < 0) {
					if (next)
						*next = '/';
					break;
				}
				close(fd);
				fd = -1;
				if (next == NULL)
					break;
				*next = '/';
				p = next + 1;
			}
			fd = strata_openat_beneath(u->rootfd, parent, O_PATH | O_DIRECTORY);
		}
		if (fd < 0) {
			if (errno == ELOOP || errno == EXDEV)
				return strata_error_set(err, 0,
					"%s: entry `%s` has a parent component that is a symlink; refusing to follow it",
					u->opts->layer_name, entry_name);
			if (errno == ENOTDIR)
				return strata_error_set(err, 0,
					"%s: entry `%s` has a parent component that is a symlink or not a directory",
					u->opts->layer_name, entry_name);
			return strata_error_set(err, errno, "%s: cannot open the parent directory of entry `%s`",
						u->opts->layer_name, entry_name);
		}
	}
	u->parent_path = steal_pointer(&parent);
	u->parent_fd = fd;
	return fd;
}

static const char *leaf_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* ---- xattrs ------------------------------------------------------------ */

static bool is_overlay_xattr(const char *name)
{
	return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
}

/* Returns true when the serialised xattrs in blob already contain `name`. */
static bool xattr_recorded(const struct strbuf *blob, const char *name)
{
	size_t off = 0;

	while (off < blob->len) {
		const char *n = blob->data + off;
		uint32_t size;

		off += strlen(n) + 1;
		memcpy(&size, blob->data + off, 4);
		off += 4 + size;
		if (strcmp(n, name) == 0)
			return true;
	}
	return false;
}

/*
 * Serialises the entry's xattrs for the index and applies them to fd (an
 * open file or directory).  Overlay xattrs from the image are recorded but
 * never applied: they would change how the kernel merges the layers.
 */
static int apply_xattrs(struct unpacker *u, struct archive_entry *entry, int fd, const char *name,
			struct strbuf *blob, uint16_t *flags, struct strata_error **err)
{
	const char *xname;
	const void *value;
	size_t size;

	archive_entry_xattr_reset(entry);
	while (archive_entry_xattr_next(entry, &xname, &value, &size) == ARCHIVE_OK) {
		uint32_t size32 = (uint32_t)size;
		bool applied = false;

		/* libarchive's pax writer stores each xattr twice (LIBARCHIVE.xattr and SCHILY.xattr). */
		if (xattr_recorded(blob, xname))
			continue;
		if (size > u->opts->limits.max_xattr_size)
			return strata_error_set(err, 0,
				"%s: entry `%s` has xattr `%s` of %zu bytes, over the limit of %zu (raise it with --max-xattr-size)",
				u->opts->layer_name, name, xname, size, u->opts->limits.max_xattr_size);
		strbuf_append(blob, xname, strlen(xname) + 1);
		strbuf_append(blob, &size32, 4);
		strbuf_append(blob, value, size);

		if (fd >= 0 && !is_overlay_xattr(xname) && (!u->opts->rootless || strncmp(xname, "user.", 5) == 0)) {
			if (fsetxattr(fd, xname, value, size, 0) == 0)
				applied = true;
		}
		if (!applied) {
			*flags |= STRATA_ENTRY_XATTR_NOT_SET;
			if (!is_overlay_xattr(xname) && !u->warned_xattrs) {
				strata_warn("%s: xattr `%s` of `%s` is kept in the layer index but not set on disk%s",
					    u->opts->layer_name, xname, name,
					    u->opts->rootless ? " (a non-root store cannot set it)" : "");
				u->warned_xattrs = true;
			}
		}
	}
	return 0;
}

/* ---- entries ------------------------------------------------------------ */

static void fill_common(struct strata_index_entry *e, struct archive_entry *entry, const char *path)
{
	memset(e, 0, sizeof(*e));
	e->path = path;
	e->path_len = strlen(path);
	e->mtime_sec = archive_entry_mtime(entry);
	e->mtime_nsec = (uint32_t)archive_entry_mtime_nsec(entry);
	e->mode = (uint32_t)archive_entry_mode(entry);
	e->uid = (uint32_t)archive_entry_uid(entry);
	e->gid = (uint32_t)archive_entry_gid(entry);
	e->link_record = STRATA_INDEX_NONE;
	e->flags = 0;
}

/* Fails unless `path` is free in this layer; a directory may be listed twice. */
static int check_duplicate(struct unpacker *u, const char *path, bool is_dir, const char *name,
			   uint32_t *existing, struct strata_error **err)
{
	uint32_t n = pathmap_get(u, path, strlen(path));

	*existing = n;
	if (n == STRATA_INDEX_NONE)
		return 0;
	if (is_dir && u->index.records[n].type == STRATA_ENTRY_DIR)
		return 0;
	return strata_error_set(err, 0, "%s: entry `%s` appears twice in the layer (duplicate path)",
				u->opts->layer_name, name);
}

static int set_times_nofollow(int parentfd, const char *leaf, struct archive_entry *entry)
{
	struct timespec ts[2];

	ts[0].tv_sec = archive_entry_atime_is_set(entry) ? archive_entry_atime(entry) : archive_entry_mtime(entry);
	ts[0].tv_nsec = archive_entry_atime_is_set(entry) ? archive_entry_atime_nsec(entry) : archive_entry_mtime_nsec(entry);
	ts[1].tv_sec = archive_entry_mtime(entry);
	ts[1].tv_nsec = archive_entry_mtime_nsec(entry);
	return utimensat(parentfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
}

static bool is_aufs_meta(const char *path);

static int unpack_regular(struct unpacker *u, struct archive_entry *entry, const char *path, const char *name,
			  uint64_t data_start, struct strata_error **err)
{
	int parentfd;
	auto_close int fd = -1;
	uint32_t existing;
	struct strata_index_entry e;
	struct strata_digest digest;
	struct strbuf xattrs = {0};
	uint64_t size = (uint64_t)archive_entry_size(entry);
	bool sparse = archive_entry_sparse_count(entry) > 0;
	const void *block;
	size_t block_len;
	la_int64_t offset;
	uint64_t written = 0;
	uint32_t record;
	int r;

	if (check_duplicate(u, path, false, name, &existing, err) < 0)
		return -1;
	parentfd = open_parent(u, path, name, err);
	if (parentfd < 0)
		return -1;
	/* Created with its permission bits (the umask is 0 while unpacking), so most files need no fchmod. */
	fd = openat(parentfd, leaf_name(path), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    archive_entry_mode(entry) & 0777);
	if (fd < 0)
		return strata_error_set(err, errno, "%s: cannot create `%s`", u->opts->layer_name, name);

	while ((r = archive_read_data_block(u->ar, &block, &block_len, &offset)) == ARCHIVE_OK) {
		if (block_len == 0)
			continue;
		if (!sparse)
			strata_sha256_update(u->file_hash, block, block_len);
		/* A short write (a nearly full disk) is retried, so the next one reports the real error. */
		for (size_t done = 0; done < block_len;) {
			ssize_t n = pwrite(fd, (const char *)block + done, block_len - done, offset + (off_t)done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return strata_error_set(err, n < 0 ? errno : EIO, "%s: cannot write `%s`",
							u->opts->layer_name, name);
			done += (size_t)n;
		}
		written += block_len;
	}
	if (r != ARCHIVE_EOF) {
		if (u->read_err)
			return -1;
		return strata_error_set(err, la_errno(u->ar),
					"%s: entry `%s`: unexpected end of layer or corrupt data (%s)",
					u->opts->layer_name, name, archive_error_string(u->ar));
	}
	if (sparse || written != size) {
		if (ftruncate(fd, (off_t)size) < 0)
			return strata_error_set(err, errno, "%s: cannot set the size of `%s`", u->opts->layer_name, name);
	}

	/* Hash the content as written; sparse holes read back as zeros. */
	if (sparse) {
		char buf[65536];
		off_t pos = 0;
		ssize_t n;

		while ((n = pread(fd, buf, sizeof(buf), pos)) > 0) {
			strata_sha256_update(u->file_hash, buf, (size_t)n);
			pos += n;
		}
	}

	fill_common(&e, entry, path);
	e.type = STRATA_ENTRY_REG;
	e.size = size;
	if (sparse)
		e.flags |= STRATA_ENTRY_SPARSE;

	if (!u->opts->rootless) {
		/* A new file already belongs to us (no parent is setgid while unpacking): skip the no-op. */
		if ((e.uid != u->euid || e.gid != u->egid) && fchown(fd, e.uid, e.gid) < 0)
			return strata_error_set(err, errno, "%s: cannot change the owner of `%s`", u->opts->layer_name, name);
	} else {
		e.flags |= STRATA_ENTRY_OWNER_NOT_SET;
	}
	/* Setuid, setgid and sticky bits need fchmod: open's mode may drop them, and chown clears them. */
	if ((e.mode & 07000) && fchmod(fd, e.mode & 07777) < 0)
		return strata_error_set(err, errno, "%s: cannot change the mode of `%s`", u->opts->layer_name, name);
	/* After chown, which clears security.capability. */
	if (apply_xattrs(u, entry, fd, name, &xattrs, &e.flags, err) < 0) {
		strbuf_release(&xattrs);
		return -1;
	}
	e.xattrs = xattrs.data;
	e.xattrs_len = xattrs.len;
	{
		struct timespec ts[2] = {
			{ .tv_sec = e.mtime_sec, .tv_nsec = e.mtime_nsec },
			{ .tv_sec = e.mtime_sec, .tv_nsec = e.mtime_nsec },
		};

		if (futimens(fd, ts) < 0) {
			strbuf_release(&xattrs);
			return strata_error_set(err, errno, "%s: cannot set the times of `%s`", u->opts->layer_name, name);
		}
	}

	strata_sha256_final(u->file_hash, &digest);
	e.sha256 = digest.bytes;
	record = strata_index_writer_add(&u->index, &e);
	strbuf_release(&xattrs);
	pathmap_put(u, record);
	u->result->entries++;
	u->result->file_bytes += size;

	/* AUFS pool files are removed at the end, so their bytes stay in the capture. */
	if (!sparse && size > 0 && !is_aufs_meta(path))
		return split_reference(u, data_start, size, path, err);
	return 0;
}

static int unpack_hardlink(struct unpacker *u, struct archive_entry *entry, const char *path, const char *name,
			   struct strata_error **err)
{
	auto_free char *target = strata_path_normalize(archive_entry_hardlink(entry), err);
	uint32_t existing;
	uint32_t target_record;
	struct strata_index_entry e;
	int parentfd;
	int target_parent;

	if (target == NULL)
		return strata_error_wrap(err, "%s: hard link `%s`", u->opts->layer_name, name);
	if (strcmp(target, path) == 0)
		return strata_error_set(err, 0, "%s: hard link `%s` points to itself", u->opts->layer_name, name);
	if (check_duplicate(u, path, false, name, &existing, err) < 0)
		return -1;

	fill_common(&e, entry, path);
	e.type = STRATA_ENTRY_HARDLINK;
	e.link = target;
	e.link_len = strlen(target);

	target_record = pathmap_get(u, target, strlen(target));
	if (target_record == STRATA_INDEX_NONE) {
		/*
		 * Target only in a lower layer, or later in this one: resolved when
		 * the image's layer order is known.  Create the parents now so the
		 * index records them like any other implicit directory.
		 */
		if (open_parent(u, path, name, err) < 0)
			return -1;
		e.flags |= STRATA_ENTRY_LOWER_COPY;
		pathmap_put(u, strata_index_writer_add(&u->index, &e));
		u->result->entries++;
		u->result->lower_links++;
		return 0;
	}

	{
		struct strata_index_record *t = strata_index_writer_record(&u->index, target_record);

		if (t->type == STRATA_ENTRY_HARDLINK && t->link_record != STRATA_INDEX_NONE)
			target_record = t->link_record;
		t = strata_index_writer_record(&u->index, target_record);
		if (t->type == STRATA_ENTRY_DIR || t->type == STRATA_ENTRY_WHITEOUT ||
		    (t->flags & (STRATA_ENTRY_NOT_CREATED | STRATA_ENTRY_LOWER_COPY)))
			return strata_error_set(err, 0, "%s: hard link `%s` points to `%s`, which is a %s",
						u->opts->layer_name, name, target,
						(t->flags & STRATA_ENTRY_LOWER_COPY) ? "hard link into a lower layer"
						: strata_entry_type_name(t->type));
		e.size = t->size;
		e.sha256 = t->sha256;
		e.mode = t->mode;
		e.uid = t->uid;
		e.gid = t->gid;
		e.mtime_sec = t->mtime_sec;
		e.mtime_nsec = t->mtime_nsec;
		e.link_record = target_record;
	}

	target_parent = open_parent(u, target, name, err);
	if (target_parent < 0)
		return -1;
	{
		/* linkat without AT_SYMLINK_FOLLOW links the name itself, never what a symlink points to. */
		auto_close int tparent = dup(target_parent);

		if (tparent < 0)
			return strata_error_set(err, errno, "%s: hard link `%s`", u->opts->layer_name, name);
		parentfd = open_parent(u, path, name, err);
		if (parentfd < 0)
			return -1;
		if (linkat(tparent, leaf_name(target), parentfd, leaf_name(path), 0) < 0)
			return strata_error_set(err, errno, "%s: cannot create hard link `%s` to `%s`",
						u->opts->layer_name, name, target);
	}

	{
		uint8_t sha[32];

		memcpy(sha, e.sha256, 32);
		e.sha256 = sha;
		pathmap_put(u, strata_index_writer_add(&u->index, &e));
	}
	u->result->entries++;
	return 0;
}

static int unpack_directory(struct unpacker *u, struct archive_entry *entry, const char *path, const char *name,
			    struct strata_error **err)
{
	uint32_t existing;
	struct strata_index_entry e;
	struct strbuf xattrs = {0};
	uint32_t record;
	int parentfd;

	if (check_duplicate(u, path, true, name, &existing, err) < 0)
		return -1;
	parentfd = open_parent(u, path, name, err);
	if (parentfd < 0)
		return -1;
	if (mkdirat(parentfd, leaf_name(path), 0700) < 0 && errno != EEXIST)
		return strata_error_set(err, errno, "%s: cannot create directory `%s`", u->opts->layer_name, name);

	fill_common(&e, entry, path);
	e.type = STRATA_ENTRY_DIR;
	/* Xattrs are applied in the directory pass; only record them here. */
	if (apply_xattrs(u, entry, -1, name, &xattrs, &e.flags, err) < 0) {
		strbuf_release(&xattrs);
		return -1;
	}
	e.flags &= (uint16_t)~STRATA_ENTRY_XATTR_NOT_SET;
	e.xattrs = xattrs.data;
	e.xattrs_len = xattrs.len;

	if (existing != STRATA_INDEX_NONE) {
		/* Keep an opaque mark set by an earlier `.wh..wh..opq` entry. */
		e.flags |= u->index.records[existing].flags & STRATA_ENTRY_OPAQUE;
	}
	record = strata_index_writer_add(&u->index, &e);
	strbuf_release(&xattrs);
	if (existing != STRATA_INDEX_NONE) {
		/* The later entry wins: hide the earlier record from the index. */
		u->index.records[existing].flags |= STRATA_ENTRY_IMPLICIT;
		u->index.records[existing].type = STRATA_ENTRY_DIR;
	}
	pathmap_put(u, record);
	if (existing == STRATA_INDEX_NONE)
		u->result->entries++;
	return 0;
}

static int unpack_symlink(struct unpacker *u, struct archive_entry *entry, const char *path, const char *name,
			  struct strata_error **err)
{
	const char *target = archive_entry_symlink(entry);
	uint32_t existing;
	struct strata_index_entry e;
	struct strbuf xattrs = {0};
	int parentfd;

	if (target == NULL)
		target = "";
	if (check_duplicate(u, path, false, name, &existing, err) < 0)
		return -1;
	parentfd = open_parent(u, path, name, err);
	if (parentfd < 0)
		return -1;
	/* The target is stored as text and never resolved during extraction. */
	if (symlinkat(target, parentfd, leaf_name(path)) < 0)
		return strata_error_set(err, errno, "%s: cannot create symlink `%s`", u->opts->layer_name, name);

	fill_common(&e, entry, path);
	e.type = STRATA_ENTRY_SYMLINK;
	e.link = target;
	e.link_len = strlen(target);
	e.size = e.link_len;
	if (!u->opts->rootless) {
		if ((e.uid != u->euid || e.gid != u->egid) &&
		    fchownat(parentfd, leaf_name(path), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) < 0)
			return strata_error_set(err, errno, "%s: cannot change the owner of symlink `%s`",
						u->opts->layer_name, name);
	} else {
		e.flags |= STRATA_ENTRY_OWNER_NOT_SET;
	}
	if (apply_xattrs(u, entry, -1, name, &xattrs, &e.flags, err) < 0) {
		strbuf_release(&xattrs);
		return -1;
	}
	e.xattrs = xattrs.data;
	e.xattrs_len = xattrs.len;
	if (set_times_nofollow(parentfd, leaf_name(path), entry) < 0) {
		strbuf_release(&xattrs);
		return strata_error_set(err, errno, "%s: cannot set the times of symlink `%s`", u->opts->layer_name, name);
	}
	pathmap_put(u, strata_index_writer_add(&u->index, &e));
	strbuf_release(&xattrs);
	u->result->entries++;
	return 0;
}

static int unpack_special(struct unpacker *u, struct archive_entry *entry, const char *path, const char *name,
			  mode_t type, struct strata_error **err)
{
	uint32_t existing;
	struct strata_index_entry e;
	struct strbuf xattrs = {0};
	int parentfd;
	dev_t rdev = archive_entry_rdev(entry);

	if (type == S_IFCHR && major(rdev) == 0 && minor(rdev) == 0)
		return strata_error_set(err, 0,
			"%s: entry `%s` is a character device 0/0, which collides with the overlay whiteout encoding; "
			"OCI layers mark deletions with `.wh.` files", u->opts->layer_name, name);
	if (check_duplicate(u, path, false, name, &existing, err) < 0)
		return -1;

	fill_common(&e, entry, path);
	e.type = strata_entry_type_from_mode(type);
	e.rdev_major = major(rdev);
	e.rdev_minor = minor(rdev);
	if (apply_xattrs(u, entry, -1, name, &xattrs, &e.flags, err) < 0)
		goto fail;
	e.xattrs = xattrs.data;
	e.xattrs_len = xattrs.len;

	if (u->opts->rootless && type != S_IFIFO) {
		e.flags |= STRATA_ENTRY_NOT_CREATED | STRATA_ENTRY_OWNER_NOT_SET;
		if (!u->warned_devices) {
			strata_warn("%s: device node `%s` (and any others) is recorded in the layer index but not "
				    "created: a non-root store cannot create device nodes", u->opts->layer_name, name);
			u->warned_devices = true;
		}
	} else {
		parentfd = open_parent(u, path, name, err);
		if (parentfd < 0)
			goto fail;
		if (mknodat(parentfd, leaf_name(path), type | (e.mode & 07777), rdev) < 0) {
			strata_error_set(err, errno, "%s: cannot create %s `%s`", u->opts->layer_name,
					 strata_entry_type_name(e.type), name);
			goto fail;
		}
		if (!u->opts->rootless) {
			if (fchownat(parentfd, leaf_name(path), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) < 0) {
				strata_error_set(err, errno, "%s: cannot change the owner of `%s`", u->opts->layer_name, name);
				goto fail;
			}
		} else {
			e.flags |= STRATA_ENTRY_OWNER_NOT_SET;
		}
		/* mknodat honours the umask, which is 0 during unpacking, and chown may clear setgid. */
		if (fchmodat(parentfd, leaf_name(path), e.mode & 07777, 0) < 0 && errno != ENOTSUP) {
			/* fchmodat follows symlinks, but the node was just created by us and is not one. */
			strata_error_set(err, errno, "%s: cannot change the mode of `%s`", u->opts->layer_name, name);
			goto fail;
		}
		if (set_times_nofollow(parentfd, leaf_name(path), entry) < 0) {
			strata_error_set(err, errno, "%s: cannot set the times of `%s`", u->opts->layer_name, name);
			goto fail;
		}
	}
	pathmap_put(u, strata_index_writer_add(&u->index, &e));
	strbuf_release(&xattrs);
	u->result->entries++;
	return 0;
fail:
	strbuf_release(&xattrs);
	return -1;
}

static int unpack_whiteout(struct unpacker *u, struct archive_entry *entry, const char *path, const char *name,
			   struct strata_error **err)
{
	const char *leaf = leaf_name(path);
	const char *hidden = leaf + strlen(WHITEOUT_PREFIX);
	size_t dirlen = (size_t)(leaf - path);
	auto_free char *target = NULL;
	uint32_t existing;
	struct strata_index_entry e;
	int parentfd;

	if (strata_path_component_invalid(hidden, strlen(hidden)))
		return strata_error_set(err, 0, "%s: entry `%s` is an invalid whiteout name", u->opts->layer_name, name);

	target = xasprintf("%.*s%s", (int)dirlen, path, hidden);
	existing = pathmap_get(u, target, strlen(target));
	if (existing != STRATA_INDEX_NONE)
		return strata_error_set(err, 0, "%s: whiteout `%s` deletes `%s`, which the same layer also contains",
					u->opts->layer_name, name, target);

	parentfd = open_parent(u, target, name, err);
	if (parentfd < 0)
		return -1;
	/* Overlayfs whiteout: a character device 0/0.  Unprivileged creation works on Linux 5.8+. */
	if (mknodat(parentfd, hidden, S_IFCHR | 0, makedev(0, 0)) < 0)
		return strata_error_set(err, errno, "%s: cannot create the whiteout for `%s`", u->opts->layer_name, name);

	fill_common(&e, entry, target);
	e.type = STRATA_ENTRY_WHITEOUT;
	e.mode = S_IFCHR;
	e.size = 0;
	pathmap_put(u, strata_index_writer_add(&u->index, &e));
	u->result->entries++;
	return 0;
}

static int unpack_opaque(struct unpacker *u, struct archive_entry *entry, const char *path, const char *name,
			 struct strata_error **err)
{
	size_t dirlen = (size_t)(leaf_name(path) - path);
	auto_free char *dir = xstrndup(path, dirlen ? dirlen - 1 : 0);
	uint32_t record;

	(void)entry;
	if (dir[0] == '\0')
		return strata_error_set(err, 0, "%s: opaque marker `%s` at the layer root is not supported",
					u->opts->layer_name, name);
	record = pathmap_get(u, dir, strlen(dir));
	if (record == STRATA_INDEX_NONE) {
		/* Marker before (or without) its directory entry: create the directory. */
		auto_free char *child = xasprintf("%s/x", dir);

		if (open_parent(u, child, name, err) < 0)
			return -1;
		record = pathmap_get(u, dir, strlen(dir));
		if (record == STRATA_INDEX_NONE)
			STRATA_BUG("opaque directory has no index record after creation");
	}
	if (u->index.records[record].type != STRATA_ENTRY_DIR)
		return strata_error_set(err, 0, "%s: opaque marker `%s` is inside `%s`, which is not a directory",
					u->opts->layer_name, name, dir);
	u->index.records[record].flags |= STRATA_ENTRY_OPAQUE;
	return 0;
}

static bool is_aufs_meta(const char *path)
{
	const char *p = path;

	/* Any component starting with ".wh..wh." other than the opaque marker. */
	for (;;) {
		if (strncmp(p, WHITEOUT_META_PREFIX, strlen(WHITEOUT_META_PREFIX)) == 0 &&
		    strcmp(p, WHITEOUT_OPAQUE) != 0)
			return true;
		p = strchr(p, '/');
		if (p == NULL)
			return false;
		p++;
	}
}

/* ---- directory pass ------------------------------------------------------ */

struct dir_depth {
	uint32_t record;
	uint32_t depth;
};

static int compare_depth_desc(const void *a, const void *b)
{
	uint32_t da = ((const struct dir_depth *)a)->depth;
	uint32_t db = ((const struct dir_depth *)b)->depth;

	return (db > da) - (db < da);
}

static int set_dir_xattrs(struct unpacker *u, int fd, struct strata_index_record *r, const char *path,
			  struct strata_error **err)
{
	const char *p = u->index.strings.data + r->xattr_off;
	const char *end = p + r->xattr_len;

	while (p < end) {
		const char *xname = p;
		uint32_t size;

		p += strlen(p) + 1;
		memcpy(&size, p, 4);
		p += 4;
		if (!is_overlay_xattr(xname) && (!u->opts->rootless || strncmp(xname, "user.", 5) == 0) &&
		    fsetxattr(fd, xname, p, size, 0) == 0) {
			p += size;
			continue;
		}
		r->flags |= STRATA_ENTRY_XATTR_NOT_SET;
		p += size;
	}
	if (r->flags & STRATA_ENTRY_OPAQUE) {
		const char *opaque = u->opts->rootless ? "user.overlay.opaque" : "trusted.overlay.opaque";

		if (fsetxattr(fd, opaque, "y", 1, 0) < 0)
			return strata_error_set(err, errno, "%s: cannot mark directory `%s` opaque (%s)",
						u->opts->layer_name, path, opaque);
	}
	return 0;
}

/*
 * Applies owner, mode, xattrs and times to every directory, deepest first, so
 * that a read-only directory listed before its children still gets them and
 * no later step changes a directory's mtime.
 */
static int finish_directories(struct unpacker *u, struct strata_error **err)
{
	size_t n = 0;
	auto_free struct dir_depth *dirs = xmalloc((u->index.count ? u->index.count : 1) * sizeof(*dirs));

	for (uint32_t i = 0; i < u->index.count; i++) {
		const struct strata_index_record *r = &u->index.records[i];
		auto_free char *path = NULL;

		if (r->type != STRATA_ENTRY_DIR)
			continue;
		path = xstrndup(u->index.strings.data + r->path_off, r->path_len);
		/* Skip AUFS metadata (already removed) and earlier records of a repeated directory. */
		if (!is_aufs_meta(path) && pathmap_get(u, path, r->path_len) == i) {
			dirs[n].record = i;
			dirs[n].depth = (uint32_t)strata_path_depth(path);
			n++;
		}
	}
	qsort(dirs, n, sizeof(*dirs), compare_depth_desc);

	for (size_t k = 0; k < n; k++) {
		struct strata_index_record *r = &u->index.records[dirs[k].record];
		auto_free char *path = xstrndup(u->index.strings.data + r->path_off, r->path_len);
		auto_close int fd = strata_openat_beneath(u->rootfd, path, O_RDONLY | O_DIRECTORY);
		struct timespec ts[2];

		if (fd < 0)
			return strata_error_set(err, errno, "%s: cannot open directory `%s`", u->opts->layer_name, path);
		if (!u->opts->rootless) {
			if ((r->uid != u->euid || r->gid != u->egid) && fchown(fd, r->uid, r->gid) < 0)
				return strata_error_set(err, errno, "%s: cannot change the owner of `%s`",
							u->opts->layer_name, path);
		} else {
			r->flags |= STRATA_ENTRY_OWNER_NOT_SET;
		}
		if (set_dir_xattrs(u, fd, r, path, err) < 0)
			return -1;
		/* A non-root store keeps u+rwx so that the store can later read and remove the tree. */
		if (fchmod(fd, u->opts->rootless ? ((r->mode & 07777) | 0700) : (r->mode & 07777)) < 0)
			return strata_error_set(err, errno, "%s: cannot change the mode of `%s`", u->opts->layer_name, path);
		ts[0].tv_sec = ts[1].tv_sec = r->mtime_sec;
		ts[0].tv_nsec = ts[1].tv_nsec = r->mtime_nsec;
		if (futimens(fd, ts) < 0)
			return strata_error_set(err, errno, "%s: cannot set the times of `%s`", u->opts->layer_name, path);
	}
	return 0;
}

static int remove_aufs_meta(struct unpacker *u, struct strata_error **err)
{
	for (size_t i = 0; i < u->n_aufs_meta; i++) {
		const char *path = u->aufs_meta[i];
		const char *slash = strrchr(path, '/');
		auto_free char *parent = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
		auto_close int fd = slash ? strata_openat_beneath(u->rootfd, parent, O_PATH | O_DIRECTORY)
					  : dup(u->rootfd);

		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return strata_error_set(err, errno, "%s: cannot open `%s`", u->opts->layer_name, parent);
		}
		if (rmtree_at(fd, leaf_name(path), err) < 0)
			return strata_error_wrap(err, "%s: removing AUFS metadata", u->opts->layer_name);
	}
	return 0;
}

/* ---- main loop ------------------------------------------------------------ */

static int unpack_entry(struct unpacker *u, struct archive_entry *entry, uint64_t data_start,
			struct strata_error **err)
{
	const char *name = archive_entry_pathname(entry);
	auto_free char *path = NULL;
	const char *leaf;
	mode_t type = archive_entry_filetype(entry);

	if (name == NULL)
		return strata_error_set(err, 0, "%s: entry without a name", u->opts->layer_name);
	path = strata_path_normalize(name, err);
	if (path == NULL)
		return strata_error_wrap(err, "%s", u->opts->layer_name);
	if (path[0] == '\0')
		return 0;  /* The layer root itself: overlay takes the root from the top layer. */
	if (strlen(path) > u->opts->limits.max_path_length)
		return strata_error_set(err, 0, "%s: entry `%.200s...` is longer than the limit of %zu bytes (raise it with --max-path-length)",
					u->opts->layer_name, name, u->opts->limits.max_path_length);
	if (strata_path_depth(path) > u->opts->limits.max_path_depth)
		return strata_error_set(err, 0, "%s: entry `%.200s...` is deeper than the limit of %zu components (raise it with --max-path-depth)",
					u->opts->layer_name, name, u->opts->limits.max_path_depth);
	if (u->result->entries >= u->opts->limits.max_entries)
		return strata_error_set(err, 0, "%s: more than %llu entries, the limit per layer (raise it with --max-entries)",
					u->opts->layer_name, (unsigned long long)u->opts->limits.max_entries);

	leaf = leaf_name(path);
	if (is_aufs_meta(path)) {
		/* AUFS bookkeeping (hard-link pool, orphans): unpack so links resolve, remove at the end. */
		u->aufs_meta = xrealloc(u->aufs_meta, (u->n_aufs_meta + 1) * sizeof(char *));
		u->aufs_meta[u->n_aufs_meta++] = xstrdup(path);
	} else if (strcmp(leaf, WHITEOUT_OPAQUE) == 0) {
		return unpack_opaque(u, entry, path, name, err);
	} else if (strncmp(leaf, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0) {
		return unpack_whiteout(u, entry, path, name, err);
	}

	if (archive_entry_hardlink(entry) != NULL)
		return unpack_hardlink(u, entry, path, name, err);
	switch (type) {
	case AE_IFREG:
		return unpack_regular(u, entry, path, name, data_start, err);
	case AE_IFDIR:
		return unpack_directory(u, entry, path, name, err);
	case AE_IFLNK:
		return unpack_symlink(u, entry, path, name, err);
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
		return unpack_special(u, entry, path, name, type, err);
	default:
		return strata_error_set(err, 0, "%s: entry `%s` has an unsupported type (0%o)",
					u->opts->layer_name, name, (unsigned)type);
	}
}

/* Marks records that came from AUFS metadata so the index does not list them. */
static void drop_aufs_records(struct unpacker *u)
{
	for (uint32_t i = 0; i < u->index.count; i++) {
		struct strata_index_record *r = &u->index.records[i];
		auto_free char *path = xstrndup(u->index.strings.data + r->path_off, r->path_len);

		if (r->type == STRATA_ENTRY_HARDLINK && r->link_record != STRATA_INDEX_NONE) {
			const struct strata_index_record *t = &u->index.records[r->link_record];
			auto_free char *tpath = xstrndup(u->index.strings.data + t->path_off, t->path_len);

			if (is_aufs_meta(tpath)) {
				/* The link survives the pool's removal as an ordinary file. */
				r->type = STRATA_ENTRY_REG;
				r->link_record = STRATA_INDEX_NONE;
				r->link_len = 0;
			}
		}
		(void)path;
	}
}

/* Writes the final index, leaving out AUFS metadata records. */
static int write_index(struct unpacker *u, int dirfd, struct strata_error **err)
{
	struct strata_index_writer out;
	auto_free uint32_t *renumber = xmalloc((u->index.count ? u->index.count : 1) * sizeof(uint32_t));
	int rc;

	drop_aufs_records(u);
	strata_index_writer_init(&out);
	for (uint32_t i = 0; i < u->index.count; i++) {
		const struct strata_index_record *r = &u->index.records[i];
		auto_free char *path = xstrndup(u->index.strings.data + r->path_off, r->path_len);
		struct strata_index_entry e = {
			.path = path, .path_len = r->path_len,
			.link = u->index.strings.data + r->link_off, .link_len = r->link_len,
			.xattrs = u->index.strings.data + r->xattr_off, .xattrs_len = r->xattr_len,
			.size = r->size, .mtime_sec = r->mtime_sec, .mtime_nsec = r->mtime_nsec,
			.mode = r->mode, .uid = r->uid, .gid = r->gid,
			.rdev_major = r->rdev_major, .rdev_minor = r->rdev_minor,
			.type = (enum strata_entry_type)r->type, .flags = r->flags,
			.link_record = r->link_record == STRATA_INDEX_NONE ? STRATA_INDEX_NONE
				       : renumber[r->link_record],
			.sha256 = r->sha256,
		};

		renumber[i] = STRATA_INDEX_NONE;
		if (is_aufs_meta(path))
			continue;
		/* A directory listed twice: only the last record counts. */
		if (r->type == STRATA_ENTRY_DIR && pathmap_get(u, path, r->path_len) != i)
			continue;
		renumber[i] = strata_index_writer_add(&out, &e);
	}
	u->result->entries = out.count;
	rc = strata_index_writer_write(&out, dirfd, "index", err);
	strata_index_writer_release(&out);
	return rc;
}

int strata_layer_unpack(int dirfd, strata_read_fn read, void *read_ctx,
			const struct strata_unpack_options *opts, struct strata_unpack_result *result,
			struct strata_error **err)
{
	struct unpacker u = {
		.opts = opts,
		.rootfd = -1,
		.read = read,
		.read_ctx = read_ctx,
		.parent_fd = -1,
		.result = result,
		.euid = geteuid(),
		.egid = getegid(),
	};
	struct archive_entry *entry;
	int splitfd = -1;
	int rc = -1;
	int r;
	mode_t old_umask = umask(0);

	memset(result, 0, sizeof(*result));
	strata_index_writer_init(&u.index);
	u.file_hash = strata_sha256_new();

	if (mkdirat(dirfd, "root", 0755) < 0) {
		strata_error_set(err, errno, "%s: cannot create the layer directory", opts->layer_name);
		goto out;
	}
	u.rootfd = openat(dirfd, "root", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (u.rootfd < 0) {
		strata_error_set(err, errno, "%s: cannot open the layer directory", opts->layer_name);
		goto out;
	}
	splitfd = openat(dirfd, "tar-split.gz", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (splitfd < 0) {
		strata_error_set(err, errno, "%s: cannot create `tar-split.gz`", opts->layer_name);
		goto out;
	}
	u.split = gzdopen(splitfd, "wb1");
	if (u.split == NULL) {
		close(splitfd);
		strata_error_set(err, ENOMEM, "%s: cannot start `tar-split.gz`", opts->layer_name);
		goto out;
	}

	u.ar = archive_read_new();
	archive_read_support_format_tar(u.ar);
	archive_read_support_format_gnutar(u.ar);
	if (archive_read_open(u.ar, &u, NULL, archive_read_cb, NULL) != ARCHIVE_OK) {
		if (u.read_err)
			*err = steal_pointer(&u.read_err);
		else
			strata_error_set(err, la_errno(u.ar), "%s: cannot read the layer tar (%s)", opts->layer_name,
					 archive_error_string(u.ar));
		goto out;
	}

	for (;;) {
		uint64_t header_start;
		uint64_t data_start;

		r = archive_read_next_header(u.ar, &entry);
		if (r == ARCHIVE_EOF)
			break;
		if (u.read_err) {
			*err = steal_pointer(&u.read_err);
			goto out;
		}
		if (r == ARCHIVE_WARN) {
			strata_warn("%s: entry `%s`: %s", opts->layer_name,
				    archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "?",
				    archive_error_string(u.ar));
		} else if (r != ARCHIVE_OK) {
			/* An empty stream (0 bytes) is not a tar; 1024 zero bytes is the empty layer. */
			strata_error_set(err, la_errno(u.ar), "%s: invalid or truncated tar (%s)",
					 opts->layer_name, archive_error_string(u.ar));
			goto out;
		}
		result->tar_entries++;
		header_start = (uint64_t)archive_read_header_position(u.ar);
		data_start = (uint64_t)archive_filter_bytes(u.ar, 0);
		(void)header_start;

		if (unpack_entry(&u, entry, data_start, err) < 0) {
			if (u.read_err && *err == NULL)
				*err = steal_pointer(&u.read_err);
			goto out;
		}
	}

	/* Drain what follows the end-of-archive blocks: it is part of the blob and the diff_id. */
	{
		const void *buf;
		la_ssize_t n;

		while ((n = archive_read_cb(u.ar, &u, &buf)) > 0)
			;
		if (n < 0) {
			if (u.read_err)
				*err = steal_pointer(&u.read_err);
			else
				strata_error_set(err, EIO, "%s: read failed", opts->layer_name);
			goto out;
		}
	}
	if (split_flush_to(&u, u.supplied, err) < 0)
		goto out;
	{
		char tag = SPLIT_END;

		if (split_write(&u, &tag, 1, err) < 0)
			goto out;
	}
	result->tar_size = u.supplied;

	if (remove_aufs_meta(&u, err) < 0 || finish_directories(&u, err) < 0)
		goto out;
	if (write_index(&u, dirfd, err) < 0)
		goto out;
	rc = 0;

out:
	if (u.ar)
		archive_read_free(u.ar);
	if (u.split) {
		if (gzclose(u.split) != Z_OK && rc == 0)
			rc = strata_error_set(err, EIO, "%s: cannot write `tar-split.gz`", opts->layer_name);
	}
	if (u.parent_fd >= 0 && u.parent_fd != u.rootfd)
		close(u.parent_fd);
	if (u.rootfd >= 0)
		close(u.rootfd);
	free(u.parent_path);
	for (size_t i = 0; i < u.n_aufs_meta; i++)
		free(u.aufs_meta[i]);
	free(u.aufs_meta);
	free(u.paths.slots);
	strbuf_release(&u.pending);
	strata_index_writer_release(&u.index);
	strata_sha256_free(u.file_hash);
	strata_error_free(u.read_err);
	umask(old_umask);
	return rc;
}
