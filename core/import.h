/*
 * Importing image archives into the store (pull-from-tarball).
 */
#ifndef STRATA_IMPORT_H
#define STRATA_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blobs.h"
#include "digest.h"
#include "error.h"
#include "store.h"
#include "unpack.h"

struct strata_import_options {
	const char *path;               /* archive file, or "-" for standard input */
	const char *const *tags;        /* extra tags to add (already normalised) */
	size_t ntags;
	const char *platform;           /* "os/arch[/variant]", or NULL for the host's */
	struct strata_unpack_limits limits;
	strata_progress_fn progress;
	void *progress_data;
};

struct strata_import_layer {
	struct strata_digest diff_id;
	bool unpacked;                  /* false: the store already had it */
	uint64_t tar_size;
};

struct strata_import_image {
	struct strata_digest id;
	char **tags;
	size_t ntags;
	struct strata_import_layer *layers;
	size_t nlayers;
};

struct strata_import_result {
	struct strata_import_image *images;
	size_t nimages;
};

/*
 * Imports every image of the archive into `store`, which the caller has
 * opened with the writer lock.  Everything is read and verified before
 * anything is published; on failure the store is unchanged.
 */
int strata_import(struct strata_store *store, const struct strata_import_options *opts,
		  struct strata_import_result *result, struct strata_error **err);
void strata_import_result_release(struct strata_import_result *result);

/* Returns the host platform as "linux/<GOARCH>[/<variant>]" (static storage). */
const char *strata_host_platform(void);

#endif
