/*
 * Container views: run-view, views, rm-view, mount, umount.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <unistd.h>

#include "../core/util.h"
#include "../core/view.h"
#include "cmd.h"

const struct option_spec run_view_options[] = {
	{ "chroot", 0, NULL, OPT_CHROOT, "run inside the view's root with the image's Env, WorkingDir and User" },
	{ "driver", 0, "overlay|copy", OPT_DRIVER, "how a new view is built (default: overlay)" },
	{ "name", 0, "NAME", OPT_NAME, "name of the view to create or reuse (default: a generated name)" },
	{ "quiet", 'q', NULL, OPT_QUIET, "do not report the view's name on stderr" },
	{ "rm", 0, NULL, OPT_RM, "delete the view after the command ends" },
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

const struct option_spec views_options[] = {
	{ "bytes", 0, NULL, OPT_BYTES, "print sizes as exact byte counts" },
	{ "json", 0, NULL, OPT_JSON, "print the list as JSON" },
	{ "quiet", 'q', NULL, OPT_QUIET, "print only view names" },
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

const struct option_spec rm_view_options[] = {
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

const struct option_spec mount_options[] = {
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

/* Returns a tag of the image for display, or its short ID (malloc'd). */
static char *image_label(struct strata_store *store, const struct strata_digest *id)
{
	struct strata_error *err = NULL;
	struct strata_image *image = strata_image_load(store, id, &err);
	char hex[STRATA_DIGEST_HEX_LEN + 1];
	char *label;

	strata_digest_hex(id, hex);
	if (image == NULL) {
		strata_error_free(err);
		return xasprintf("%.12s (removed)", hex);
	}
	label = image->ntags ? xstrdup(image->tags[0]) : xasprintf("%.12s", hex);
	strata_image_free(image);
	return label;
}

static int prepare_view(struct strata_store *store, struct cmd_args *args, struct strata_view *view)
{
	struct strata_error *err = NULL;
	struct strata_digest id;
	const char *driver_name = args->value[OPT_DRIVER];
	enum strata_view_driver driver = STRATA_VIEW_OVERLAY;
	auto_free char *name = args->value[OPT_NAME] ? xstrdup(args->value[OPT_NAME]) : NULL;
	bool created = false;

	if (driver_name && strcmp(driver_name, "copy") == 0)
		driver = STRATA_VIEW_COPY;
	else if (driver_name && strcmp(driver_name, "overlay") != 0)
		return usage_error("run-view", "invalid driver `%s` (use overlay or copy)", driver_name);
	if (name && !strata_view_name_valid(name))
		return usage_error("run-view", "invalid view name `%s` (1 to 64 letters, digits, _ . -; "
				   "starting with a letter or digit)", name);
	if (strata_store_resolve_image(store, args->argv[0], &id, &err) < 0)
		return report_error(err);
	if (strata_store_lock(store, &err) < 0)
		return report_error(err);

	if (name == NULL)
		name = strata_view_generate_name(store);
	if (strata_view_exists(store, name)) {
		if (strata_view_check_not_mounted(store, name, &err) < 0 || strata_view_load(store, name, view, &err) < 0)
			return report_error(err);
		if (!strata_digest_equal(&view->image, &id)) {
			auto_free char *label = image_label(store, &view->image);

			strata_view_release(view);
			strata_error_set(&err, 0, "view `%s` exists and is a view of %s, not of `%s`; choose another "
					 "--name or remove it with `strata rm-view %s`", name, label, args->argv[0], name);
			return report_error(err);
		}
		if (driver_name && view->driver != driver)
			strata_warn("view `%s` already exists with the %s driver; --driver applies only to new views",
				    name, view->driver == STRATA_VIEW_COPY ? "copy" : "overlay");
	} else {
		struct strata_digest other;
		struct strata_error *lookup_err = NULL;

		/* diff and du take a name that is both a view and an image to mean the view. */
		if (strata_store_resolve_image(store, name, &other, &lookup_err) == 0)
			strata_warn("view name `%s` is also an image's name; `strata diff %s` and `strata du %s` will "
				    "mean the view", name, name, name);
		strata_error_free(lookup_err);
		if (strata_view_create(store, name, &id, driver, &err) < 0 ||
		    strata_view_load(store, name, view, &err) < 0)
			return report_error(err);
		created = true;
		if (driver == STRATA_VIEW_COPY && strata_view_populate_copy(store, view, &err) < 0) {
			struct strata_error *rm_err = NULL;

			strata_view_remove(store, name, &rm_err);
			strata_error_free(rm_err);
			strata_view_release(view);
			return report_error(err);
		}
	}
	strata_store_unlock(store);
	if (!args->count[OPT_QUIET] && verbosity >= 0) {
		auto_free char *label = image_label(store, &view->image);

		fprintf(stderr, "strata: %s view `%s` of %s\n", created ? "created" : "reusing", name, label);
	}
	return 0;
}

int cmd_run_view(struct strata_store *store, struct cmd_args *args)
{
	struct strata_view view;
	struct strata_error *err = NULL;
	struct strata_run_options opts = { .chroot = args->count[OPT_CHROOT] > 0 };
	int status = 0;
	int rc;

	rc = prepare_view(store, args, &view);
	if (rc != 0)
		return rc;
	if (args->argc > 1)
		opts.argv = args->argv + 1;
	if (strata_view_run(store, &view, &opts, &status, &err) < 0) {
		strata_view_release(&view);
		return report_error(err);
	}
	if (args->count[OPT_RM]) {
		if (strata_store_lock(store, &err) < 0 || strata_view_remove(store, view.name, &err) < 0) {
			strata_view_release(&view);
			report_error(err);
			return status ? status : 1;
		}
		strata_store_unlock(store);
	}
	strata_view_release(&view);
	return status;
}

