#define _GNU_SOURCE
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ref.h"
#include "util.h"

#define STORE_VERSION 1

static int lock_store(struct strata_store *store, bool clean, struct strata_error **err);

char *strata_store_default_path(const char *option)
{
	const char *env = getenv("STRATA_STORE");
	const char *xdg;
	const char *home;

	if (option && option[0])
		return xstrdup(option);
	if (env && env[0])
		return xstrdup(env);
	if (geteuid() == 0)
		return xstrdup("/var/lib/strata");
	xdg = getenv("XDG_DATA_HOME");
	if (xdg && xdg[0] == '/')
		return xasprintf("%s/strata", xdg);
	home = getenv("HOME");
	if (home == NULL || home[0] != '/') {
		struct passwd *pw = getpwuid(geteuid());

		home = pw ? pw->pw_dir : "/";
	}
	return xasprintf("%s/.local/share/strata", home);
}

json_t *strata_store_read_json(struct strata_store *store, const char *path, struct strata_error **err)
{
	char *data = NULL;
	size_t len = 0;
	json_error_t jerr;
	json_t *json;

	if (read_file_at(store->dirfd, path, &data, &len, err) < 0)
		return NULL;
	json = json_loadb(data, len, 0, &jerr);
	free(data);
	if (json == NULL)
		strata_error_set(err, 0, "invalid JSON in `%s/%s` at line %d column %d: %s", store->path, path,
				 jerr.line, jerr.column, jerr.text);
	return json;
}

