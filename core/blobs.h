/*
 * Reading an image archive in one pass (internal to the import).
 *
 * Archives usually list layer blobs before the manifest that explains them
 * (the docker, podman and skopeo archives in the test corpus all do), and
 * standard input cannot seek.  So every regular file is handled as it streams
 * past.  Small JSON and text files are kept in memory as metadata.  Every
 * other file is a layer candidate, which is hashed as stored, decompressed,
 * hashed again, and unpacked into staging by a second thread.  Which candidates are real layers is
 * decided afterwards from the manifests (import.c); the others are dropped.
 */
#ifndef STRATA_BLOBS_H
#define STRATA_BLOBS_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "store.h"
#include "unpack.h"

enum strata_compression {
	STRATA_COMPRESSION_NONE,
	STRATA_COMPRESSION_GZIP,
	STRATA_COMPRESSION_ZSTD,
};

struct strata_blob {
	char *name;                     /* normalised path in the archive */
	struct strata_digest digest;    /* sha256 of the bytes as stored */
	uint64_t size;

	char *data;                     /* metadata kept in memory, or NULL */
	size_t len;

	/* Layer candidates only: */
	bool is_layer;
	enum strata_compression compression;
	bool present;                   /* the store has it: hashed, not unpacked */
	struct strata_digest diff_id;   /* sha256 of the uncompressed tar */
	uint64_t tar_size;
	char *stage;                    /* staging directory relative to the store, or NULL */
	struct strata_unpack_result unpack;
	struct strata_error *unpack_err;/* why it could not be unpacked (reported if it is a layer) */
	struct strata_digest resolved_chain; /* chain ID its lower hard links were resolved for */
	bool published;
};

struct strata_alias {
	char *name;                     /* symlink or hard link in the archive */
	char *target;                   /* normalised path it points to */
};

struct strata_archive {
	uint64_t tar_bytes;             /* uncompressed bytes of the layer candidates read so far */
	struct strata_blob *blobs;
	size_t nblobs;
	struct strata_alias *aliases;
	size_t naliases;
};

typedef void (*strata_progress_fn)(void *data, uint64_t done, uint64_t total, const char *current);

struct strata_read_options {
	const char *path;               /* file, or "-" for standard input */
	const char *stage;              /* staging directory for this import, relative to the store */
	struct strata_unpack_limits limits;
	strata_progress_fn progress;
	void *progress_data;
};

int strata_archive_read(struct strata_store *store, const struct strata_read_options *opts,
			struct strata_archive *archive, struct strata_error **err);
void strata_archive_release(struct strata_archive *archive);

/* Finds a blob by archive path, following aliases; NULL if absent. */
struct strata_blob *strata_archive_find(struct strata_archive *archive, const char *name);
/* Finds a blob stored as blobs/sha256/<hex> whose name is the digest; NULL if absent. */
struct strata_blob *strata_archive_find_digest(struct strata_archive *archive, const struct strata_digest *d);

/*
 * Returns the blob-index name for an archive path that identifies its blob,
 * or NULL: "blobs/sha256/<hex>" and "<hex>.tar" name the blob digest, and
 * "<v1 id>/layer.tar" names a docker v1 layer ID.
 */
char *strata_blob_index_name(const char *name);

/* Unpacks a layer that was kept in memory (a blob that looked like JSON). */
int strata_blob_unpack_memory(struct strata_store *store, struct strata_blob *blob, const char *stage,
			      const struct strata_unpack_limits *limits, struct strata_error **err);

#endif
