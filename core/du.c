#define _GNU_SOURCE
#include "du.h"

#include <string.h>

#include "merge.h"
#include "util.h"

const char *strata_waste_reason_name(enum strata_waste_reason reason)
{
	switch (reason) {
	case STRATA_WASTE_SUPERSEDED:
		return "superseded";
	case STRATA_WASTE_DELETED:
		return "deleted";
	case STRATA_WASTE_OPAQUE:
		return "hidden by an opaque directory";
	case STRATA_WASTE_REPLACED:
		return "replaced";
	}
	return "";
}

struct du_state {
	const struct strata_tree *tree;     /* indexes only; merging happens here */
	struct strata_du_report *report;
	uint32_t **visible;                 /* per layer, per record: names of that copy in the tree */
	uint64_t **lower_copy;              /* per layer, per record: the lower copy a hard link into a
					     * lower layer names, as (layer << 32 | record) + 1, or 0 */
	struct strata_waste *waste;
	size_t nwaste;
	size_t cap;
};

/* Returns the record holding the data of entry (layer, record), or STRATA_INDEX_NONE when it has none. */
static uint32_t data_record(const struct strata_index *idx, uint32_t record)
{
	const struct strata_index_record *r = &idx->records[record];

	if (r->flags & STRATA_ENTRY_LOWER_COPY)
		return STRATA_INDEX_NONE;  /* a hard link into a lower layer ships no data */
	if (r->type == STRATA_ENTRY_REG)
		return record;
	if (r->type == STRATA_ENTRY_HARDLINK && r->link_record != STRATA_INDEX_NONE &&
	    !(idx->records[r->link_record].flags & STRATA_ENTRY_LOWER_COPY) &&
	    idx->records[r->link_record].type == STRATA_ENTRY_REG)
		return r->link_record;
	return STRATA_INDEX_NONE;
}

static enum strata_waste_reason reason_of(const struct strata_tree *t, const struct strata_merge_event *ev)
{
	const struct strata_index_record *by = &t->indexes[ev->by->layer].records[ev->by->record];

	if (by->type == STRATA_ENTRY_WHITEOUT)
		return STRATA_WASTE_DELETED;
	if (ev->by->path_len == ev->entry->path_len && memcmp(ev->by->path, ev->entry->path, ev->entry->path_len) == 0)
		return by->type == STRATA_ENTRY_REG || by->type == STRATA_ENTRY_HARDLINK ? STRATA_WASTE_SUPERSEDED
										   : STRATA_WASTE_REPLACED;
	if (by->type == STRATA_ENTRY_DIR)
		return STRATA_WASTE_OPAQUE;
	return STRATA_WASTE_REPLACED;
}

static void on_placed(struct du_state *st, const struct strata_merge_event *ev)
{
	const struct strata_index *idx = &st->tree->indexes[ev->layer];
	const struct strata_index_record *r = &idx->records[ev->entry->record];
	struct strata_du_layer *layer = &st->report->layers[ev->layer];
	uint32_t data = data_record(idx, ev->entry->record);

	if (data == STRATA_INDEX_NONE && (r->flags & STRATA_ENTRY_LOWER_COPY)) {
		/* Another name of the lower layer's copy: that copy stays live while this name is visible. */
		size_t len;
		const char *target = strata_index_link(idx, ev->entry->record, &len);
		const struct strata_merged_entry *t = strata_merged_find(ev->below, target, len);
		uint32_t tdata = t ? data_record(&st->tree->indexes[t->layer], t->record) : STRATA_INDEX_NONE;

		if (tdata != STRATA_INDEX_NONE) {
			st->lower_copy[ev->layer][ev->entry->record] = ((uint64_t)t->layer << 32 | tdata) + 1;
			st->visible[t->layer][tdata]++;
		}
		return;
	}
	if (data == STRATA_INDEX_NONE)
		return;
	st->visible[ev->layer][data]++;
	if (r->type != STRATA_ENTRY_REG)
		return;  /* a hard link's bytes belong to the name that carries the data */

	if (ev->previous == NULL) {
		layer->added_bytes += r->size;
		layer->added_files++;
		return;
	}
	{
		const struct strata_index *pidx = &st->tree->indexes[ev->previous->layer];
		const struct strata_index_record *p = &pidx->records[ev->previous->record];
		uint32_t pdata = data_record(pidx, ev->previous->record);

		if (pdata == STRATA_INDEX_NONE || (p->type != STRATA_ENTRY_REG && p->type != STRATA_ENTRY_HARDLINK)) {
			layer->added_bytes += r->size;
			layer->added_files++;
		} else if (memcmp(pidx->records[pdata].sha256, r->sha256, 32) == 0) {
			layer->meta_bytes += r->size;
			layer->meta_files++;
		} else {
			layer->copyup_bytes += r->size;
			layer->copyup_files++;
		}
	}
}

