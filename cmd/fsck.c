/*
 * strata fsck: check the store for damage and, with --repair, remove it.
 */
#include <stdio.h>

#include "../core/fsck.h"
#include "../core/path.h"
#include "../core/util.h"
#include "cmd.h"

const struct option_spec fsck_options[] = {
	{ "json", 0, NULL, OPT_JSON, "print the findings as JSON" },
	{ "repair", 0, NULL, OPT_REPAIR, "remove broken tags, images and layers, and stale staging" },
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

struct findings {
	bool json;
	json_t *list;
};

static void print_finding(void *data, enum strata_fsck_severity severity, const char *subject, const char *finding,
			  bool repaired)
{
	struct findings *f = data;
	const char *kind = severity == STRATA_FSCK_PROBLEM ? "problem" : "note";

	if (f->json) {
		auto_free char *safe = strata_path_escape(subject);

		json_array_append_new(f->list, json_pack("{s:s, s:s, s:s, s:b}", "severity", kind, "subject", safe,
							 "finding", finding, "repaired", repaired));
		return;
	}
	{
		auto_free char *safe = strata_path_escape(subject);

		printf("%s: %s: %s%s\n", kind, safe, finding, repaired ? " (removed)" : "");
	}
}

int cmd_fsck(struct strata_store *store, struct cmd_args *args)
{
	struct strata_error *err = NULL;
	struct findings f = { .json = args->count[OPT_JSON] > 0, .list = json_array() };
	struct strata_fsck_result result;

	if (strata_store_lock_keep_staging(store, &err) < 0 ||
	    strata_fsck(store, args->count[OPT_REPAIR] > 0, print_finding, &f, &result, &err) < 0) {
		json_decref(f.list);
		return report_error(err);
	}
	if (f.json) {
		json_t *json = json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "layers_checked",
					 (json_int_t)result.layers_checked, "images_checked", (json_int_t)result.images_checked,
					 "problems", (json_int_t)result.problems, "notes", (json_int_t)result.notes, "repaired",
					 (json_int_t)result.repaired, "findings", json_incref(f.list));

		print_json(json);
		json_decref(json);
	} else {
		printf("%zu layer%s and %zu image%s checked: %zu problem%s, %zu note%s, %zu removed\n",
		       result.layers_checked, result.layers_checked == 1 ? "" : "s", result.images_checked,
		       result.images_checked == 1 ? "" : "s", result.problems, result.problems == 1 ? "" : "s",
		       result.notes, result.notes == 1 ? "" : "s", result.repaired);
	}
	json_decref(f.list);
	return result.unrepaired > 0 ? 1 : 0;
}
