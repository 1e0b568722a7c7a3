/*
 * Unpacking one layer tar into an overlayfs lower directory.
 *
 * The unpacker reads the uncompressed tar stream through a callback, creates
 * the tree under `root/` of a staging directory, and writes two more files
 * there in the same pass: `index` (see index.h) and `tar-split.gz`, the tar
 * headers and padding needed to rebuild the original tar byte for byte from
 * the unpacked files (see strata_layer_write_tar()).
 *
 * Every name is resolved below the layer root without following symlinks
 * (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so no entry can
 * create, link, chmod, chown, set xattrs or times on anything outside it.
 */
#ifndef STRATA_UNPACK_H
#define STRATA_UNPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/*
 * Supplies the next chunk of the uncompressed tar stream: stores a pointer in
 * *buf (valid until the next call) and returns its length, 0 at the end of
 * the stream, or -1 after filling *err.
 */
typedef ssize_t (*strata_read_fn)(void *ctx, const void **buf, struct strata_error **err);

struct strata_unpack_limits {
	uint64_t max_entries;       /* entries per layer */
	uint64_t max_layer_bytes;   /* uncompressed tar bytes per layer */
	uint64_t max_image_bytes;   /* uncompressed tar bytes of all layers of an archive */
	size_t max_path_length;     /* bytes in a normalised entry name */
	size_t max_path_depth;      /* components in an entry name */
	size_t max_xattr_size;      /* bytes of one xattr value */
};

/* Defaults far above what real images use; see strata_unpack_limits_default(). */
void strata_unpack_limits_default(struct strata_unpack_limits *limits);

struct strata_unpack_options {
	bool rootless;              /* non-root store: user.overlay.* xattrs, no chown, no device nodes */
	const char *layer_name;     /* for messages, e.g. "layer 3 (`blobs/sha256/ab…`)" */
	struct strata_unpack_limits limits;
};

struct strata_unpack_result {
	uint64_t tar_size;          /* bytes of the tar stream, trailing padding included */
	uint64_t tar_entries;       /* headers in the tar (extension headers not counted) */
	uint64_t entries;           /* records written to the index */
	uint64_t file_bytes;        /* content bytes of regular files (hard links counted once) */
	uint64_t lower_links;       /* hard links to files that only a lower layer has */
};

/*
 * Unpacks a tar stream into the empty staging directory `dirfd` (creating
 * root/, index and tar-split.gz).  Hard links whose target is not in this
 * layer are recorded as pending in the index and resolved later with
 * strata_layer_resolve_lower_links().  On failure the staging directory is
 * left for the caller to remove.
 */
int strata_layer_unpack(int dirfd, strata_read_fn read, void *read_ctx,
			const struct strata_unpack_options *opts, struct strata_unpack_result *result,
			struct strata_error **err);

/*
 * Materialises the pending hard links of the staged layer in `dirfd` by
 * copying each target's content from the lower layers (`lower_dirfds`,
 * bottom first, each a layer directory with root/ and index), then rewrites
 * the index.  Fails when a target is absent from the merged lower tree, is
 * not a regular file, or appears later in the same layer.
 */
int strata_layer_resolve_lower_links(int dirfd, const int *lower_dirfds, size_t nlower, bool rootless,
				     struct strata_error **err);

/*
 * Opens `path` below dirfd with openat2(2), refusing symlinks in any
 * component, "..", absolute paths and mount crossings.  O_NOFOLLOW and
 * O_CLOEXEC are always added.  Returns an fd or -1 with errno set.
 */
int strata_openat_beneath(int dirfd, const char *path, int flags);

/*
 * Returns libarchive's errno for a message, or 0 when it is not a system
 * error: libarchive reports -1 for none and EILSEQ (its
 * ARCHIVE_ERRNO_FILE_FORMAT) for input it cannot parse, whose strerror text
 * would only mislead.
 */
#define la_errno(a) (archive_errno(a) > 0 && archive_errno(a) != EILSEQ ? archive_errno(a) : 0)

/* Rebuilds the original layer tar from a layer directory and writes it to out_fd. */
int strata_layer_write_tar(int dirfd, int out_fd, struct strata_error **err);

#endif
