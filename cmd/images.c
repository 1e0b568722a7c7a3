/*
 * strata images: list the images in the store.
 */
#include <stdio.h>
#include <string.h>

#include "../core/util.h"
#include "cmd.h"

const struct option_spec images_options[] = {
	{ "bytes", 0, NULL, OPT_BYTES, "print sizes as exact byte counts" },
	{ "json", 0, NULL, OPT_JSON, "print the list as JSON" },
	{ "no-trunc", 0, NULL, OPT_NO_TRUNC, "print full image IDs" },
	{ "quiet", 'q', NULL, OPT_QUIET, "print only full image IDs" },
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

static uint64_t image_size(const struct strata_image *image, bool compressed)
{
	uint64_t total = 0;

	for (size_t i = 0; i < image->nlayers; i++)
		total += compressed ? image->layers[i].blob_size : image->layers[i].tar_size;
	return total;
}

static json_t *image_json(const struct strata_image *image)
{
	char id[STRATA_DIGEST_STR_LEN];
	json_t *tags = json_array();
	const char *created = json_string_value(json_object_get(image->config, "created"));

	strata_digest_string(&image->id, id);
	for (size_t t = 0; t < image->ntags; t++)
		json_array_append_new(tags, json_string(image->tags[t]));
	return json_pack("{s:s, s:o, s:s?, s:I, s:I, s:I}", "id", id, "tags", tags, "created", created,
			 "layers", (json_int_t)image->nlayers, "size", (json_int_t)image_size(image, false),
			 "compressed_size", (json_int_t)image_size(image, true));
}

static void add_rows(struct table *table, const struct strata_image *image, struct cmd_args *args)
{
	char id[80];
	char created[64];
	char layers[32];
	char size[32];
	const char *cells[5];

	format_digest(&image->id, args->count[OPT_NO_TRUNC] > 0, id, sizeof(id));
	format_age(json_string_value(json_object_get(image->config, "created")), created, sizeof(created));
	snprintf(layers, sizeof(layers), "%zu", image->nlayers);
	format_size(image_size(image, false), args->count[OPT_BYTES] > 0, size, sizeof(size));
	cells[1] = id;
	cells[2] = created;
	cells[3] = layers;
	cells[4] = size;
	if (image->ntags == 0) {
		cells[0] = "<none>";
		table_add(table, cells);
	}
	for (size_t t = 0; t < image->ntags; t++) {
		cells[0] = image->tags[t];
		table_add(table, cells);
	}
}

int cmd_images(struct strata_store *store, struct cmd_args *args)
{
	static const char *const header[] = { "REPOSITORY:TAG", "IMAGE ID", "CREATED", "LAYERS", "SIZE" };
	struct strata_error *err = NULL;
	struct strata_digest *ids = NULL;
	size_t count = 0;
	struct table table;
	json_t *list = json_array();
	int rc = 0;

	if (store && strata_store_list_images(store, &ids, &count, &err) < 0) {
		json_decref(list);
		return report_error(err);
	}
	table_init(&table, 5, header);
	for (size_t i = 0; i < count; i++) {
		struct strata_image *image = strata_image_load(store, &ids[i], &err);

		if (image == NULL) {
			rc = report_error(err);
			err = NULL;
			continue;
		}
		if (args->count[OPT_QUIET]) {
			char id[STRATA_DIGEST_STR_LEN];

			strata_digest_string(&image->id, id);
			printf("%s\n", id);
		}
		json_array_append_new(list, image_json(image));
		add_rows(&table, image, args);
		strata_image_free(image);
	}
	if (args->count[OPT_JSON])
		print_json(list);
	else if (!args->count[OPT_QUIET])
		table_print(&table, stdout);
	table_release(&table);
	json_decref(list);
	free(ids);
	return rc;
}
