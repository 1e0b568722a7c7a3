/*
 * The content-addressed store.
 *
 * Layout below the store directory:
 *   strata.json            store format version and whether it is a non-root store
 *   lock                   flock(2) target: writers hold LOCK_EX for a whole command
 *   layers/<key>/          one unpacked layer: root/ (overlay lower dir), index,
 *                          tar-split.gz, layer.json.  <key> is the diff_id hex, or
 *                          the chain ID hex for a layer with hard links into
 *                          lower layers (its unpacked form depends on them)
 *   blob-index/<name>      "sha256:<blob> sha256:<diff_id>": lets an import skip
 *                          a blob it can identify by name (see import.c)
 *   images/<id hex>/       config.json and manifest.json (bytes as imported),
 *                          image.json (strata's record: layers, source)
 *   tags.json              {"name:tag": "sha256:<id>"}, rewritten atomically
 *   views/<name>/          container views (see view.h)
 *   tmp/                   staging; anything here is garbage once no writer holds the lock
 *
 * Every published object appears by rename(2) of a complete staged one, so a
 * reader never needs the lock and a killed writer leaves only staging behind.
 */
#ifndef STRATA_STORE_H
#define STRATA_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "error.h"

struct strata_store {
	char *path;
	int dirfd;
	int lock_fd;
	bool rootless;  /* created by a non-root user: user.overlay.* xattrs, owners only in indexes */
	bool known;     /* strata.json existed when the store was opened */
};

enum strata_store_open_flags {
	STRATA_STORE_CREATE = 1 << 0,  /* create the store if it does not exist */
	STRATA_STORE_LOCK = 1 << 1,    /* take the writer lock (waits for other writers) */
};

/* Returns the store path from --store, $STRATA_STORE or the per-user default (malloc'd). */
char *strata_store_default_path(const char *option);

struct strata_store *strata_store_open(const char *path, unsigned flags, struct strata_error **err);
void strata_store_free(struct strata_store *store);

/*
 * Takes the writer lock (waiting for other writers) and removes stale
 * staging; strata_store_unlock() releases it.  Opening with
 * STRATA_STORE_LOCK does the same for the store's whole lifetime.
 */
int strata_store_lock(struct strata_store *store, struct strata_error **err);
/* Takes the writer lock but leaves staging in place (for fsck, which reports it). */
int strata_store_lock_keep_staging(struct strata_store *store, struct strata_error **err);
void strata_store_unlock(struct strata_store *store);

/* Creates a fresh staging directory below tmp/ and returns its name relative to the store. */
char *strata_store_stage(struct strata_store *store, const char *prefix, struct strata_error **err);

struct strata_image_layer {
	struct strata_digest diff_id;
	struct strata_digest key;       /* directory name below layers/ */
	struct strata_digest blob_digest;
	uint64_t blob_size;
	char *media_type;
	uint64_t tar_size;
	uint64_t entries;
	uint64_t file_bytes;
};

struct strata_image {
	struct strata_digest id;
	char **tags;
	size_t ntags;
	size_t nlayers;
	struct strata_image_layer *layers;
	json_t *config;                 /* parsed config.json */
	char *source_format;
	int64_t imported_ns;
};

void strata_image_free(struct strata_image *image);

/* Loads images/<id>/ and the tags that point at it. */
struct strata_image *strata_image_load(struct strata_store *store, const struct strata_digest *id,
				       struct strata_error **err);

/* Lists the IDs of all images (sorted). */
int strata_store_list_images(struct strata_store *store, struct strata_digest **ids, size_t *count,
			     struct strata_error **err);

/*
 * Resolves a user's image reference: name:tag, name (= name:latest; a name
 * without a registry also matches localhost/NAME and docker.io/library/NAME),
 * a full ID with or without "sha256:", or a unique ID prefix.
 */
int strata_store_resolve_image(struct strata_store *store, const char *ref, struct strata_digest *id,
			       struct strata_error **err);

/* Loads tags.json (an empty object when missing). */
json_t *strata_store_load_tags(struct strata_store *store, struct strata_error **err);
/* Writes tags.json atomically; the caller holds the lock. */
int strata_store_save_tags(struct strata_store *store, json_t *tags, struct strata_error **err);

/* Counts how many images use each layer key; returns a JSON object key hex -> count. */
json_t *strata_store_layer_usage(struct strata_store *store, struct strata_error **err);

bool strata_store_has_layer(struct strata_store *store, const struct strata_digest *key);

/* Reads a JSON file below the store, naming it in errors. */
json_t *strata_store_read_json(struct strata_store *store, const char *path, struct strata_error **err);

#endif
