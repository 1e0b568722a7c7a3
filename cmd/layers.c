/*
 * strata layers: an image's layers, bottom to top, with history and sharing.
 */
#include <stdio.h>
#include <string.h>

#include "../core/util.h"
#include "cmd.h"

const struct option_spec layers_options[] = {
	{ "bytes", 0, NULL, OPT_BYTES, "print sizes as exact byte counts" },
	{ "json", 0, NULL, OPT_JSON, "print the layers as JSON" },
	{ "no-trunc", 0, NULL, OPT_NO_TRUNC, "print full digests and untruncated history" },
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

static json_t *layers_json(const struct strata_image *image, json_t *usage, json_t *history,
			   const long *layer_of_entry, bool mapped)
{
	char id[STRATA_DIGEST_STR_LEN];
	json_t *tags = json_array();
	json_t *layers = json_array();
	json_t *entries = json_array();

	strata_digest_string(&image->id, id);
	for (size_t t = 0; t < image->ntags; t++)
		json_array_append_new(tags, json_string(image->tags[t]));
	for (size_t i = 0; i < image->nlayers; i++) {
		const struct strata_image_layer *l = &image->layers[i];
		char diff[STRATA_DIGEST_STR_LEN];
		char blob[STRATA_DIGEST_STR_LEN];
		char key[STRATA_DIGEST_HEX_LEN + 1];
		json_t *entry;
		json_t *history_index = json_null();
		const char *created_by = NULL;

		strata_digest_string(&l->diff_id, diff);
		strata_digest_string(&l->blob_digest, blob);
		strata_digest_hex(&l->key, key);
		for (size_t h = 0; mapped && h < json_array_size(history); h++) {
			if (layer_of_entry[h] == (long)i) {
				history_index = json_integer((json_int_t)h);
				created_by = json_string_value(json_object_get(json_array_get(history, h), "created_by"));
			}
		}
		entry = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s?, s:o}",
				  "position", (json_int_t)(i + 1), "diff_id", diff, "blob_digest", blob,
				  "media_type", l->media_type, "compressed_size", (json_int_t)l->blob_size,
				  "size", (json_int_t)l->tar_size, "entries", (json_int_t)l->entries,
				  "shared_by", json_integer_value(json_object_get(usage, key)),
				  "created_by", created_by, "history_index", history_index);
		json_array_append_new(layers, entry);
	}
	for (size_t h = 0; h < json_array_size(history); h++) {
		json_t *e = json_array_get(history, h);
		json_t *layer = (mapped && layer_of_entry[h] >= 0) ? json_integer(layer_of_entry[h] + 1) : json_null();

		json_array_append_new(entries, json_pack("{s:I, s:s?, s:s?, s:s?, s:b, s:o}", "index", (json_int_t)h,
							 "created", json_string_value(json_object_get(e, "created")),
							 "created_by", json_string_value(json_object_get(e, "created_by")),
							 "comment", json_string_value(json_object_get(e, "comment")),
							 "empty_layer", json_is_true(json_object_get(e, "empty_layer")),
							 "layer", layer));
	}
	return json_pack("{s:s, s:o, s:o, s:o}", "id", id, "tags", tags, "layers", layers, "history", entries);
}

static void layer_row(struct table *table, const struct strata_image *image, size_t i, json_t *usage,
		      const char *created_by, struct cmd_args *args)
{
	const struct strata_image_layer *l = &image->layers[i];
	char pos[16];
	char diff[80];
	char compressed[32];
	char size[32];
	char entries[32];
	char shared[32];
	char key[STRATA_DIGEST_HEX_LEN + 1];
	auto_free char *by = NULL;
	const char *cells[7];
	bool exact = args->count[OPT_BYTES] > 0;

	strata_digest_hex(&l->key, key);
	snprintf(pos, sizeof(pos), "%zu", i + 1);
	format_digest(&l->diff_id, args->count[OPT_NO_TRUNC] > 0, diff, sizeof(diff));
	snprintf(entries, sizeof(entries), "%llu", (unsigned long long)l->entries);
	snprintf(shared, sizeof(shared), "%lld", (long long)json_integer_value(json_object_get(usage, key)));
	by = xstrdup(created_by ? created_by : "");
	if (!args->count[OPT_NO_TRUNC] && strlen(by) > 60)
		strcpy(by + 57, "...");
	cells[0] = pos;
	cells[1] = diff;
	cells[2] = format_size(l->blob_size, exact, compressed, sizeof(compressed));
	cells[3] = format_size(l->tar_size, exact, size, sizeof(size));
	cells[4] = entries;
	cells[5] = shared;
	cells[6] = by;
	table_add(table, cells);
}

static void empty_row(struct table *table, const char *created_by, struct cmd_args *args)
{
	auto_free char *by = xstrdup(created_by ? created_by : "");
	const char *cells[7] = { "-", "(empty layer)", "", "", "", "", by };

	if (!args->count[OPT_NO_TRUNC] && strlen(by) > 60)
		strcpy(by + 57, "...");
	table_add(table, cells);
}

int cmd_layers(struct strata_store *store, struct cmd_args *args)
{
	static const char *const header[] = { "#", "DIFF ID", "COMPRESSED", "SIZE", "ENTRIES", "SHARED",
					      "CREATED BY" };
	struct strata_error *err = NULL;
	struct strata_digest id;
	struct strata_image *image;
	json_t *usage;
	json_t *history;
	auto_free long *layer_of_entry = NULL;
	bool mapped;

	if (strata_store_resolve_image(store, args->argv[0], &id, &err) < 0)
		return report_error(err);
	image = strata_image_load(store, &id, &err);
	if (image == NULL)
		return report_error(err);
	usage = strata_store_layer_usage(store, &err);
	if (usage == NULL) {
		strata_image_free(image);
		return report_error(err);
	}
	history = json_object_get(image->config, "history");
	layer_of_entry = xcalloc(json_array_size(history) + 1, sizeof(long));
	mapped = history_map(history, image->nlayers, layer_of_entry);

	if (args->count[OPT_JSON]) {
		json_t *json = layers_json(image, usage, history, layer_of_entry, mapped);

		print_json(json);
		json_decref(json);
	} else {
		struct table table;

		table_init(&table, 7, header);
		if (mapped) {
			for (size_t h = 0; h < json_array_size(history); h++) {
				const char *by = json_string_value(json_object_get(json_array_get(history, h), "created_by"));

				if (layer_of_entry[h] < 0)
					empty_row(&table, by, args);
				else
					layer_row(&table, image, (size_t)layer_of_entry[h], usage, by, args);
			}
		} else {
			for (size_t i = 0; i < image->nlayers; i++)
				layer_row(&table, image, i, usage, NULL, args);
		}
		table_print(&table, stdout);
		table_release(&table);
	}
	json_decref(usage);
	strata_image_free(image);
	return 0;
}
