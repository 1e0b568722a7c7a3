/*
 * Turning the blobs of an archive into verified images, and publishing them.
 *
 * Two manifest formats lead to images: docker's manifest.json (legacy docker
 * save, podman docker-archive, Docker 25+) and the OCI index.json (image
 * layouts, Docker 25+).  An archive with both yields each image once; tags
 * from both are merged.
 */
#define _GNU_SOURCE
#include "import.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "ref.h"
#include "util.h"

#define MAX_INDEX_DEPTH 8

struct candidate_layer {
	struct strata_blob *blob;
	char *path;                     /* archive path or digest, for messages */
	bool has_descriptor;            /* OCI: digest and size to check */
	struct strata_digest descriptor_digest;
	uint64_t descriptor_size;
	char *media_type;

	/* Filled while resolving: */
	struct strata_digest diff_id;
	struct strata_digest key;
	char *dir;                      /* layer directory relative to the store */
	bool unpacked;
	uint64_t tar_size;
	uint64_t entries;
	uint64_t file_bytes;
};

struct candidate {
	struct strata_digest id;
	struct strata_blob *config;
	const char *manifest;           /* manifest bytes to keep */
	size_t manifest_len;
	const char *source_format;
	char *where;                    /* where the image came from, for messages */
	char **tags;
	size_t ntags;
	struct candidate_layer *layers;
	size_t nlayers;
	json_t *config_json;
};

struct importer {
	struct strata_store *store;
	const struct strata_import_options *opts;
	struct strata_archive archive;
	char *stage;
	struct candidate *images;
	size_t nimages;
	const char *platform;
	bool platform_explicit;         /* chosen with --platform: never fall back to another */
};

const char *strata_host_platform(void)
{
	static char platform[128];
	struct utsname u;
	const char *arch = "amd64";

	if (platform[0])
		return platform;
	if (uname(&u) == 0) {
		if (strcmp(u.machine, "x86_64") == 0)
			arch = "amd64";
		else if (strcmp(u.machine, "aarch64") == 0)
			arch = "arm64";
		else if (strncmp(u.machine, "armv7", 5) == 0)
			arch = "arm/v7";
		else if (strncmp(u.machine, "armv6", 5) == 0)
			arch = "arm/v6";
		else if (strcmp(u.machine, "i686") == 0 || strcmp(u.machine, "i386") == 0)
			arch = "386";
		else
			arch = u.machine;  /* ppc64le, s390x, riscv64 use the same names */
	}
	snprintf(platform, sizeof(platform), "linux/%s", arch);
	return platform;
}

static void add_tag(struct candidate *c, const char *tag)
{
	for (size_t i = 0; i < c->ntags; i++)
		if (strcmp(c->tags[i], tag) == 0)
			return;
	c->tags = xrealloc(c->tags, (c->ntags + 1) * sizeof(char *));
	c->tags[c->ntags++] = xstrdup(tag);
}

/* Adds a tag from archive metadata; a name that is not a valid reference is skipped with a warning. */
static void add_archive_tag(struct candidate *c, const char *name, const char *origin)
{
	struct strata_error *err = NULL;
	char *tag;

	if (name == NULL || name[0] == '\0')
		return;
	/* A bare tag such as "latest" (skopeo oci:DIR:latest) names no repository: not a usable tag. */
	if (strchr(name, '/') == NULL && strchr(name, ':') == NULL)
		return;
	tag = strata_ref_normalize(name, &err);
	if (tag == NULL) {
		strata_warn("%s: skipping tag: %s", origin, err->message);
		strata_error_free(err);
		return;
	}
	add_tag(c, tag);
	free(tag);
}

static struct candidate *find_candidate(struct importer *im, const struct strata_digest *id)
{
	for (size_t i = 0; i < im->nimages; i++)
		if (strata_digest_equal(&im->images[i].id, id))
			return &im->images[i];
	return NULL;
}

static struct candidate *new_candidate(struct importer *im)
{
	struct candidate *c;

	im->images = xrealloc(im->images, (im->nimages + 1) * sizeof(*im->images));
	c = &im->images[im->nimages++];
	memset(c, 0, sizeof(*c));
	return c;
}

static void free_candidate(struct candidate *c)
{
	for (size_t i = 0; i < c->ntags; i++)
		free(c->tags[i]);
	free(c->tags);
	for (size_t i = 0; i < c->nlayers; i++) {
		free(c->layers[i].path);
		free(c->layers[i].media_type);
		free(c->layers[i].dir);
	}
	free(c->layers);
	free(c->where);
	json_decref(c->config_json);
}

static json_t *parse_blob_json(struct strata_blob *blob, const char *what, struct strata_error **err)
{
	json_error_t jerr;
	json_t *json;

	if (blob->data == NULL)
		return strata_error_set(err, 0, "%s `%s` is not JSON", what, blob->name), NULL;
	json = json_loadb(blob->data, blob->len, JSON_DECODE_ANY, &jerr);
	if (json == NULL)
		strata_error_set(err, 0, "invalid JSON in %s `%s` at line %d column %d: %s", what, blob->name,
				 jerr.line, jerr.column, jerr.text);
	return json;
}

