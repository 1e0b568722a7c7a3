/*
 * The merged tree of a layer stack, computed from layer indexes alone, with
 * the rules overlayfs applies when it stacks the layer directories: an upper
 * entry replaces a lower one, a whiteout hides the path and everything under
 * it, an opaque directory hides everything the lower layers had under it, and
 * a non-directory hides whatever was below it as a directory.
 */
#ifndef STRATA_MERGE_H
#define STRATA_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "index.h"

struct strata_merged_entry {
	const char *path;       /* points into the layer's index strings; not NUL-terminated */
	uint32_t path_len;
	uint32_t layer;         /* position in the stack, 0 = bottom */
	uint32_t record;        /* record number in that layer's index */
};

struct strata_merged {
	struct strata_merged_entry *entries;  /* sorted with '/' before every other byte */
	size_t count;
};

/*
 * Merges `n` loaded indexes (bottom first).  The result borrows path
 * strings from the indexes, which must outlive it.
 */
int strata_merge_layers(const struct strata_index *layers, size_t n, struct strata_merged *out,
			struct strata_error **err);

enum strata_merge_event_kind {
	STRATA_MERGE_PLACED,    /* an entry of layer `layer` enters the tree (`previous`: what it replaces) */
	STRATA_MERGE_HIDDEN,    /* a lower entry leaves the tree because of `by` in layer `layer` */
};

struct strata_merge_event {
	enum strata_merge_event_kind kind;
	uint32_t layer;
	const struct strata_merged_entry *entry;     /* the entry placed or hidden */
	const struct strata_merged_entry *by;        /* HIDDEN: the upper entry that hides it */
	const struct strata_merged_entry *previous;  /* PLACED: the lower entry at the same path, or NULL */
	const struct strata_merged *below;           /* the tree of the layers under `layer` */
};

typedef void (*strata_merge_fn)(void *data, const struct strata_merge_event *event);

/*
 * Merges like strata_merge_layers() and reports every entry that enters or
 * leaves the tree, layer by layer, in path order.  An entry replaced at its
 * own path is reported HIDDEN (by the new entry) before the new one is
 * PLACED with it as `previous`. When an opaque directory or whiteout of the
 * same layer hid it first, `previous` is NULL.
 */
int strata_merge_layers_traced(const struct strata_index *layers, size_t n, struct strata_merged *out,
			       strata_merge_fn fn, void *data, struct strata_error **err);
void strata_merged_release(struct strata_merged *merged);

/* Compares paths component by component ('/' sorts before any other byte). */
int strata_path_compare(const char *a, size_t alen, const char *b, size_t blen);

/* Finds a path in the merged tree; returns NULL if absent. */
const struct strata_merged_entry *strata_merged_find(const struct strata_merged *merged, const char *path,
						     size_t len);

#endif