static void on_hidden(struct du_state *st, const struct strata_merge_event *ev)
{
	uint32_t copy_layer = ev->entry->layer;
	const struct strata_index *idx = &st->tree->indexes[copy_layer];
	uint32_t data = data_record(idx, ev->entry->record);
	uint64_t lower = st->lower_copy[ev->entry->layer][ev->entry->record];
	const struct strata_index_record *d;
	struct strata_du_layer *layer = &st->report->layers[ev->layer];
	struct strata_waste *w;

	if (lower) {
		copy_layer = (uint32_t)((lower - 1) >> 32);
		idx = &st->tree->indexes[copy_layer];
		data = (uint32_t)(lower - 1);
	}
	if (data == STRATA_INDEX_NONE || st->visible[copy_layer][data] == 0)
		return;
	if (--st->visible[copy_layer][data] > 0)
		return;  /* another name of the same copy is still visible */

	d = &idx->records[data];
	layer->hidden_bytes += d->size;
	layer->hidden_files++;
	if (st->nwaste == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 64;
		st->waste = xrealloc(st->waste, st->cap * sizeof(*st->waste));
	}
	w = &st->waste[st->nwaste++];
	memset(w, 0, sizeof(*w));
	{
		size_t len;
		const char *path = strata_index_path(idx, data, &len);

		w->path = xstrndup(path, len);
	}
	w->size = d->size;
	w->added_layer = copy_layer + 1;
	w->hidden_layer = ev->layer + 1;
	w->reason = reason_of(st->tree, ev);
	if (w->reason != STRATA_WASTE_SUPERSEDED)
		layer->hidden_by_whiteouts += d->size;
	if (w->reason == STRATA_WASTE_SUPERSEDED) {
		const struct strata_index *bidx = &st->tree->indexes[ev->by->layer];
		uint32_t bdata = data_record(bidx, ev->by->record);

		w->metadata_only = bdata != STRATA_INDEX_NONE && memcmp(bidx->records[bdata].sha256, d->sha256, 32) == 0;
	}
}

static void on_event(void *data, const struct strata_merge_event *ev)
{
	struct du_state *st = data;

	if (ev->kind == STRATA_MERGE_PLACED)
		on_placed(st, ev);
	else
		on_hidden(st, ev);
}

static int compare_waste(const void *a, const void *b)
{
	const struct strata_waste *wa = a;
	const struct strata_waste *wb = b;

	if (wa->size != wb->size)
		return wa->size < wb->size ? 1 : -1;
	return strcmp(wa->path, wb->path);
}

int strata_du_image(struct strata_store *store, const struct strata_image *image, struct strata_du_report *report,
		    struct strata_error **err)
{
	struct strata_tree tree;
	struct strata_merged merged = {0};
	struct du_state st = { .report = report };
	int rc = -1;

	memset(report, 0, sizeof(*report));
	/* Load the indexes without merging; the traced merge below does that. */
	if (strata_tree_load(store, image, image->nlayers, &tree, err) < 0)
		return -1;
	st.tree = &tree;
	report->nlayers = tree.nlayers;
	report->layers = xcalloc(tree.nlayers + 1, sizeof(*report->layers));
	st.visible = xcalloc(tree.nlayers + 1, sizeof(*st.visible));
	st.lower_copy = xcalloc(tree.nlayers + 1, sizeof(*st.lower_copy));
	for (size_t l = 0; l < tree.nlayers; l++) {
		const struct strata_index *idx = &tree.indexes[l];
		struct strata_du_layer *layer = &report->layers[l];

		st.visible[l] = xcalloc(idx->count + 1, sizeof(uint32_t));
		st.lower_copy[l] = xcalloc(idx->count + 1, sizeof(uint64_t));
		layer->tar_size = image->layers[l].tar_size;
		layer->compressed_size = image->layers[l].blob_size;
		report->tar_size += layer->tar_size;
		report->compressed_size += layer->compressed_size;
		for (uint32_t n = 0; n < idx->count; n++) {
			const struct strata_index_record *r = &idx->records[n];

			if (r->type == STRATA_ENTRY_WHITEOUT)
				layer->whiteouts++;
			if (r->type == STRATA_ENTRY_DIR && (r->flags & STRATA_ENTRY_OPAQUE))
				layer->opaque_dirs++;
			if (data_record(idx, n) == n)
				report->shipped += r->size;
		}
	}
	if (strata_merge_layers_traced(tree.indexes, tree.nlayers, &merged, on_event, &st, err) < 0)
		goto out;

	/* Live: every copy still reachable under some name. */
	for (size_t l = 0; l < tree.nlayers; l++)
		for (uint32_t n = 0; n < tree.indexes[l].count; n++)
			if (st.visible[l][n] > 0)
				report->live += tree.indexes[l].records[n].size;
	report->wasted = report->shipped - report->live;
	if (st.nwaste > 0)
		qsort(st.waste, st.nwaste, sizeof(*st.waste), compare_waste);
	report->waste = steal_pointer(&st.waste);
	report->nwaste = st.nwaste;
	rc = 0;
out:
	for (size_t l = 0; l < tree.nlayers; l++) {
		free(st.visible[l]);
		free(st.lower_copy[l]);
	}
	free(st.visible);
	free(st.lower_copy);
	for (size_t i = 0; st.waste && i < st.nwaste; i++)
		free(st.waste[i].path);
	free(st.waste);
	strata_merged_release(&merged);
	strata_tree_release(&tree);
	return rc;
}

