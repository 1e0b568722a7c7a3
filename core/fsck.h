/*
 * Checking a store for damage: after a crash, a full disk or a bug.
 */
#ifndef STRATA_FSCK_H
#define STRATA_FSCK_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "store.h"

enum strata_fsck_severity {
	STRATA_FSCK_NOTE,       /* expected leftovers, such as staging of a killed command */
	STRATA_FSCK_PROBLEM,    /* something that is broken */
};

/*
 * Receives one finding: what is affected (a tag, image, layer, view or
 * staging path), what is wrong, and whether --repair removed it.
 */
typedef void (*strata_fsck_fn)(void *data, enum strata_fsck_severity severity, const char *subject,
			       const char *finding, bool repaired);

struct strata_fsck_result {
	size_t problems;
	size_t notes;
	size_t repaired;            /* problems and notes removed by --repair */
	size_t unrepaired;          /* problems still there */
	size_t layers_checked;
	size_t images_checked;
};

/*
 * Checks the store, which the caller has locked without cleaning staging:
 * tags point at images, images at layers whose indexes load, every layer
 * matches its index (content re-hashed), views at images, and no staging is
 * left.  With `repair`, removes broken tags, images whose layers are broken
 * or missing, broken layers, blob-index entries of missing layers and stale
 * staging, and reports each removal.
 */
int strata_fsck(struct strata_store *store, bool repair, strata_fsck_fn fn, void *data,
		struct strata_fsck_result *result, struct strata_error **err);

#endif
