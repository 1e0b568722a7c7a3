/*
 * Container views: an image's layers stacked read-only under a writable
 * upper directory that belongs to the view alone.
 *
 * Layout below the store:
 *   views/<name>/view.json   image ID, driver, creation time
 *   views/<name>/upper/      overlay upper directory (the view's changes)
 *   views/<name>/work/       overlay work directory
 *   views/<name>/merged/     mount point while a command runs
 *   views/<name>/l/          short symlinks to the layers, for mount(2) option strings
 *   views/<name>/rootfs/     the full tree of a view made with the copy driver
 *   views/<name>/lock        held by the command running in the view and the processes it starts
 *   views/<name>/mounted     where `strata mount` mounted the view, while it is mounted
 */
#ifndef STRATA_VIEW_H
#define STRATA_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"
#include "store.h"

enum strata_view_driver {
	STRATA_VIEW_OVERLAY,   /* overlayfs over the layer directories */
	STRATA_VIEW_COPY,      /* a full copy of the merged tree (reflinks where possible) */
};

struct strata_view {
	char *name;
	struct strata_digest image;
	enum strata_view_driver driver;
	int64_t created_ns;
};

/* Returns true for 1 to 64 characters of [A-Za-z0-9_.-] starting with a letter or digit. */
bool strata_view_name_valid(const char *name);
/* Returns an unused name such as "brave_falcon" (malloc'd). */
char *strata_view_generate_name(struct strata_store *store);

/* Creates the view's directories and record; the caller holds the store lock. */
int strata_view_create(struct strata_store *store, const char *name, const struct strata_digest *image,
		       enum strata_view_driver driver, struct strata_error **err);
int strata_view_load(struct strata_store *store, const char *name, struct strata_view *view,
		     struct strata_error **err);
void strata_view_release(struct strata_view *view);
bool strata_view_exists(struct strata_store *store, const char *name);

/* Lists view names, sorted. */
int strata_view_list(struct strata_store *store, char ***names, size_t *count, struct strata_error **err);
void strata_view_list_free(char **names, size_t count);

/*
 * Records that `strata mount` mounted the view at `target` (an absolute
 * path); run-view and rm-view refuse a mounted view.
 */
int strata_view_mark_mounted(struct strata_store *store, const char *name, const char *target,
			     struct strata_error **err);
void strata_view_mark_unmounted(struct strata_store *store, const char *name);
/* Fails, naming the mount point, when `strata mount` has mounted the view. */
int strata_view_check_not_mounted(struct strata_store *store, const char *name, struct strata_error **err);
/* Returns where `strata mount` mounted the view, or NULL when it is not mounted (malloc'd). */
char *strata_view_mounted_at(struct strata_store *store, const char *name);
/* Returns the name of the view mounted at `target`, or NULL (malloc'd). */
char *strata_view_find_mounted(struct strata_store *store, const char *target);

/* Removes a view; fails while a command runs in it.  The caller holds the store lock. */
int strata_view_remove(struct strata_store *store, const char *name, struct strata_error **err);

/* Bytes of the view's changes: regular files in the upper directory (the copy's whole tree for the copy driver). */
uint64_t strata_view_upper_size(struct strata_store *store, const struct strata_view *view);

/*
 * Mounts the view at `target` in the current mount namespace: overlayfs for
 * the overlay driver (with userxattr in a non-root store), a bind mount of
 * the copy for the copy driver.
 */
int strata_view_mount(struct strata_store *store, const struct strata_view *view, const char *target,
		      struct strata_error **err);

struct strata_run_options {
	char **argv;            /* command; NULL: $SHELL or /bin/sh, or the image's command with chroot */
	bool chroot;            /* run inside the view's root with the image's Env, WorkingDir and User */
};

/*
 * Runs a command in the view in a private mount namespace (and, for a
 * non-root user, a user namespace that maps the user to root), so the mount
 * disappears when the command ends, however it ends.  Stores the exit status
 * in *status: the command's exit code, or 128 + the signal that ended it.
 */
int strata_view_run(struct strata_store *store, const struct strata_view *view,
		    const struct strata_run_options *opts, int *status, struct strata_error **err);

/*
 * Builds the copy driver's tree: the merged layers copied to views/<name>/rootfs.
 */
int strata_view_populate_copy(struct strata_store *store, const struct strata_view *view,
			      struct strata_error **err);

struct statx;
/* Returns a text that changes when a directory is deleted and made again (static storage). */
const char *strata_dir_identity(const struct statx *st);

#endif
