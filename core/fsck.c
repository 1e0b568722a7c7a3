#define _GNU_SOURCE
#include "fsck.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "index.h"
#include "util.h"
#include "verify.h"
#include "view.h"

struct checker {
	struct strata_store *store;
	bool repair;
	strata_fsck_fn fn;
	void *data;
	struct strata_fsck_result *result;
	json_t *bad_layers;     /* key hex -> true */
	json_t *bad_images;     /* id string -> true */
};

static void report(struct checker *c, enum strata_fsck_severity severity, const char *subject, bool repaired,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report(struct checker *c, enum strata_fsck_severity severity, const char *subject, bool repaired,
		   const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (severity == STRATA_FSCK_PROBLEM)
		c->result->problems++;
	if (severity == STRATA_FSCK_PROBLEM && !repaired)
		c->result->unrepaired++;
	else
		c->result->notes++;
	if (repaired)
		c->result->repaired++;
	c->fn(c->data, severity, subject, text ? text : "", repaired);
	free(text);
}

/* Lists the names in a store directory (empty when it is missing). */
static char **list_dir(struct strata_store *store, const char *name, size_t *count)
{
	int fd = openat(store->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **out = NULL;
	size_t n = 0;

	if (dir == NULL) {
		if (fd >= 0)
			close(fd);
		*count = 0;
		return NULL;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		out = xrealloc(out, (n + 1) * sizeof(char *));
		out[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	*count = n;
	return out;
}

static void free_list(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static bool remove_path(struct checker *c, const char *path)
{
	struct strata_error *err = NULL;

	if (!c->repair)
		return false;
	/* Move aside first so that a crash never leaves half of it in place. */
	{
		auto_free char *stage = strata_store_stage(c->store, "fsck", &err);
		auto_free char *target = stage ? xasprintf("%s/removed", stage) : NULL;

		if (stage == NULL || renameat(c->store->dirfd, path, c->store->dirfd, target) < 0 ||
		    rmtree_at(c->store->dirfd, stage, &err) < 0) {
			strata_error_free(err);
			return false;
		}
	}
	return true;
}

static void count_problem(void *data, const char *path, const char *problem)
{
	size_t *n = data;

	(void)path;
	(void)problem;
	(*n)++;
}

static void check_layers(struct checker *c)
{
	size_t n;
	char **names = list_dir(c->store, "layers", &n);

	for (size_t i = 0; i < n; i++) {
		auto_free char *dir = xasprintf("layers/%s", names[i]);
		auto_close int fd = openat(c->store->dirfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct strata_digest key;
		struct strata_error *err = NULL;
		size_t problems = 0;
		const char *why = NULL;
		auto_free char *detail = NULL;

		c->result->layers_checked++;
		if (!strata_digest_parse_hex(names[i], strlen(names[i]), &key))
			why = "is not named by a digest";
		else if (fd < 0)
			why = "is not a directory";
		else if (faccessat(fd, "layer.json", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			why = "has no layer.json (an incomplete layer)";
		else if (strata_layer_verify(fd, c->store->rootless, count_problem, &problems, &problems, &err) < 0) {
			detail = strata_error_format(err);
			strata_error_free(err);
			why = detail;
		} else if (problems > 0) {
			detail = xasprintf("differs from its index in %zu place%s (see `strata verify`)", problems,
					   problems == 1 ? "" : "s");
			why = detail;
		}
		if (why == NULL)
			continue;
		json_object_set_new(c->bad_layers, names[i], json_true());
		report(c, STRATA_FSCK_PROBLEM, dir, remove_path(c, dir), "layer %s", why);
	}
	free_list(names, n);
}

static void check_images(struct checker *c)
{
	size_t n;
	char **names = list_dir(c->store, "images", &n);

	for (size_t i = 0; i < n; i++) {
		auto_free char *dir = xasprintf("images/%s", names[i]);
		auto_free char *detail = NULL;
		struct strata_digest id;
		struct strata_error *err = NULL;
		struct strata_image *image = NULL;
		const char *why = NULL;

		c->result->images_checked++;
		if (!strata_digest_parse_hex(names[i], strlen(names[i]), &id)) {
			why = "is not named by a digest";
		} else if ((image = strata_image_load(c->store, &id, &err)) == NULL) {
			detail = strata_error_format(err);
			strata_error_free(err);
			why = detail;
		} else {
			/* The config must still hash to the image ID. */
			auto_free char *config_path = xasprintf("%s/config.json", dir);
			char *bytes = NULL;
			size_t len = 0;
			struct strata_digest actual;

			if (read_file_at(c->store->dirfd, config_path, &bytes, &len, &err) < 0) {
				detail = strata_error_format(err);
				strata_error_free(err);
				why = detail;
			} else {
				strata_sha256_buffer(bytes, len, &actual);
				if (!strata_digest_equal(&actual, &id))
					why = "has a config.json that does not hash to its ID";
				free(bytes);
			}
			for (size_t l = 0; why == NULL && l < image->nlayers; l++) {
				char hex[STRATA_DIGEST_HEX_LEN + 1];

				strata_digest_hex(&image->layers[l].key, hex);
				if (json_object_get(c->bad_layers, hex) || !strata_store_has_layer(c->store, &image->layers[l].key)) {
					detail = xasprintf("needs layer %zu (`layers/%s`), which is missing or broken", l + 1, hex);
					why = detail;
				}
			}
		}
		strata_image_free(image);
		if (why == NULL)
			continue;
		{
			char idstr[STRATA_DIGEST_STR_LEN];

			if (strata_digest_parse_hex(names[i], strlen(names[i]), &id)) {
				strata_digest_string(&id, idstr);
				json_object_set_new(c->bad_images, idstr, json_true());
			}
		}
		report(c, STRATA_FSCK_PROBLEM, dir, remove_path(c, dir), "image %s", why);
	}
	free_list(names, n);
}

static void check_tags(struct checker *c)
{
	struct strata_error *err = NULL;
	json_t *tags = strata_store_load_tags(c->store, &err);
	json_t *kept;
	const char *tag;
	json_t *value;
	bool changed = false;

	if (tags == NULL) {
		auto_free char *text = strata_error_format(err);

		strata_error_free(err);
		report(c, STRATA_FSCK_PROBLEM, "tags.json", false, "%s", text);
		return;
	}
	kept = json_object();
	json_object_foreach(tags, tag, value) {
		struct strata_digest id;
		const char *s = json_string_value(value);
		auto_free char *dir = NULL;
		bool ok = s && strata_digest_parse(s, "tags.json", &id, &err) == 0;

		strata_error_free(err);
		err = NULL;
		if (ok) {
			char hex[STRATA_DIGEST_HEX_LEN + 1];

			strata_digest_hex(&id, hex);
			dir = xasprintf("images/%s/image.json", hex);
			ok = !json_object_get(c->bad_images, s) &&
			     faccessat(c->store->dirfd, dir, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
		}
		if (ok) {
			json_object_set(kept, tag, value);
			continue;
		}
		changed = true;
		report(c, STRATA_FSCK_PROBLEM, tag, c->repair, "tag points to `%s`, which is not an image in the store",
		       s ? s : "(not a string)");
	}
	if (changed && c->repair && strata_store_save_tags(c->store, kept, &err) < 0) {
		auto_free char *text = strata_error_format(err);

		strata_error_free(err);
		report(c, STRATA_FSCK_PROBLEM, "tags.json", false, "cannot rewrite: %s", text);
	}
	json_decref(kept);
	json_decref(tags);
}

static void check_blob_index(struct checker *c)
{
	size_t n;
	char **names = list_dir(c->store, "blob-index", &n);

	for (size_t i = 0; i < n; i++) {
		auto_free char *path = xasprintf("blob-index/%s", names[i]);
		char *data = NULL;
		size_t len = 0;
		struct strata_error *err = NULL;
		struct strata_digest diff;
		bool ok = false;

		if (read_file_at(c->store->dirfd, path, &data, &len, &err) == 0 && len >= 143) {
			data[143] = '\0';
			ok = strata_digest_parse(data + 72, path, &diff, &err) == 0 && strata_store_has_layer(c->store, &diff);
		}
		strata_error_free(err);
		free(data);
		if (ok)
			continue;
		/* Harmless, since the import checks the layer exists: a note, not a problem. */
		if (c->repair && unlinkat(c->store->dirfd, path, 0) == 0)
			report(c, STRATA_FSCK_NOTE, path, true, "blob-index entry for a layer that is not in the store");
		else
			report(c, STRATA_FSCK_NOTE, path, false, "blob-index entry for a layer that is not in the store");
	}
	free_list(names, n);
}

static void check_views(struct checker *c)
{
	char **names = NULL;
	size_t n = 0;
	struct strata_error *err = NULL;

	if (strata_view_list(c->store, &names, &n, &err) < 0) {
		strata_error_free(err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct strata_view view;
		char hex[STRATA_DIGEST_HEX_LEN + 1];
		auto_free char *record = NULL;

		if (strata_view_load(c->store, names[i], &view, &err) < 0) {
			auto_free char *text = strata_error_format(err);

			strata_error_free(err);
			err = NULL;
			report(c, STRATA_FSCK_PROBLEM, names[i], false, "view %s", text);
			continue;
		}
		strata_digest_hex(&view.image, hex);
		record = xasprintf("images/%s/image.json", hex);
		/* Views hold the user's changes, so fsck reports them but never removes them. */
		if (faccessat(c->store->dirfd, record, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			report(c, STRATA_FSCK_PROBLEM, names[i], false,
			       "view of image sha256:%.12s, which is not in the store; re-import the image or remove "
			       "the view with `strata rm-view`", hex);
		strata_view_release(&view);
	}
	strata_view_list_free(names, n);
}

static void check_staging(struct checker *c)
{
	size_t n;
	char **names = list_dir(c->store, "tmp", &n);

	for (size_t i = 0; i < n; i++) {
		auto_free char *path = xasprintf("tmp/%s", names[i]);
		struct strata_error *err = NULL;
		bool removed = c->repair && rmtree_at(c->store->dirfd, path, &err) == 0;

		strata_error_free(err);
		/* We hold the writer lock, so this was left by a command that was killed or crashed. */
		report(c, STRATA_FSCK_NOTE, path, removed,
		       "staging left by an interrupted command (the next import also removes it)");
	}
	free_list(names, n);
}

int strata_fsck(struct strata_store *store, bool repair, strata_fsck_fn fn, void *data,
		struct strata_fsck_result *result, struct strata_error **err)
{
	struct checker c = {
		.store = store, .repair = repair, .fn = fn, .data = data, .result = result,
		.bad_layers = json_object(), .bad_images = json_object(),
	};

	(void)err;
	memset(result, 0, sizeof(*result));
	/* Staging first: the repairs below stage their removals there. */
	check_staging(&c);
	check_layers(&c);
	check_images(&c);
	check_tags(&c);
	check_blob_index(&c);
	check_views(&c);
	json_decref(c.bad_layers);
	json_decref(c.bad_images);
	return 0;
}