void strata_du_report_release(struct strata_du_report *report)
{
	for (size_t i = 0; i < report->nwaste; i++)
		free(report->waste[i].path);
	free(report->waste);
	free(report->layers);
	memset(report, 0, sizeof(*report));
}

/* ---- views ------------------------------------------------------------------ */

struct view_du_state {
	const struct strata_tree *tree;
	struct strata_du_view *out;
	strata_change_fn each;
	void *data;
	uint64_t *inodes;           /* open-addressing set of regular files already counted */
	size_t inode_cap;
	size_t inode_count;
	char *recreated;            /* a directory the view deleted and made again: what is under it is new */
	size_t recreated_len;
};

/* Adds an inode to the set; returns false when it was there already (another name of a counted file). */
static bool first_name(struct view_du_state *st, uint64_t inode)
{
	if (inode == 0)
		return true;
	if ((st->inode_count + 1) * 2 > st->inode_cap) {
		uint64_t *old = st->inodes;
		size_t old_cap = st->inode_cap;

		st->inode_cap = old_cap ? old_cap * 2 : 1024;
		st->inodes = xcalloc(st->inode_cap, sizeof(uint64_t));
		st->inode_count = 0;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i])
				first_name(st, old[i]);
		free(old);
	}
	for (size_t i = (size_t)(inode * 11400714819323198485ULL) & (st->inode_cap - 1);;
	     i = (i + 1) & (st->inode_cap - 1)) {
		if (st->inodes[i] == inode)
			return false;
		if (st->inodes[i] == 0) {
			st->inodes[i] = inode;
			st->inode_count++;
			return true;
		}
	}
}

/* Bytes of the regular files the image has at or below `path` (hard links once). */
static uint64_t bytes_below(const struct strata_tree *tree, const char *path, size_t len)
{
	const struct strata_merged *mg = &tree->merged;
	const struct strata_merged_entry *start = strata_merged_find(mg, path, len);
	uint64_t total = 0;

	if (start == NULL)
		return 0;
	for (size_t i = (size_t)(start - mg->entries); i < mg->count; i++) {
		const struct strata_merged_entry *m = &mg->entries[i];
		const struct strata_index_record *r = &tree->indexes[m->layer].records[m->record];

		if (i > (size_t)(start - mg->entries) &&
		    !(m->path_len > len && m->path[len] == '/' && memcmp(m->path, path, len) == 0))
			break;
		if (r->type == STRATA_ENTRY_REG && !(r->flags & STRATA_ENTRY_LOWER_COPY))
			total += r->size;
	}
	return total;
}

static int on_view_change(void *data, const struct strata_change *c)
{
	struct view_du_state *st = data;
	struct strata_du_view *out = st->out;

	bool under_recreated = st->recreated && c->path_len > st->recreated_len &&
			       c->path[st->recreated_len] == '/' &&
			       memcmp(c->path, st->recreated, st->recreated_len) == 0;

	if (c->kind == STRATA_CHANGE_DELETED) {
		out->whiteouts++;
		out->whiteout_bytes += bytes_below(st->tree, c->path, c->path_len);
		if (c->after.present) {
			/* Deleted and made again: its contents are new, as in a committed layer. */
			free(st->recreated);
			st->recreated = xstrndup(c->path, c->path_len);
			st->recreated_len = c->path_len;
		}
	} else if (c->after.type != STRATA_ENTRY_REG) {
		out->other_changes++;
	} else if (!first_name(st, c->after.inode)) {
		/* Another name of a file already counted: a hard link ships no data. */
		out->other_changes++;
	} else if (c->kind == STRATA_CHANGE_ADDED || c->before.type != STRATA_ENTRY_REG || under_recreated) {
		out->added_files++;
		out->added_bytes += c->after.size;
	} else if (c->detail == STRATA_DETAIL_CONTENT) {
		out->copyup_files++;
		out->copyup_bytes += c->after.size;
	} else {
		out->meta_files++;
		out->meta_bytes += c->after.size;
	}
	return st->each ? st->each(st->data, c) : 0;
}

int strata_du_view(struct strata_store *store, const struct strata_view *view, struct strata_du_view *out,
		   strata_change_fn each, void *data, struct strata_error **err)
{
	struct strata_image *image = strata_image_load(store, &view->image, err);
	struct strata_tree tree;
	struct view_du_state st = { .out = out, .each = each, .data = data };
	int rc;

	memset(out, 0, sizeof(*out));
	if (image == NULL)
		return strata_error_wrap(err, "view `%s`", view->name);
	if (strata_tree_load(store, image, image->nlayers, &tree, err) < 0) {
		strata_image_free(image);
		return -1;
	}
	st.tree = &tree;
	rc = strata_diff_view(store, view, true, on_view_change, &st, err);
	free(st.inodes);
	free(st.recreated);
	strata_tree_release(&tree);
	strata_image_free(image);
	return rc;
}
