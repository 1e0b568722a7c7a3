/*
 * Shared declarations of the command-line front end: the command table,
 * option parsing and output helpers.
 */
#ifndef STRATA_CMD_H
#define STRATA_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/error.h"
#include "../core/store.h"

#define STRATA_VERSION "0.1.0"

enum option_id {
	OPT_BASE,
	OPT_BYTES,
	OPT_CHROOT,
	OPT_DRIVER,
	OPT_HELP,
	OPT_IGNORE,
	OPT_JSON,
	OPT_LAYER,
	OPT_LIST_OPTIONS,
	OPT_LONG,
	OPT_MAX_ENTRIES,
	OPT_MAX_IMAGE_BYTES,
	OPT_MAX_LAYER_BYTES,
	OPT_MAX_LAYER_SIZE,
	OPT_MAX_PATH_DEPTH,
	OPT_MAX_PATH_LENGTH,
	OPT_MAX_WASTED,
	OPT_MAX_XATTR_SIZE,
	OPT_MIN_EFFICIENCY,
	OPT_NAME,
	OPT_NAME_ONLY,
	OPT_NO_TRUNC,
	OPT_NULL,
	OPT_OUTPUT,
	OPT_PLATFORM,
	OPT_QUIET,
	OPT_REPAIR,
	OPT_RM,
	OPT_STAT,
	OPT_STORE,
	OPT_STORE_REPORT,
	OPT_TOP,
	OPT_TAG,
	OPT_COUNT
};

struct option_spec {
	const char *long_name;
	char short_name;          /* 0 when there is none */
	const char *metavar;      /* NULL for a flag */
	enum option_id id;
	const char *help;
};

struct cmd_args {
	const char *value[OPT_COUNT];   /* last value given */
	int count[OPT_COUNT];           /* times given */
	const char **list[OPT_COUNT];   /* every value of a repeatable option */
	size_t nlist[OPT_COUNT];
	int argc;                       /* positional arguments */
	char **argv;
};

enum command_flags {
	CMD_STORE = 1 << 0,         /* opens the store for reading */
	CMD_STORE_WRITE = 1 << 1,   /* opens (and creates) the store with the writer lock */
	CMD_EMPTY_OK = 1 << 2,      /* a missing store is an empty one (listing commands) */
};

struct command {
	const char *name;
	int (*run)(struct strata_store *store, struct cmd_args *args);
	const char *summary;
	const char *usage;          /* synopsis after "strata NAME " */
	const char *description;
	const struct option_spec *options;  /* sorted by long name, ends with a zeroed entry */
	unsigned flags;
	int min_args;
	int max_args;               /* -1: no limit */
};

/* Global state set by cmd/main.c. */
extern const char *global_store;
extern int verbosity;           /* 0 normal, -1 quiet, 1 verbose */
extern bool stdout_colour;

int cmd_pull_from_tarball(struct strata_store *store, struct cmd_args *args);
int cmd_images(struct strata_store *store, struct cmd_args *args);
int cmd_layers(struct strata_store *store, struct cmd_args *args);
int cmd_demo(struct strata_store *store, struct cmd_args *args);
int cmd_run_view(struct strata_store *store, struct cmd_args *args);
int cmd_views(struct strata_store *store, struct cmd_args *args);
int cmd_rm_view(struct strata_store *store, struct cmd_args *args);
int cmd_mount(struct strata_store *store, struct cmd_args *args);
int cmd_umount(struct strata_store *store, struct cmd_args *args);
int cmd_verify(struct strata_store *store, struct cmd_args *args);
int cmd_diff(struct strata_store *store, struct cmd_args *args);
int cmd_du(struct strata_store *store, struct cmd_args *args);
int cmd_fsck(struct strata_store *store, struct cmd_args *args);

extern const struct option_spec pull_from_tarball_options[];
extern const struct option_spec images_options[];
extern const struct option_spec layers_options[];
extern const struct option_spec demo_options[];
extern const struct option_spec run_view_options[];
extern const struct option_spec views_options[];
extern const struct option_spec rm_view_options[];
extern const struct option_spec mount_options[];
extern const struct option_spec verify_options[];
extern const struct option_spec diff_options[];
extern const struct option_spec du_options[];
extern const struct option_spec fsck_options[];

/* Reports an error on stderr ("strata: error: ...") and frees it; returns 1. */
int report_error(struct strata_error *err);
/* Reports a usage error and a hint; returns 2. */
int usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Formats bytes as SI units ("13.4 MB") or exactly with --bytes; returns buf. */
const char *format_size(uint64_t bytes, bool exact, char *buf, size_t len);
/* Formats a digest for tables: 12 hex digits, or all of it with --no-trunc. */
const char *format_digest(const struct strata_digest *d, bool full, char *buf, size_t len);
/* Prints JSON to stdout with a final newline. */
int print_json(json_t *json);
/* Formats an RFC 3339 time as "N units ago" (or returns it unchanged when unparseable). */
const char *format_age(const char *rfc3339, char *buf, size_t len);

/*
 * Maps history entries to layers: entries without "empty_layer": true own
 * the layers in order.  Returns false when the counts disagree, which
 * happens with configs written by some older tools.
 */
bool history_map(json_t *history, size_t nlayers, long *layer_of_entry);
/* Returns the created_by of the history entry that made layer `layer` (0 = bottom) of `nlayers`, or NULL. */
const char *history_created_by(json_t *config, size_t nlayers, size_t layer);

/* A text table printed with aligned columns; cells are escaped for the terminal. */
struct table {
	size_t ncols;
	size_t nrows;
	char ***cells;   /* rows of ncols malloc'd strings; row 0 is the header */
};
void table_init(struct table *t, size_t ncols, const char *const *header);
void table_add(struct table *t, const char *const *cells);
void table_print(struct table *t, FILE *out);
void table_release(struct table *t);

#endif