/* Checks a blob against its descriptor: digest and size must both match. */
static int verify_descriptor(struct strata_blob *blob, const struct strata_digest *digest, uint64_t size,
			     const char *what, struct strata_error **err)
{
	char want[STRATA_DIGEST_STR_LEN];
	char got[STRATA_DIGEST_STR_LEN];

	strata_digest_string(digest, want);
	strata_digest_string(&blob->digest, got);
	if (!strata_digest_equal(digest, &blob->digest))
		return strata_error_set(err, 0, "%s: blob %s digest mismatch: its content hashes to %s "
					"(size %llu, descriptor says %llu); the archive is corrupt or was modified",
					what, want, got, (unsigned long long)blob->size, (unsigned long long)size);
	if (blob->size != size)
		return strata_error_set(err, 0, "%s: blob %s size mismatch: %llu bytes, descriptor says %llu",
					what, want, (unsigned long long)blob->size, (unsigned long long)size);
	return 0;
}

static bool is_index_type(const char *t)
{
	return t && (strcmp(t, "application/vnd.oci.image.index.v1+json") == 0 ||
		     strcmp(t, "application/vnd.docker.distribution.manifest.list.v2+json") == 0);
}

static bool is_manifest_type(const char *t)
{
	return t && (strcmp(t, "application/vnd.oci.image.manifest.v1+json") == 0 ||
		     strcmp(t, "application/vnd.docker.distribution.manifest.v2+json") == 0);
}