static int init_store(struct strata_store *store, struct strata_error **err)
{
	static const char *const dirs[] = { "layers", "blob-index", "images", "tmp" };
	json_t *meta;
	char *text;
	int rc;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (mkdirat(store->dirfd, dirs[i], 0700) < 0 && errno != EEXIST)
			return strata_error_set(err, errno, "cannot create `%s/%s`", store->path, dirs[i]);

	if (faccessat(store->dirfd, "strata.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	meta = json_pack("{s:i, s:b}", "version", STORE_VERSION, "rootless", geteuid() != 0);
	text = json_dumps(meta, JSON_INDENT(2));
	json_decref(meta);
	rc = write_file_atomic_at(store->dirfd, "strata.json", text, strlen(text), 0644, err);
	free(text);
	return rc;
}

int strata_store_lock(struct strata_store *store, struct strata_error **err)
{
	return lock_store(store, true, err);
}

int strata_store_lock_keep_staging(struct strata_store *store, struct strata_error **err)
{
	return lock_store(store, false, err);
}

static int lock_store(struct strata_store *store, bool clean, struct strata_error **err)
{
	if (store->lock_fd >= 0)
		return 0;
	if (store->known && !store->rootless && geteuid() != 0)
		return strata_error_set(err, 0, "store `%s` was created by root; a non-root user cannot write to it "
					"(use --store with a directory of your own)", store->path);
	if (store->known && store->rootless && geteuid() == 0)
		return strata_error_set(err, 0, "store `%s` is a non-root store; write to it as the user who owns "
					"it, or use another --store as root", store->path);
	store->lock_fd = openat(store->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (store->lock_fd < 0)
		return strata_error_set(err, errno, "cannot open `%s/lock`", store->path);
	while (flock(store->lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR)
			return strata_error_set(err, errno, "cannot lock store `%s`", store->path);
	}
	if (init_store(store, err) < 0)
		return -1;
	if (!clean)
		return 0;
	/* We hold the writer lock, so anything in tmp/ was left by a killed writer. */
	if (rmtree_at(store->dirfd, "tmp", err) < 0 || mkdirat(store->dirfd, "tmp", 0700) < 0) {
		if (*err == NULL)
			strata_error_set(err, errno, "cannot recreate `%s/tmp`", store->path);
		return strata_error_wrap(err, "cleaning stale staging in store `%s`", store->path);
	}
	return 0;
}

void strata_store_unlock(struct strata_store *store)
{
	if (store->lock_fd >= 0)
		close(store->lock_fd);
	store->lock_fd = -1;
}

struct strata_store *strata_store_open(const char *path, unsigned flags, struct strata_error **err)
{
	struct strata_store *store = xcalloc(1, sizeof(*store));
	json_t *meta;
	struct stat st;

	store->path = xstrdup(path);
	store->lock_fd = -1;
	store->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store->dirfd < 0 && errno == ENOENT && (flags & STRATA_STORE_CREATE)) {
		if (mkdir_p_at(AT_FDCWD, path, 0700, err) < 0)
			goto fail;
		store->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (store->dirfd >= 0) {
		/* Views hand layer paths to the kernel, which needs them absolute. */
		char *absolute = realpath(path, NULL);

		if (absolute) {
			free(store->path);
			store->path = absolute;
		}
	}
	if (store->dirfd < 0) {
		if (errno == ENOENT)
			strata_error_set(err, 0, "store `%s` does not exist (import an image with "
					 "`strata pull-from-tarball` first, or pass --store)", path);
		else
			strata_error_set(err, errno, "cannot open store `%s`", path);
		goto fail;
	}
	if (fstat(store->dirfd, &st) < 0) {
		strata_error_set(err, errno, "cannot open store `%s`", path);
		goto fail;
	}
	if (st.st_uid != geteuid() && geteuid() != 0 && (flags & STRATA_STORE_LOCK)) {
		strata_error_set(err, EACCES, "store `%s` belongs to another user (uid %u)", path, (unsigned)st.st_uid);
		goto fail;
	}

	if (faccessat(store->dirfd, "strata.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		meta = strata_store_read_json(store, "strata.json", err);
		if (meta == NULL) {
			strata_error_wrap(err, "`%s` is not a strata store", path);
			goto fail;
		}
		store->rootless = json_is_true(json_object_get(meta, "rootless"));
		store->known = true;
		json_decref(meta);
	}
	if ((flags & STRATA_STORE_LOCK) && strata_store_lock(store, err) < 0)
		goto fail;

	meta = strata_store_read_json(store, "strata.json", err);
	if (meta == NULL) {
		strata_error_wrap(err, "`%s` is not a strata store", path);
		goto fail;
	}
	if (json_integer_value(json_object_get(meta, "version")) != STORE_VERSION) {
		json_decref(meta);
		strata_error_set(err, 0, "store `%s` has an unsupported format version", path);
		goto fail;
	}
	store->rootless = json_is_true(json_object_get(meta, "rootless"));
	json_decref(meta);
	return store;

fail:
	strata_store_free(store);
	return NULL;
}

void strata_store_free(struct strata_store *store)
{
	if (store == NULL)
		return;
	if (store->lock_fd >= 0)
		close(store->lock_fd);
	if (store->dirfd >= 0)
		close(store->dirfd);
	free(store->path);
	free(store);
}

char *strata_store_stage(struct strata_store *store, const char *prefix, struct strata_error **err)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		char *name = xasprintf("tmp/%s-%d-%lld-%d", prefix, (int)getpid(), (long long)(now_ns() % 1000000000),
				       attempt);

		if (mkdirat(store->dirfd, name, 0700) == 0)
			return name;
		if (errno != EEXIST) {
			strata_error_set(err, errno, "cannot create staging directory `%s/%s`", store->path, name);
			free(name);
			return NULL;
		}
		free(name);
	}
	strata_error_set(err, EEXIST, "cannot create a staging directory in `%s/tmp`", store->path);
	return NULL;
}

bool strata_store_has_layer(struct strata_store *store, const struct strata_digest *key)
{
	char hex[STRATA_DIGEST_HEX_LEN + 1];
	auto_free char *path = NULL;

	strata_digest_hex(key, hex);
	path = xasprintf("layers/%s/index", hex);
	return faccessat(store->dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

json_t *strata_store_load_tags(struct strata_store *store, struct strata_error **err)
{
	json_t *tags;

	if (faccessat(store->dirfd, "tags.json", F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return json_object();
	tags = strata_store_read_json(store, "tags.json", err);
	if (tags && !json_is_object(tags)) {
		json_decref(tags);
		strata_error_set(err, 0, "`%s/tags.json` is not a JSON object", store->path);
		return NULL;
	}
	return tags;
}

int strata_store_save_tags(struct strata_store *store, json_t *tags, struct strata_error **err)
{
	char *text = json_dumps(tags, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc;

	rc = write_file_atomic_at(store->dirfd, "tags.json", text, strlen(text), 0644, err);
	free(text);
	return rc;
}

static int compare_digests(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct strata_digest));
}

int strata_store_list_images(struct strata_store *store, struct strata_digest **ids, size_t *count,
			     struct strata_error **err)
{
	int fd = openat(store->dirfd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;
	struct dirent *de;
	size_t n = 0;
	size_t cap = 16;
	struct strata_digest *out = xmalloc(cap * sizeof(*out));

	if (fd < 0) {
		free(out);
		if (errno == ENOENT) {
			*ids = NULL;
			*count = 0;
			return 0;
		}
		return strata_error_set(err, errno, "cannot read `%s/images`", store->path);
	}
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		free(out);
		return strata_error_set(err, errno, "cannot read `%s/images`", store->path);
	}
	while ((de = readdir(dir)) != NULL) {
		struct strata_digest d;

		if (!strata_digest_parse_hex(de->d_name, strlen(de->d_name), &d))
			continue;
		if (n == cap)
			out = xrealloc(out, (cap *= 2) * sizeof(*out));
		out[n++] = d;
	}
	closedir(dir);
	qsort(out, n, sizeof(*out), compare_digests);
	*ids = out;
	*count = n;
	return 0;
}

static void parse_u64(json_t *obj, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(obj, key);

	*out = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

void strata_image_free(struct strata_image *image)
{
	if (image == NULL)
		return;
	for (size_t i = 0; i < image->ntags; i++)
		free(image->tags[i]);
	free(image->tags);
	for (size_t i = 0; i < image->nlayers; i++)
		free(image->layers[i].media_type);
	free(image->layers);
	json_decref(image->config);
	free(image->source_format);
	free(image);
}

struct strata_image *strata_image_load(struct strata_store *store, const struct strata_digest *id,
				       struct strata_error **err)
{
	char hex[STRATA_DIGEST_HEX_LEN + 1];
	char idstr[STRATA_DIGEST_STR_LEN];
	auto_free char *record_path = NULL;
	auto_free char *config_path = NULL;
	struct strata_image *image = xcalloc(1, sizeof(*image));
	json_t *record;
	json_t *layers;
	json_t *tags;
	const char *tag;
	json_t *value;

	strata_digest_hex(id, hex);
	strata_digest_string(id, idstr);
	image->id = *id;
	record_path = xasprintf("images/%s/image.json", hex);
	config_path = xasprintf("images/%s/config.json", hex);

	record = strata_store_read_json(store, record_path, err);
	if (record == NULL)
		goto fail;
	image->config = strata_store_read_json(store, config_path, err);
	if (image->config == NULL) {
		json_decref(record);
		goto fail;
	}
	image->source_format = xstrdup(json_string_value(json_object_get(record, "source_format")) ?
				       json_string_value(json_object_get(record, "source_format")) : "");
	image->imported_ns = json_integer_value(json_object_get(record, "imported_ns"));

	layers = json_object_get(record, "layers");
	image->nlayers = json_array_size(layers);
	image->layers = xcalloc(image->nlayers ? image->nlayers : 1, sizeof(*image->layers));
	for (size_t i = 0; i < image->nlayers; i++) {
		json_t *l = json_array_get(layers, i);
		struct strata_image_layer *out = &image->layers[i];
		const char *key = json_string_value(json_object_get(l, "key"));

		if (strata_digest_parse(json_string_value(json_object_get(l, "diff_id")), record_path,
					&out->diff_id, err) < 0 ||
		    strata_digest_parse(json_string_value(json_object_get(l, "blob_digest")), record_path,
					&out->blob_digest, err) < 0 ||
		    key == NULL || !strata_digest_parse_hex(key, strlen(key), &out->key)) {
			strata_error_set(err, 0, "`%s/%s` is corrupt", store->path, record_path);
			json_decref(record);
			goto fail;
		}
		out->media_type = xstrdup(json_string_value(json_object_get(l, "media_type")) ?
					  json_string_value(json_object_get(l, "media_type")) : "");
		parse_u64(l, "blob_size", &out->blob_size);
		parse_u64(l, "tar_size", &out->tar_size);
		parse_u64(l, "entries", &out->entries);
		parse_u64(l, "file_bytes", &out->file_bytes);
	}
	json_decref(record);

	tags = strata_store_load_tags(store, err);
	if (tags == NULL)
		goto fail;
	json_object_foreach(tags, tag, value) {
		if (json_is_string(value) && strcmp(json_string_value(value), idstr) == 0) {
			image->tags = xrealloc(image->tags, (image->ntags + 1) * sizeof(char *));
			image->tags[image->ntags++] = xstrdup(tag);
		}
	}
	json_decref(tags);
	return image;

fail:
	strata_image_free(image);
	return NULL;
}

/* Adds the tag's image to matches unless it is there already. */
static void add_match(json_t *tags, const char *tag, json_t *matches)
{
	json_t *id = json_object_get(tags, tag);

	if (json_is_string(id) && !json_object_get(matches, tag))
		json_object_set(matches, tag, id);
}

int strata_store_resolve_image(struct strata_store *store, const char *ref, struct strata_digest *id,
			       struct strata_error **err)
{
	json_t *tags = strata_store_load_tags(store, err);
	json_t *matches;
	auto_free char *normal = NULL;
	struct strata_error *ref_err = NULL;

	if (tags == NULL)
		return -1;
	matches = json_object();
	normal = strata_ref_normalize(ref, &ref_err);
	if (normal) {
		add_match(tags, normal, matches);
		if (json_object_size(matches) == 0 && !strata_ref_has_domain(normal)) {
			static const char *const prefixes[] = { "localhost/", "docker.io/library/", "docker.io/" };

			for (size_t i = 0; i < 3; i++) {
				auto_free char *full = xasprintf("%s%s", prefixes[i], normal);

				add_match(tags, full, matches);
			}
		}
	}
	strata_error_free(ref_err);

	if (json_object_size(matches) >= 1) {
		const char *first = NULL;
		json_t *v;
		const char *k;
		bool same = true;

		json_object_foreach(matches, k, v) {
			if (first == NULL)
				first = json_string_value(v);
			else if (strcmp(first, json_string_value(v)) != 0)
				same = false;
		}
		if (!same) {
			strata_error_set(err, 0, "image reference `%s` is ambiguous: it matches several tags "
					 "(write the full name)", ref);
			json_decref(matches);
			json_decref(tags);
			return -1;
		}
		strata_digest_parse(first, "tags.json", id, err);
		json_decref(matches);
		json_decref(tags);
		return 0;
	}
	json_decref(matches);
	json_decref(tags);

	if (strata_ref_is_id_prefix(ref)) {
		const char *hex = strncmp(ref, "sha256:", 7) == 0 ? ref + 7 : ref;
		struct strata_digest *ids = NULL;
		size_t count = 0;
		size_t found = 0;

		if (strata_store_list_images(store, &ids, &count, err) < 0)
			return -1;
		for (size_t i = 0; i < count; i++) {
			char h[STRATA_DIGEST_HEX_LEN + 1];

			strata_digest_hex(&ids[i], h);
			if (strncmp(h, hex, strlen(hex)) == 0) {
				*id = ids[i];
				found++;
			}
		}
		free(ids);
		if (found == 1)
			return 0;
		if (found > 1)
			return strata_error_set(err, 0, "image ID prefix `%s` is ambiguous: %zu images match "
						"(give more digits)", ref, found);
	}
	return strata_error_set(err, 0, "image `%s` not found in store `%s` (see `strata images`; an image ID "
				"prefix needs at least 4 hex digits)", ref, store->path);
}

json_t *strata_store_layer_usage(struct strata_store *store, struct strata_error **err)
{
	struct strata_digest *ids = NULL;
	size_t count = 0;
	json_t *usage = json_object();

	if (strata_store_list_images(store, &ids, &count, err) < 0) {
		json_decref(usage);
		return NULL;
	}
	for (size_t i = 0; i < count; i++) {
		char hex[STRATA_DIGEST_HEX_LEN + 1];
		auto_free char *path = NULL;
		json_t *record;
		json_t *layers;
		json_t *seen = json_object();

		strata_digest_hex(&ids[i], hex);
		path = xasprintf("images/%s/image.json", hex);
		record = strata_store_read_json(store, path, err);
		if (record == NULL) {
			json_decref(seen);
			json_decref(usage);
			free(ids);
			return NULL;
		}
		layers = json_object_get(record, "layers");
		for (size_t j = 0; j < json_array_size(layers); j++) {
			const char *key = json_string_value(json_object_get(json_array_get(layers, j), "key"));

			/* An image that lists a layer twice still counts once. */
			if (key == NULL || json_object_get(seen, key))
				continue;
			json_object_set_new(seen, key, json_true());
			json_object_set_new(usage, key,
					    json_integer(json_integer_value(json_object_get(usage, key)) + 1));
		}
		json_decref(seen);
		json_decref(record);
	}
	free(ids);
	return usage;
}
