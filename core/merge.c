#include "merge.h"

#include <string.h>

#include "util.h"

int strata_path_compare(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		unsigned char ca = (unsigned char)a[i];
		unsigned char cb = (unsigned char)b[i];

		if (ca == cb)
			continue;
		/* '/' ends a component, so it sorts before every other byte. */
		if (ca == '/')
			return -1;
		if (cb == '/')
			return 1;
		return ca < cb ? -1 : 1;
	}
	return (alen > blen) - (alen < blen);
}

static int compare_entries(const void *a, const void *b)
{
	const struct strata_merged_entry *ea = a;
	const struct strata_merged_entry *eb = b;

	return strata_path_compare(ea->path, ea->path_len, eb->path, eb->path_len);
}

/* True when `path` lies strictly below the directory `prefix`. */
static bool is_below(const char *path, size_t len, const char *prefix, size_t plen)
{
	return plen > 0 && len > plen && path[plen] == '/' && memcmp(path, prefix, plen) == 0;
}

/* Returns the layer's entries (last record of a repeated path only), sorted. */
static struct strata_merged_entry *layer_entries(const struct strata_index *idx, uint32_t layer, size_t *count)
{
	struct strata_merged_entry *out = xmalloc((idx->count ? idx->count : 1) * sizeof(*out));
	size_t n = 0;

	for (uint32_t i = 0; i < idx->count; i++) {
		size_t len;
		const char *path = strata_index_path(idx, i, &len);

		out[n++] = (struct strata_merged_entry){ path, (uint32_t)len, layer, i };
	}
	qsort(out, n, sizeof(*out), compare_entries);

	/* qsort is not stable: keep the highest record number of equal paths. */
	{
		size_t w = 0;

		for (size_t r = 0; r < n; r++) {
			if (w > 0 && out[w - 1].path_len == out[r].path_len &&
			    memcmp(out[w - 1].path, out[r].path, out[r].path_len) == 0) {
				if (out[r].record > out[w - 1].record)
					out[w - 1] = out[r];
				continue;
			}
			out[w++] = out[r];
		}
		n = w;
	}
	*count = n;
	return out;
}

int strata_merge_layers(const struct strata_index *layers, size_t n, struct strata_merged *out,
			struct strata_error **err)
{
	return strata_merge_layers_traced(layers, n, out, NULL, NULL, err);
}

/* The tree below the layer being merged, for the callback's lookups. */
static __thread struct strata_merged below_tree;

static void report(strata_merge_fn fn, void *data, enum strata_merge_event_kind kind, size_t layer,
		   const struct strata_merged_entry *entry, const struct strata_merged_entry *other)
{
	struct strata_merge_event ev = { .kind = kind, .layer = (uint32_t)layer, .entry = entry, .below = &below_tree };

	if (fn == NULL)
		return;
	if (kind == STRATA_MERGE_HIDDEN)
		ev.by = other;
	else
		ev.previous = other;
	fn(data, &ev);
}

int strata_merge_layers_traced(const struct strata_index *layers, size_t n, struct strata_merged *out,
			       strata_merge_fn fn, void *data, struct strata_error **err)
{
	struct strata_merged_entry *merged = NULL;
	size_t count = 0;

	(void)err;
	memset(out, 0, sizeof(*out));
	for (size_t l = 0; l < n; l++) {
		const struct strata_index *idx = &layers[l];
		size_t upper_count;
		struct strata_merged_entry *upper = layer_entries(idx, (uint32_t)l, &upper_count);
		struct strata_merged_entry *next = xmalloc((count + upper_count + 1) * sizeof(*next));
		size_t i = 0;
		size_t j = 0;
		size_t k = 0;
		const char *hide = NULL;    /* lower entries below this path are hidden */
		size_t hide_len = 0;
		const struct strata_merged_entry *hider = NULL;

		below_tree.entries = merged;
		below_tree.count = count;

		while (i < count || j < upper_count) {
			int c;

			if (i < count && j < upper_count)
				c = strata_path_compare(merged[i].path, merged[i].path_len, upper[j].path, upper[j].path_len);
			else
				c = i < count ? -1 : 1;

			if (c < 0) {
				/* Only in the lower stack: kept unless an upper entry hides it. */
				if (!(hide && is_below(merged[i].path, merged[i].path_len, hide, hide_len)))
					next[k++] = merged[i];
				else
					report(fn, data, STRATA_MERGE_HIDDEN, l, &merged[i], hider);
				i++;
				continue;
			}

			{
				const struct strata_index_record *r = &idx->records[upper[j].record];
				bool hides_below = r->type != STRATA_ENTRY_DIR || (r->flags & STRATA_ENTRY_OPAQUE);
				const struct strata_merged_entry *previous = NULL;

				if (c == 0) {
					/* An opaque directory or whiteout of this layer may have hidden it already. */
					if (hide && is_below(merged[i].path, merged[i].path_len, hide, hide_len)) {
						report(fn, data, STRATA_MERGE_HIDDEN, l, &merged[i], hider);
					} else {
						report(fn, data, STRATA_MERGE_HIDDEN, l, &merged[i], &upper[j]);
						previous = &merged[i];
					}
				}
				if (hides_below && !(hide && is_below(upper[j].path, upper[j].path_len, hide, hide_len))) {
					hide = upper[j].path;
					hide_len = upper[j].path_len;
					hider = &upper[j];
				}
				if (r->type != STRATA_ENTRY_WHITEOUT) {
					next[k++] = upper[j];
					report(fn, data, STRATA_MERGE_PLACED, l, &next[k - 1], previous);
				}
				if (c == 0)
					i++;
				j++;
			}
		}
		free(upper);
		free(merged);
		merged = next;
		count = k;
	}
	out->entries = merged;
	out->count = count;
	return 0;
}

void strata_merged_release(struct strata_merged *merged)
{
	free(merged->entries);
	memset(merged, 0, sizeof(*merged));
}

const struct strata_merged_entry *strata_merged_find(const struct strata_merged *merged, const char *path,
						     size_t len)
{
	size_t lo = 0;
	size_t hi = merged->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strata_path_compare(merged->entries[mid].path, merged->entries[mid].path_len, path, len);

		if (c == 0)
			return &merged->entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