static bool is_layer_type(const char *t)
{
	static const char *const types[] = {
		"application/vnd.oci.image.layer.v1.tar",
		"application/vnd.oci.image.layer.v1.tar+gzip",
		"application/vnd.oci.image.layer.v1.tar+zstd",
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.diff.tar",
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (t && strcmp(t, types[i]) == 0)
			return true;
	return false;
}

static int parse_descriptor(json_t *desc, const char *what, struct strata_digest *digest, uint64_t *size,
			    const char **media_type, struct strata_error **err)
{
	json_t *jsize = json_object_get(desc, "size");

	if (!json_is_object(desc))
		return strata_error_set(err, 0, "%s: descriptor is not a JSON object", what);
	if (strata_digest_parse(json_string_value(json_object_get(desc, "digest")), what, digest, err) < 0)
		return -1;
	if (!json_is_integer(jsize) || json_integer_value(jsize) < 0)
		return strata_error_set(err, 0, "%s: descriptor has no valid size", what);
	*size = (uint64_t)json_integer_value(jsize);
	*media_type = json_string_value(json_object_get(desc, "mediaType"));
	return 0;
}

static bool platform_matches(json_t *platform, const char *wanted)
{
	const char *os = json_string_value(json_object_get(platform, "os"));
	const char *arch = json_string_value(json_object_get(platform, "architecture"));
	const char *variant = json_string_value(json_object_get(platform, "variant"));
	auto_free char *have = NULL;
	size_t wlen = strlen(wanted);

	if (os == NULL || arch == NULL)
		return false;
	have = variant ? xasprintf("%s/%s/%s", os, arch, variant) : xasprintf("%s/%s", os, arch);
	/* "linux/arm64" matches an "linux/arm64/v8" entry; an explicit variant must match exactly. */
	return strcmp(have, wanted) == 0 || (strncmp(have, wanted, wlen) == 0 && have[wlen] == '/');
}

static int add_oci_manifest(struct importer *im, struct strata_blob *blob, json_t *manifest, const char *where,
			    char **tags, size_t ntags, struct strata_error **err);

static int visit_descriptor(struct importer *im, json_t *desc, const char *where, char **tags, size_t ntags,
			    int depth, struct strata_error **err);

/* Visits an index: picks the descriptors for the wanted platform and recurses. */
static int visit_index(struct importer *im, json_t *index, const char *where, char **tags, size_t ntags, int depth,
		       struct strata_error **err)
{
	json_t *manifests = json_object_get(index, "manifests");
	size_t chosen = 0;
	struct strbuf available = {0};
	bool any_platform = false;

	if (json_is_null(manifests) || manifests == NULL)
		return 0;
	if (!json_is_array(manifests))
		return strata_error_set(err, 0, "%s: `manifests` is not an array", where);

	for (size_t i = 0; i < json_array_size(manifests); i++) {
		json_t *desc = json_array_get(manifests, i);
		json_t *platform = json_object_get(desc, "platform");
		auto_free char *child = xasprintf("%s manifests[%zu]", where, i);

		if (json_is_object(platform)) {
			any_platform = true;
			if (!platform_matches(platform, im->platform) &&
			    (json_array_size(manifests) > 1 || im->platform_explicit)) {
				const char *os = json_string_value(json_object_get(platform, "os"));
				const char *arch = json_string_value(json_object_get(platform, "architecture"));

				strbuf_addf(&available, "%s%s/%s", available.len ? ", " : "", os ? os : "?",
					    arch ? arch : "?");
				continue;
			}
		}
		if (visit_descriptor(im, desc, child, tags, ntags, depth + 1, err) < 0) {
			strbuf_release(&available);
			return -1;
		}
		chosen++;
	}
	if (chosen == 0 && any_platform) {
		strata_error_set(err, 0, "%s has no image for platform %s (available: %s); choose one with --platform",
				 where, im->platform, available.data ? available.data : "none");
		strbuf_release(&available);
		return -1;
	}
	strbuf_release(&available);
	return 0;
}

static int visit_descriptor(struct importer *im, json_t *desc, const char *where, char **tags, size_t ntags,
			    int depth, struct strata_error **err)
{
	struct strata_digest digest;
	uint64_t size;
	const char *media_type;
	struct strata_blob *blob;
	json_t *json;
	const char *own_type;
	int rc;

	if (depth > MAX_INDEX_DEPTH)
		return strata_error_set(err, 0, "%s: indexes nested more than %d deep", where, MAX_INDEX_DEPTH);
	if (parse_descriptor(desc, where, &digest, &size, &media_type, err) < 0)
		return -1;
	blob = strata_archive_find_digest(&im->archive, &digest);
	if (blob == NULL) {
		char d[STRATA_DIGEST_STR_LEN];

		strata_digest_string(&digest, d);
		return strata_error_set(err, 0, "%s: blob %s not found in the archive", where, d);
	}
	if (verify_descriptor(blob, &digest, size, where, err) < 0)
		return -1;
	json = parse_blob_json(blob, "manifest", err);
	if (json == NULL)
		return -1;
	own_type = json_string_value(json_object_get(json, "mediaType"));
	if (media_type == NULL)
		media_type = own_type;
	if (media_type == NULL && json_object_get(json, "manifests"))
		media_type = "application/vnd.oci.image.index.v1+json";
	if (media_type == NULL && json_object_get(json, "config"))
		media_type = "application/vnd.oci.image.manifest.v1+json";

	if (is_index_type(media_type))
		rc = visit_index(im, json, where, tags, ntags, depth, err);
	else if (is_manifest_type(media_type))
		rc = add_oci_manifest(im, blob, json, where, tags, ntags, err);
	else
		rc = strata_error_set(err, 0, "%s: unsupported media type `%s`", where, media_type ? media_type : "(none)");
	json_decref(json);
	return rc;
}

static int add_oci_manifest(struct importer *im, struct strata_blob *blob, json_t *manifest, const char *where,
			    char **tags, size_t ntags, struct strata_error **err)
{
	json_t *config = json_object_get(manifest, "config");
	json_t *layers = json_object_get(manifest, "layers");
	struct strata_digest config_digest;
	uint64_t config_size;
	const char *config_type;
	struct strata_blob *config_blob;
	struct candidate *c;
	auto_free char *config_where = xasprintf("%s config", where);

	if (parse_descriptor(config, config_where, &config_digest, &config_size, &config_type, err) < 0)
		return -1;
	if (!json_is_array(layers))
		return strata_error_set(err, 0, "%s: manifest has no `layers` array", where);
	config_blob = strata_archive_find_digest(&im->archive, &config_digest);
	if (config_blob == NULL) {
		char d[STRATA_DIGEST_STR_LEN];

		strata_digest_string(&config_digest, d);
		return strata_error_set(err, 0, "%s: config blob %s not found in the archive", where, d);
	}
	if (verify_descriptor(config_blob, &config_digest, config_size, config_where, err) < 0)
		return -1;

	c = find_candidate(im, &config_digest);
	if (c) {
		for (size_t i = 0; i < ntags; i++)
			add_tag(c, tags[i]);
		return 0;
	}
	c = new_candidate(im);
	c->id = config_digest;
	c->config = config_blob;
	c->manifest = blob->data;
	c->manifest_len = blob->len;
	c->source_format = "oci-layout";
	c->where = xstrdup(where);
	for (size_t i = 0; i < ntags; i++)
		add_tag(c, tags[i]);

	c->nlayers = json_array_size(layers);
	c->layers = xcalloc(c->nlayers ? c->nlayers : 1, sizeof(*c->layers));
	for (size_t i = 0; i < c->nlayers; i++) {
		struct candidate_layer *l = &c->layers[i];
		const char *type;
		auto_free char *lwhere = xasprintf("%s layers[%zu]", where, i);
		char d[STRATA_DIGEST_STR_LEN];

		if (parse_descriptor(json_array_get(layers, i), lwhere, &l->descriptor_digest, &l->descriptor_size,
				     &type, err) < 0)
			return -1;
		if (!is_layer_type(type))
			return strata_error_set(err, 0, "%s: unsupported layer media type `%s`", lwhere,
						type ? type : "(none)");
		l->has_descriptor = true;
		l->media_type = xstrdup(type);
		strata_digest_string(&l->descriptor_digest, d);
		l->path = xstrdup(d);
		l->blob = strata_archive_find_digest(&im->archive, &l->descriptor_digest);
		if (l->blob == NULL)
			return strata_error_set(err, 0, "%s: layer blob %s not found in the archive", lwhere, d);
	}
	return 0;
}

static int read_oci_index(struct importer *im, struct strata_blob *index_blob, struct strata_error **err)
{
	json_t *index = parse_blob_json(index_blob, "image index", err);
	json_t *manifests;
	int rc = 0;

	if (index == NULL)
		return -1;
	if (!json_is_object(index)) {
		json_decref(index);
		return strata_error_set(err, 0, "invalid index.json: not a JSON object");
	}
	manifests = json_object_get(index, "manifests");
	if (manifests != NULL && !json_is_null(manifests) && !json_is_array(manifests)) {
		json_decref(index);
		return strata_error_set(err, 0, "invalid index.json: `manifests` is not an array");
	}

	/* Top-level descriptors carry the names; a nested index passes them down. */
	for (size_t i = 0; rc == 0 && i < json_array_size(manifests); i++) {
		json_t *desc = json_array_get(manifests, i);
		json_t *annotations = json_object_get(desc, "annotations");
		json_t *platform = json_object_get(desc, "platform");
		struct candidate names = {0};
		auto_free char *where = xasprintf("index.json manifests[%zu]", i);

		if (json_is_object(platform) && !platform_matches(platform, im->platform) &&
		    json_array_size(manifests) == 1 && !im->platform_explicit) {
			/* The only image of the archive: take it with a warning, as podman load does. */
			strata_warn("%s is for platform %s/%s, not %s", where,
				    json_string_value(json_object_get(platform, "os")) ?: "?",
				    json_string_value(json_object_get(platform, "architecture")) ?: "?", im->platform);
		} else if (json_is_object(platform) && !platform_matches(platform, im->platform)) {
			/* Several platforms side by side at the top level: pick like a nested index. */
			bool others_match = false;

			for (size_t j = 0; j < json_array_size(manifests); j++)
				if (platform_matches(json_object_get(json_array_get(manifests, j), "platform"),
						     im->platform))
					others_match = true;
			if (others_match || !json_is_object(json_object_get(json_array_get(manifests, 0), "platform")))
				continue;
			if (i + 1 < json_array_size(manifests))
				continue;
			rc = strata_error_set(err, 0, "index.json has no image for platform %s; choose one with "
					      "--platform", im->platform);
			break;
		}
		add_archive_tag(&names, json_string_value(json_object_get(annotations, "io.containerd.image.name")),
				where);
		add_archive_tag(&names, json_string_value(json_object_get(annotations,
							  "org.opencontainers.image.ref.name")), where);
		rc = visit_descriptor(im, desc, where, names.tags, names.ntags, 0, err);
		free_candidate(&names);
	}
	json_decref(index);
	return rc;
}

/* Checks that a blob named "<hex>.json" or "blobs/sha256/<hex>" has that digest. */
static int verify_named_digest(struct strata_blob *blob, const char *what, struct strata_error **err)
{
	const char *base = strrchr(blob->name, '/');
	struct strata_digest named;
	size_t len;

	base = base ? base + 1 : blob->name;
	len = strlen(base);
	if (len == 69 && strcmp(base + 64, ".json") == 0)
		len = 64;
	if (len != 64 || !strata_digest_parse_hex(base, 64, &named))
		return 0;
	if (!strata_digest_equal(&named, &blob->digest)) {
		char got[STRATA_DIGEST_STR_LEN];

		strata_digest_string(&blob->digest, got);
		return strata_error_set(err, 0, "%s `%s` does not match its name: its content hashes to %s",
					what, blob->name, got);
	}
	return 0;
}

static int read_docker_manifest(struct importer *im, struct strata_blob *manifest_blob, struct strata_error **err)
{
	json_t *manifest = parse_blob_json(manifest_blob, "manifest", err);
	int rc = -1;

	if (manifest == NULL)
		return -1;
	if (json_is_null(manifest)) {
		strata_error_set(err, 0, "invalid manifest.json: null (expected an array of images)");
		goto out;
	}
	if (!json_is_array(manifest)) {
		strata_error_set(err, 0, "invalid manifest.json: expected an array of images");
		goto out;
	}

	for (size_t i = 0; i < json_array_size(manifest); i++) {
		json_t *item = json_array_get(manifest, i);
		const char *config_path = json_string_value(json_object_get(item, "Config"));
		json_t *layers = json_object_get(item, "Layers");
		json_t *repo_tags = json_object_get(item, "RepoTags");
		struct strata_blob *config_blob;
		struct candidate *c;
		auto_free char *where = xasprintf("manifest.json[%zu]", i);

		if (config_path == NULL || !json_is_array(layers)) {
			strata_error_set(err, 0, "invalid manifest.json: entry %zu needs `Config` and `Layers`", i);
			goto out;
		}
		config_blob = strata_archive_find(&im->archive, config_path);
		if (config_blob == NULL) {
			strata_error_set(err, 0, "manifest.json Config `%s` not found in the archive", config_path);
			goto out;
		}
		if (verify_named_digest(config_blob, "config", err) < 0)
			goto out;

		c = find_candidate(im, &config_blob->digest);
		if (c == NULL) {
			c = new_candidate(im);
			c->id = config_blob->digest;
			c->config = config_blob;
			c->manifest = manifest_blob->data;
			c->manifest_len = manifest_blob->len;
			c->source_format = "docker-archive";
			c->where = xstrdup(where);
			c->nlayers = json_array_size(layers);
			c->layers = xcalloc(c->nlayers ? c->nlayers : 1, sizeof(*c->layers));
			for (size_t j = 0; j < c->nlayers; j++) {
				const char *path = json_string_value(json_array_get(layers, j));

				if (path == NULL) {
					strata_error_set(err, 0, "invalid manifest.json: Layers[%zu] is not a string", j);
					goto out;
				}
				c->layers[j].path = xstrdup(path);
				c->layers[j].blob = strata_archive_find(&im->archive, path);
				if (c->layers[j].blob == NULL) {
					strata_error_set(err, 0, "manifest.json Layers[%zu] `%s` not found in the archive",
							 j, path);
					goto out;
				}
			}
		}
		for (size_t j = 0; j < json_array_size(repo_tags); j++)
			add_archive_tag(c, json_string_value(json_array_get(repo_tags, j)), "manifest.json RepoTags");
	}
	rc = 0;
out:
	json_decref(manifest);
	return rc;
}

/* ---- verification ------------------------------------------------------- */

static int verify_image(struct importer *im, struct candidate *c, struct strata_error **err)
{
	json_t *diff_ids;
	json_t *rootfs;

	c->config_json = parse_blob_json(c->config, "config", err);
	if (c->config_json == NULL)
		return -1;
	rootfs = json_object_get(c->config_json, "rootfs");
	diff_ids = json_object_get(rootfs, "diff_ids");
	if (!json_is_object(c->config_json) || !json_is_array(diff_ids))
		return strata_error_set(err, 0, "config `%s` has no rootfs.diff_ids array", c->config->name);
	if (json_array_size(diff_ids) != c->nlayers)
		return strata_error_set(err, 0, "%s lists %zu layers but its config `%s` has %zu diff_ids",
					c->where, c->nlayers, c->config->name, json_array_size(diff_ids));

	for (size_t i = 0; i < c->nlayers; i++) {
		struct candidate_layer *l = &c->layers[i];
		struct strata_blob *blob = l->blob;
		struct strata_digest expected;
		auto_free char *what = xasprintf("layer %zu (`%s`)", i + 1, blob->name);

		if (strata_digest_parse(json_string_value(json_array_get(diff_ids, i)), "config rootfs.diff_ids",
					&expected, err) < 0)
			return -1;
		if (l->has_descriptor && verify_descriptor(blob, &l->descriptor_digest, l->descriptor_size, what, err) < 0)
			return -1;
		if (!blob->is_layer) {
			/* Looked like JSON while streaming; it is a layer after all. */
			if (strata_blob_unpack_memory(im->store, blob, im->stage, &im->opts->limits, err) < 0)
				return strata_error_wrap(err, "%s", what);
		}
		if (blob->unpack_err) {
			*err = steal_pointer(&blob->unpack_err);
			return -1;
		}
		if (!strata_digest_equal(&blob->diff_id, &expected)) {
			char want[STRATA_DIGEST_STR_LEN];
			char got[STRATA_DIGEST_STR_LEN];

			strata_digest_string(&expected, want);
			strata_digest_string(&blob->diff_id, got);
			return strata_error_set(err, 0, "%s: diff_id mismatch, expected %s got %s", what, want, got);
		}
		l->diff_id = expected;
		if (l->media_type == NULL)
			l->media_type = xstrdup(blob->compression == STRATA_COMPRESSION_GZIP
						? "application/vnd.docker.image.rootfs.diff.tar.gzip"
						: blob->compression == STRATA_COMPRESSION_ZSTD
						? "application/vnd.oci.image.layer.v1.tar+zstd"
						: "application/vnd.docker.image.rootfs.diff.tar");
	}
	return 0;
}

/* ---- layer keys and lower hard links ------------------------------------- */

static void chain_id(const struct strata_digest *parent, const struct strata_digest *diff_id,
		     struct strata_digest *out)
{
	char a[STRATA_DIGEST_STR_LEN];
	char b[STRATA_DIGEST_STR_LEN];
	char text[2 * STRATA_DIGEST_STR_LEN];

	strata_digest_string(parent, a);
	strata_digest_string(diff_id, b);
	snprintf(text, sizeof(text), "%s %s", a, b);
	strata_sha256_buffer(text, strlen(text), out);
}

static int load_layer_sizes(struct strata_store *store, struct candidate_layer *l, struct strata_error **err)
{
	auto_free char *path = xasprintf("%s/layer.json", l->dir);
	json_t *meta = strata_store_read_json(store, path, err);

	if (meta == NULL)
		return -1;
	l->tar_size = (uint64_t)json_integer_value(json_object_get(meta, "tar_size"));
	l->entries = (uint64_t)json_integer_value(json_object_get(meta, "entries"));
	l->file_bytes = (uint64_t)json_integer_value(json_object_get(meta, "file_bytes"));
	json_decref(meta);
	return 0;
}

static int resolve_layers(struct importer *im, struct candidate *c, struct strata_error **err)
{
	struct strata_digest chain;

	for (size_t i = 0; i < c->nlayers; i++) {
		struct candidate_layer *l = &c->layers[i];
		struct strata_blob *blob = l->blob;
		char hex[STRATA_DIGEST_HEX_LEN + 1];

		if (i == 0)
			chain = l->diff_id;
		else
			chain_id(&chain, &l->diff_id, &chain);

		l->key = (!blob->present && blob->unpack.lower_links > 0) ? chain : l->diff_id;
		strata_digest_hex(&l->key, hex);

		if (strata_store_has_layer(im->store, &l->key)) {
			l->dir = xasprintf("layers/%s", hex);
			if (load_layer_sizes(im->store, l, err) < 0)
				return -1;
			continue;
		}
		if (blob->present || blob->stage == NULL)
			STRATA_BUG("layer neither in the store nor staged");

		if (blob->unpack.lower_links > 0) {
			auto_free int *fds = xmalloc((i ? i : 1) * sizeof(int));
			size_t opened = 0;
			int rc = 0;
			auto_close int stagefd = openat(im->store->dirfd, blob->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			if (!strata_digest_is_zero(&blob->resolved_chain)) {
				if (!strata_digest_equal(&blob->resolved_chain, &chain))
					/* NEEDSWORK: copy the staged tree to give each chain its own layer directory. */
					return strata_error_set(err, 0, "layer blob `%s` has hard links into lower layers and "
								"appears on two different layer stacks in this archive; "
								"import the images one archive at a time", blob->name);
				goto staged;
			}
			if (stagefd < 0)
				return strata_error_set(err, errno, "cannot open staging directory `%s`", blob->stage);
			for (; opened < i; opened++) {
				fds[opened] = openat(im->store->dirfd, c->layers[opened].dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				if (fds[opened] < 0) {
					rc = strata_error_set(err, errno, "cannot open layer directory `%s`",
							      c->layers[opened].dir);
					break;
				}
			}
			if (rc == 0)
				rc = strata_layer_resolve_lower_links(stagefd, fds, i, im->store->rootless, err);
			for (size_t k = 0; k < opened; k++)
				close(fds[k]);
			if (rc < 0)
				return strata_error_wrap(err, "layer %zu (`%s`)", i + 1, blob->name);
			blob->resolved_chain = chain;
		}
staged:
		l->dir = xstrdup(blob->stage);
		l->unpacked = true;
		l->tar_size = blob->tar_size;
		l->entries = blob->unpack.tar_entries;
		l->file_bytes = blob->unpack.file_bytes;
	}
	return 0;
}

/* ---- publishing ------------------------------------------------------------ */

static int write_json_at(int dirfd, const char *name, json_t *json, struct strata_error **err)
{
	char *text = json_dumps(json, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc = write_file_atomic_at(dirfd, name, text, strlen(text), 0644, err);

	free(text);
	return rc;
}

/* Lets later imports recognise this blob by its archive name without unpacking it. */
static int index_blob(struct importer *im, struct strata_blob *blob, const char *blob_digest, const char *diff,
		      struct strata_error **err)
{
	auto_free char *name = strata_blob_index_name(blob->name);
	auto_free char *line = xasprintf("%s %s\n", blob_digest, diff);
	auto_free char *by_digest = xasprintf("blob-index/%.64s", blob_digest + 7);

	/* A layer keyed by its chain depends on its lower layers, so its blob alone does not identify it. */
	if (blob->unpack.lower_links > 0)
		return 0;
	if (write_file_atomic_at(im->store->dirfd, by_digest, line, strlen(line), 0644, err) < 0)
		return -1;
	if (name && strncmp(name, "v1-", 3) == 0) {
		auto_free char *by_name = xasprintf("blob-index/%s", name);

		if (write_file_atomic_at(im->store->dirfd, by_name, line, strlen(line), 0644, err) < 0)
			return -1;
	}
	return 0;
}

static int publish_layer(struct importer *im, struct candidate_layer *l, struct strata_error **err)
{
	struct strata_blob *blob = l->blob;
	char key[STRATA_DIGEST_HEX_LEN + 1];
	char diff[STRATA_DIGEST_STR_LEN];
	char blob_digest[STRATA_DIGEST_STR_LEN];
	auto_free char *dest = NULL;
	auto_close int stagefd = -1;
	json_t *meta;
	int rc;

	strata_digest_hex(&l->key, key);
	strata_digest_string(&l->diff_id, diff);
	strata_digest_string(&blob->digest, blob_digest);
	if (!l->unpacked || blob->published)
		return index_blob(im, blob, blob_digest, diff, err);
	dest = xasprintf("layers/%s", key);

	stagefd = openat(im->store->dirfd, blob->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (stagefd < 0)
		return strata_error_set(err, errno, "cannot open staging directory `%s`", blob->stage);
	meta = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "diff_id", diff, "key", key,
			 "tar_size", (json_int_t)blob->tar_size, "entries", (json_int_t)blob->unpack.tar_entries,
			 "index_records", (json_int_t)blob->unpack.entries,
			 "file_bytes", (json_int_t)blob->unpack.file_bytes,
			 "lower_links", (json_int_t)blob->unpack.lower_links, "rootless", im->store->rootless);
	if (blob->unpack.lower_links > 0) {
		char chain[STRATA_DIGEST_STR_LEN];

		strata_digest_string(&blob->resolved_chain, chain);
		json_object_set_new(meta, "chain_id", json_string(chain));
	}
	rc = write_json_at(stagefd, "layer.json", meta, err);
	json_decref(meta);
	if (rc < 0 || fsync(stagefd) < 0) {
		if (rc == 0)
			strata_error_set(err, errno, "cannot sync `%s`", blob->stage);
		return -1;
	}
	if (renameat(im->store->dirfd, blob->stage, im->store->dirfd, dest) < 0 && errno != EEXIST &&
	    errno != ENOTEMPTY)
		return strata_error_set(err, errno, "cannot publish layer `%s/%s`", im->store->path, dest);
	blob->published = true;
	return index_blob(im, blob, blob_digest, diff, err);
}

static json_t *image_record(struct candidate *c)
{
	json_t *layers = json_array();
	char id[STRATA_DIGEST_STR_LEN];

	for (size_t i = 0; i < c->nlayers; i++) {
		struct candidate_layer *l = &c->layers[i];
		char diff[STRATA_DIGEST_STR_LEN];
		char blob[STRATA_DIGEST_STR_LEN];
		char key[STRATA_DIGEST_HEX_LEN + 1];

		strata_digest_string(&l->diff_id, diff);
		strata_digest_string(&l->blob->digest, blob);
		strata_digest_hex(&l->key, key);
		json_array_append_new(layers, json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I}",
							"diff_id", diff, "key", key, "blob_digest", blob,
							"blob_size", (json_int_t)l->blob->size,
							"media_type", l->media_type,
							"tar_size", (json_int_t)l->tar_size,
							"entries", (json_int_t)l->entries,
							"file_bytes", (json_int_t)l->file_bytes));
	}
	strata_digest_string(&c->id, id);
	return json_pack("{s:s, s:s, s:I, s:o}", "id", id, "source_format", c->source_format,
			 "imported_ns", (json_int_t)now_ns(), "layers", layers);
}

static int publish_image(struct importer *im, struct candidate *c, struct strata_error **err)
{
	char hex[STRATA_DIGEST_HEX_LEN + 1];
	auto_free char *stage = NULL;
	auto_free char *dest = NULL;
	auto_close int fd = -1;
	json_t *record;
	int rc;

	strata_digest_hex(&c->id, hex);
	stage = xasprintf("%s/image-%s", im->stage, hex);
	dest = xasprintf("images/%s", hex);
	if (mkdirat(im->store->dirfd, stage, 0755) < 0)
		return strata_error_set(err, errno, "cannot create `%s`", stage);
	fd = openat(im->store->dirfd, stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return strata_error_set(err, errno, "cannot open `%s`", stage);
	if (write_file_atomic_at(fd, "config.json", c->config->data, c->config->len, 0644, err) < 0 ||
	    write_file_atomic_at(fd, "manifest.json", c->manifest, c->manifest_len, 0644, err) < 0)
		return -1;
	record = image_record(c);
	rc = write_json_at(fd, "image.json", record, err);
	json_decref(record);
	if (rc < 0)
		return -1;

	if (renameat2(im->store->dirfd, stage, im->store->dirfd, dest, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EEXIST)
		return strata_error_set(err, errno, "cannot publish image `%s/%s`", im->store->path, dest);
	/* Re-import: swap in the new record; the old one ends up in staging and goes with it. */
	if (renameat2(im->store->dirfd, stage, im->store->dirfd, dest, RENAME_EXCHANGE) < 0)
		return strata_error_set(err, errno, "cannot replace image `%s/%s`", im->store->path, dest);
	return 0;
}

static int publish(struct importer *im, struct strata_error **err)
{
	json_t *tags;
	int rc;

	for (size_t i = 0; i < im->nimages; i++)
		for (size_t j = 0; j < im->images[i].nlayers; j++)
			if (publish_layer(im, &im->images[i].layers[j], err) < 0)
				return -1;
	for (size_t i = 0; i < im->nimages; i++)
		if (publish_image(im, &im->images[i], err) < 0)
			return -1;

	tags = strata_store_load_tags(im->store, err);
	if (tags == NULL)
		return -1;
	for (size_t i = 0; i < im->nimages; i++) {
		char id[STRATA_DIGEST_STR_LEN];

		strata_digest_string(&im->images[i].id, id);
		for (size_t t = 0; t < im->images[i].ntags; t++)
			json_object_set_new(tags, im->images[i].tags[t], json_string(id));
	}
	rc = strata_store_save_tags(im->store, tags, err);
	json_decref(tags);
	return rc;
}

/* ---- entry point -------------------------------------------------------------- */

static int collect_images(struct importer *im, struct strata_error **err)
{
	struct strata_blob *index = strata_archive_find(&im->archive, "index.json");
	struct strata_blob *manifest = strata_archive_find(&im->archive, "manifest.json");

	if (index == NULL && manifest == NULL)
		return strata_error_set(err, 0, "`%s` is not an image archive: it has neither manifest.json "
					"(docker save, podman docker-archive) nor index.json (OCI image layout)",
					im->opts->path);
	if (index && read_oci_index(im, index, err) < 0)
		return -1;
	if (manifest && read_docker_manifest(im, manifest, err) < 0)
		return -1;
	if (im->nimages == 0)
		return strata_error_set(err, 0, "`%s` contains no images (its manifest lists none)", im->opts->path);
	return 0;
}

static void fill_result(struct importer *im, struct strata_import_result *result)
{
	result->nimages = im->nimages;
	result->images = xcalloc(im->nimages ? im->nimages : 1, sizeof(*result->images));
	for (size_t i = 0; i < im->nimages; i++) {
		struct candidate *c = &im->images[i];
		struct strata_import_image *out = &result->images[i];

		out->id = c->id;
		out->ntags = c->ntags;
		out->tags = xcalloc(c->ntags ? c->ntags : 1, sizeof(char *));
		for (size_t t = 0; t < c->ntags; t++)
			out->tags[t] = xstrdup(c->tags[t]);
		out->nlayers = c->nlayers;
		out->layers = xcalloc(c->nlayers ? c->nlayers : 1, sizeof(*out->layers));
		for (size_t j = 0; j < c->nlayers; j++) {
			out->layers[j].diff_id = c->layers[j].diff_id;
			out->layers[j].unpacked = c->layers[j].unpacked;
			out->layers[j].tar_size = c->layers[j].tar_size;
		}
	}
}

int strata_import(struct strata_store *store, const struct strata_import_options *opts,
		  struct strata_import_result *result, struct strata_error **err)
{
	struct importer im = { .store = store, .opts = opts };
	struct strata_read_options read_opts = {0};
	struct strata_error *cleanup_err = NULL;
	int rc = -1;

	memset(result, 0, sizeof(*result));
	im.platform = opts->platform ? opts->platform : strata_host_platform();
	im.platform_explicit = opts->platform != NULL;
	im.stage = strata_store_stage(store, "import", err);
	if (im.stage == NULL)
		return -1;

	read_opts.path = opts->path;
	read_opts.stage = im.stage;
	read_opts.limits = opts->limits;
	read_opts.progress = opts->progress;
	read_opts.progress_data = opts->progress_data;
	if (strata_archive_read(store, &read_opts, &im.archive, err) < 0)
		goto out;
	if (collect_images(&im, err) < 0)
		goto out;

	if (opts->ntags > 0) {
		if (im.nimages != 1) {
			strata_error_set(err, 0, "--tag needs an archive with exactly one image; `%s` has %zu",
					 opts->path, im.nimages);
			goto out;
		}
		for (size_t t = 0; t < opts->ntags; t++)
			add_tag(&im.images[0], opts->tags[t]);
	}

	for (size_t i = 0; i < im.nimages; i++) {
		char id[STRATA_DIGEST_STR_LEN];

		strata_digest_string(&im.images[i].id, id);
		if (im.images[i].ntags == 0)
			strata_warn("image %.19s in `%s` has no repository name, so it is imported untagged; "
				    "name it with --tag NAME:TAG", id, opts->path);
	}
	for (size_t i = 0; i < im.nimages; i++) {
		if (verify_image(&im, &im.images[i], err) < 0) {
			strata_error_wrap(err, "`%s`", strcmp(opts->path, "-") == 0 ? "standard input" : opts->path);
			goto out;
		}
	}
	for (size_t i = 0; i < im.nimages; i++)
		if (resolve_layers(&im, &im.images[i], err) < 0)
			goto out;
	if (publish(&im, err) < 0)
		goto out;
	fill_result(&im, result);
	rc = 0;

out:
	if (rmtree_at(store->dirfd, im.stage, &cleanup_err) < 0) {
		strata_warn("cannot remove staging directory `%s/%s`: %s (the next import removes it)", store->path,
			    im.stage, cleanup_err->message);
		strata_error_free(cleanup_err);
	}
	for (size_t i = 0; i < im.nimages; i++)
		free_candidate(&im.images[i]);
	free(im.images);
	strata_archive_release(&im.archive);
	free(im.stage);
	return rc;
}

void strata_import_result_release(struct strata_import_result *result)
{
	for (size_t i = 0; i < result->nimages; i++) {
		for (size_t t = 0; t < result->images[i].ntags; t++)
			free(result->images[i].tags[t]);
		free(result->images[i].tags);
		free(result->images[i].layers);
	}
	free(result->images);
	memset(result, 0, sizeof(*result));
}
