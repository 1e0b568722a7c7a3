#include "ref.h"

#include <ctype.h>
#include <string.h>

#include "util.h"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * Checks one path component of a repository name: lower-case letters and
 * digits, with single ".", "_", "__" or runs of "-" between them, as the
 * OCI distribution specification defines it.
 */
static bool valid_component(const char *p, size_t len)
{
	size_t i = 0;

	if (len == 0 || !is_lower_alnum(p[0]) || !is_lower_alnum(p[len - 1]))
		return false;
	while (i < len) {
		if (is_lower_alnum(p[i])) {
			i++;
			continue;
		}
		if (p[i] == '.' || (p[i] == '_' && !(i + 1 < len && p[i + 1] == '_'))) {
			i++;
		} else if (p[i] == '_') {
			i += 2;
		} else if (p[i] == '-') {
			while (i < len && p[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i >= len || !is_lower_alnum(p[i]))
			return false;
	}
	return true;
}

/* Checks a registry host: letters, digits, "." and "-", with an optional ":port". */
static bool valid_host(const char *p, size_t len)
{
	const char *colon = memchr(p, ':', len);
	size_t hlen = colon ? (size_t)(colon - p) : len;

	if (hlen == 0 || !isalnum((unsigned char)p[0]) || !isalnum((unsigned char)p[hlen - 1]))
		return false;
	for (size_t i = 0; i < hlen; i++) {
		if (!isalnum((unsigned char)p[i]) && p[i] != '.' && p[i] != '-')
			return false;
		if (p[i] == '.' && p[i + 1] == '.')
			return false;
	}
	if (colon) {
		if (colon + 1 == p + len)
			return false;
		for (const char *q = colon + 1; q < p + len; q++)
			if (!isdigit((unsigned char)*q))
				return false;
	}
	return true;
}

static bool valid_tag(const char *tag)
{
	size_t len = strlen(tag);

	if (len == 0 || len > 128 || tag[0] == '.' || tag[0] == '-')
		return false;
	for (const char *p = tag; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	return true;
}

bool strata_ref_has_domain(const char *name)
{
	const char *slash = strchr(name, '/');
	size_t len = slash ? (size_t)(slash - name) : 0;

	if (slash == NULL)
		return false;
	if (len == 9 && strncmp(name, "localhost", 9) == 0)
		return true;
	return memchr(name, '.', len) != NULL || memchr(name, ':', len) != NULL;
}

char *strata_ref_normalize(const char *ref, struct strata_error **err)
{
	const char *last_slash = strrchr(ref, '/');
	const char *colon = strrchr(last_slash ? last_slash : ref, ':');
	auto_free char *name = NULL;
	const char *tag = "latest";
	const char *first_slash = strchr(ref, '/');
	const char *host_end;

	if (strchr(ref, '@'))
		return strata_error_set(err, 0, "invalid image reference `%s`: digest references are not supported "
					"(use the image ID instead)", ref), NULL;
	if (colon) {
		name = xstrndup(ref, (size_t)(colon - ref));
		tag = colon + 1;
	} else {
		name = xstrdup(ref);
	}
	if (name[0] == '\0' || !valid_tag(tag))
		return strata_error_set(err, 0, "invalid image reference `%s` (expected NAME[:TAG])", ref), NULL;

	/* A registry host may contain upper case and a port; the path components may not. */
	host_end = name;
	if (strata_ref_has_domain(name) && first_slash) {
		host_end = name + (first_slash - ref);
		if (!valid_host(name, (size_t)(host_end - name)))
			return strata_error_set(err, 0, "invalid image reference `%s`: invalid registry host", ref), NULL;
		host_end++;
	}
	for (const char *p = host_end;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (!valid_component(p, len))
			return strata_error_set(err, 0, "invalid image reference `%s`: name components use lower-case "
						"letters and digits separated by . _ or -", ref), NULL;
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	return xasprintf("%s:%s", name, tag);
}

bool strata_ref_is_id_prefix(const char *ref)
{
	size_t len;

	if (strncmp(ref, "sha256:", 7) == 0)
		ref += 7;
	len = strlen(ref);
	if (len < 4 || len > 64)
		return false;
	for (const char *p = ref; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}
