/*
 * The built-in teaching image: a small OCI image archive that strata writes
 * with its own code, so that `strata demo` works without network access or
 * any image on disk.
 *
 * The image has six layers, each showing one kind of change:
 *   1. base files
 *   2. a 4 KiB edit of a 4 MiB file (the whole file is copied up)
 *   3. a chmod that leaves the contents unchanged
 *   4. deletions by whiteout
 *   5. a directory replaced through an opaque whiteout
 *   6. an added file with a hardlink
 * Two runs against the same libarchive and zlib builds produce byte-identical
 * archives.
 */
#ifndef STRATA_DEMO_H
#define STRATA_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The tag the archive carries, in the index annotations of its manifest. */
#define STRATA_DEMO_TAG "localhost/strata-demo:latest"

#define STRATA_DEMO_LAYER_COUNT 6

/* Facts about one layer of the demo image, in layer order (base first). */
struct strata_demo_layer_info {
	const char *description;  /* the change, e.g. "chmod 0600 /data/chmod-me.bin" */
	const char *created_by;   /* history text in the config: "strata-demo: " + description */
	size_t entries;           /* number of entries in the layer tar */
	uint64_t file_bytes;      /* sum of regular-file data sizes (hardlinks and whiteouts add 0) */
};

/* Returns the static table of STRATA_DEMO_LAYER_COUNT layers and stores its length in *count. */
const struct strata_demo_layer_info *strata_demo_layers(size_t *count);

/*
 * Writes the teaching image as an OCI image-layout tar with gzip layers to
 * `path`, or to standard output when `path` is "-".  An existing file at
 * `path` is replaced.  On failure a partly written regular file at `path` is removed.
 */
int strata_demo_write_archive(const char *path, struct strata_error **err);

#endif