int cmd_views(struct strata_store *store, struct cmd_args *args)
{
	static const char *const header[] = { "NAME", "IMAGE", "DRIVER", "CREATED", "SIZE" };
	struct strata_error *err = NULL;
	char **names = NULL;
	size_t count = 0;
	struct table table;
	json_t *list = json_array();
	int rc = 0;

	if (store && strata_view_list(store, &names, &count, &err) < 0) {
		json_decref(list);
		return report_error(err);
	}
	table_init(&table, 5, header);
	for (size_t i = 0; i < count; i++) {
		struct strata_view view;
		char id[STRATA_DIGEST_STR_LEN];
		char size[32];
		char created[64];
		auto_free char *label = NULL;
		auto_free char *created_text = NULL;
		uint64_t bytes;
		const char *cells[5];
		time_t secs;
		struct tm tm;
		char iso[32];

		if (strata_view_load(store, names[i], &view, &err) < 0) {
			rc = report_error(err);
			err = NULL;
			continue;
		}
		if (args->count[OPT_QUIET])
			printf("%s\n", view.name);
		strata_digest_string(&view.image, id);
		label = image_label(store, &view.image);
		bytes = strata_view_upper_size(store, &view);
		secs = (time_t)(view.created_ns / 1000000000);
		gmtime_r(&secs, &tm);
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
		{
			auto_free char *mounted = strata_view_mounted_at(store, view.name);

			json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s?}", "name", view.name,
							      "image", id, "image_name", label, "driver",
							      view.driver == STRATA_VIEW_COPY ? "copy" : "overlay",
							      "created", iso, "size", (json_int_t)bytes, "mounted_at",
							      mounted));
		}
		cells[0] = view.name;
		cells[1] = label;
		cells[2] = view.driver == STRATA_VIEW_COPY ? "copy" : "overlay";
		cells[3] = format_age(iso, created, sizeof(created));
		cells[4] = format_size(bytes, args->count[OPT_BYTES] > 0, size, sizeof(size));
		table_add(&table, cells);
		strata_view_release(&view);
	}
	if (args->count[OPT_JSON])
		print_json(list);
	else if (!args->count[OPT_QUIET])
		table_print(&table, stdout);
	table_release(&table);
	json_decref(list);
	strata_view_list_free(names, count);
	return rc;
}

int cmd_rm_view(struct strata_store *store, struct cmd_args *args)
{
	struct strata_error *err = NULL;
	int rc = 0;

	if (strata_store_lock(store, &err) < 0)
		return report_error(err);
	/* Keep going after a failure, and report each one. */
	for (int i = 0; i < args->argc; i++) {
		if (strata_view_remove(store, args->argv[i], &err) < 0) {
			rc = report_error(err);
			err = NULL;
			continue;
		}
		printf("%s\n", args->argv[i]);
	}
	return rc;
}

int cmd_mount(struct strata_store *store, struct cmd_args *args)
{
	struct strata_error *err = NULL;
	struct strata_view view;
	auto_free char *target = NULL;
	int rc;

	if (geteuid() != 0) {
		strata_error_set(&err, EPERM, "`strata mount` needs root, because it mounts in the host's mount "
				 "namespace; as another user, use `strata run-view`");
		return report_error(err);
	}
	if (strata_view_load(store, args->argv[0], &view, &err) < 0) {
		struct strata_digest id;
		struct strata_error *lookup_err = NULL;

		if (strata_store_resolve_image(store, args->argv[0], &id, &lookup_err) == 0) {
			strata_error_free(err);
			err = NULL;
			strata_error_set(&err, 0, "`%s` is an image, not a view; make a view of it first with "
					 "`strata run-view %s --name NAME -- true`", args->argv[0], args->argv[0]);
		}
		strata_error_free(lookup_err);
		return report_error(err);
	}
	target = realpath(args->argv[1], NULL);
	if (target == NULL) {
		strata_error_set(&err, errno, "cannot use `%s` as a mount point", args->argv[1]);
		strata_view_release(&view);
		return report_error(err);
	}
	if (strata_store_lock(store, &err) < 0 || strata_view_mark_mounted(store, view.name, target, &err) < 0) {
		strata_view_release(&view);
		return report_error(err);
	}
	rc = strata_view_mount(store, &view, target, &err);
	if (rc < 0)
		strata_view_mark_unmounted(store, view.name);
	strata_view_release(&view);
	if (rc < 0)
		return report_error(err);
	return 0;
}

int cmd_umount(struct strata_store *store, struct cmd_args *args)
{
	struct strata_error *err = NULL;
	auto_free char *target = realpath(args->argv[0], NULL);
	auto_free char *name = NULL;

	if (target == NULL) {
		strata_error_set(&err, errno, "cannot find `%s`", args->argv[0]);
		return report_error(err);
	}
	if (strata_store_lock(store, &err) < 0)
		return report_error(err);
	name = strata_view_find_mounted(store, target);
	if (name == NULL) {
		strata_error_set(&err, 0, "no view of store `%s` is mounted at `%s` (see `strata views`)", store->path,
				 target);
		return report_error(err);
	}
	if (umount2(target, UMOUNT_NOFOLLOW) < 0 && errno != EINVAL) {
		strata_error_set(&err, errno, "cannot unmount `%s`", target);
		return report_error(err);
	}
	strata_view_mark_unmounted(store, name);
	return 0;
}
