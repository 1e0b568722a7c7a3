/*
 * Where an image's bytes are, and why it grew.
 *
 * Definitions (the man page strata-du(1) repeats them with an example):
 * - A copy is the data of one regular file in one layer.  Hard links within
 *   a layer share one copy, so shared inodes count once.  A hard link to a
 *   lower layer's file ships no data and adds no copy: it is another name of
 *   the lower copy.
 * - shipped: the bytes of every copy in every layer (apparent sizes, so a
 *   sparse file counts its full length).
 * - live: the bytes of the copies the final tree can still see under at
 *   least one name.
 * - wasted = shipped - live: copies no name of the final tree reaches.  Each
 *   wasted copy is blamed on the layer that made its last visible name
 *   disappear. The reason is one of: superseded (the same path written
 *   again), deleted (a whiteout of it or of a parent directory), hidden by an
 *   opaque directory, or replaced (a parent directory turned into a file).
 * - efficiency = live / shipped (1 for an image without files).
 */
#ifndef STRATA_DU_H
#define STRATA_DU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diff.h"
#include "error.h"
#include "store.h"
#include "view.h"

enum strata_waste_reason {
	STRATA_WASTE_SUPERSEDED,
	STRATA_WASTE_DELETED,
	STRATA_WASTE_OPAQUE,
	STRATA_WASTE_REPLACED,
};

struct strata_du_layer {
	uint64_t tar_size;
	uint64_t compressed_size;
	uint64_t added_bytes;       /* copies at paths the layers below did not show */
	uint64_t added_files;
	uint64_t copyup_bytes;      /* copies at visible paths, with new content */
	uint64_t copyup_files;
	uint64_t meta_bytes;        /* copies at visible paths, same content: mode, owner or times only */
	uint64_t meta_files;
	uint64_t whiteouts;         /* whiteout entries */
	uint64_t opaque_dirs;       /* opaque directory markers */
	uint64_t hidden_bytes;      /* bytes of lower copies this layer made unreachable */
	uint64_t hidden_files;
	uint64_t hidden_by_whiteouts;  /* part of hidden_bytes: deleted or hidden by opaque directories */
};

struct strata_waste {
	char *path;                 /* "/"-less path of the copy's file */
	uint64_t size;
	uint32_t added_layer;       /* 1 = bottom */
	uint32_t hidden_layer;
	enum strata_waste_reason reason;
	bool metadata_only;         /* SUPERSEDED by an identical copy (a chmod, chown or touch) */
};

struct strata_du_report {
	size_t nlayers;
	struct strata_du_layer *layers;
	uint64_t shipped;
	uint64_t live;
	uint64_t wasted;
	uint64_t tar_size;
	uint64_t compressed_size;
	struct strata_waste *waste;  /* every wasted copy, largest first */
	size_t nwaste;
};

int strata_du_image(struct strata_store *store, const struct strata_image *image, struct strata_du_report *report,
		    struct strata_error **err);
void strata_du_report_release(struct strata_du_report *report);
const char *strata_waste_reason_name(enum strata_waste_reason reason);

/* Bytes and files a view would add to its image if it were committed as a layer. */
struct strata_du_view {
	uint64_t added_files;
	uint64_t added_bytes;
	uint64_t copyup_files;
	uint64_t copyup_bytes;
	uint64_t meta_files;        /* the chmod/chown trap: whole files copied for metadata */
	uint64_t meta_bytes;
	uint64_t whiteouts;         /* deleted paths */
	uint64_t whiteout_bytes;    /* bytes those deletions fail to free: they still ship below */
	uint64_t other_changes;     /* directories, symlinks and other entries */
};

int strata_du_view(struct strata_store *store, const struct strata_view *view, struct strata_du_view *out,
		   strata_change_fn each, void *data, struct strata_error **err);

#endif
