/*
 * What changed between two trees: a view against its image, a layer against
 * the layers below it, or one image against another.
 *
 * Changes are reported in path order ('/' first, so a directory comes just
 * before its contents).  A deleted directory is reported once, without its
 * contents.
 *
 * Between layer stacks, a path is changed when its content or metadata
 * differs, and also when a layer of the second stack that the first lacks
 * ships it again unchanged (it costs bytes all the same); directories that a
 * layer only creates implicitly do not count as shipped.  So an image
 * against its parent lists exactly what the top layer holds.
 *
 * In a view, a directory that exists below is reported only when its own
 * metadata (mode, owner, mtime, xattrs) differs: the kernel copies parent
 * directories up without changing them, while adding or deleting a file
 * inside a directory changes its mtime.  Any other entry in the upper
 * directory was written by the view and is reported.
 */
#ifndef STRATA_DIFF_H
#define STRATA_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "index.h"
#include "merge.h"
#include "store.h"
#include "view.h"

enum strata_change_kind {
	STRATA_CHANGE_ADDED = 'A',
	STRATA_CHANGE_CHANGED = 'C',
	STRATA_CHANGE_DELETED = 'D',
};

enum strata_change_detail {
	STRATA_DETAIL_NONE,         /* added or deleted */
	STRATA_DETAIL_CONTENT,      /* regular file with other bytes */
	STRATA_DETAIL_METADATA,     /* same content (or a directory): mode, owner, times or xattrs only */
	STRATA_DETAIL_TYPE,         /* another type of file at the same path */
	STRATA_DETAIL_LINK,         /* symlink with another target */
	STRATA_DETAIL_WRITTEN,      /* written in a view, content not compared (no --long) */
	STRATA_DETAIL_REWRITTEN,    /* shipped again by a later layer, identical in content and metadata */
};

/* One side of a change: what was at the path. */
struct strata_change_side {
	bool present;
	enum strata_entry_type type;
	uint64_t size;
	uint32_t mode;
	int layer;                  /* layer (1 = bottom) that supplied the entry, or 0 */
	uint64_t inode;             /* views: the walked file's inode, so hard links can count once; else 0 */
};

struct strata_change {
	const char *path;           /* relative to the root, no leading "/"; not NUL-terminated */
	size_t path_len;
	enum strata_change_kind kind;
	enum strata_change_detail detail;
	struct strata_change_side before;
	struct strata_change_side after;
};

/* Receives each change in order; a non-zero return stops the diff and is returned. */
typedef int (*strata_change_fn)(void *data, const struct strata_change *change);

/* A layer stack with its indexes loaded and merged. */
struct strata_tree {
	struct strata_index *indexes;
	struct strata_digest *keys;     /* layer directory keys, bottom first */
	size_t nlayers;
	struct strata_merged merged;
};

/* Loads the indexes of the bottom `nlayers` layers of an image and merges them. */
int strata_tree_load(struct strata_store *store, const struct strata_image *image, size_t nlayers,
		     struct strata_tree *tree, struct strata_error **err);
void strata_tree_release(struct strata_tree *tree);

/* Compares two merged trees from their indexes alone. */
int strata_diff_trees(const struct strata_tree *before, const struct strata_tree *after, strata_change_fn fn,
		      void *data, struct strata_error **err);

/*
 * Compares a view with its image.  For the overlay driver this walks only
 * the upper directory; for the copy driver it walks the whole copy.  With
 * `details`, written files are hashed to tell content from metadata changes.
 */
int strata_diff_view(struct strata_store *store, const struct strata_view *view, bool details, strata_change_fn fn,
		     void *data, struct strata_error **err);

const char *strata_change_detail_name(enum strata_change_detail detail);

#endif
