#include "ref.h"

#include <ctype.h>
#include <string.h>

#include "util.h"

static bool valid_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
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

	/* A registry host may contain upper case and a port; the path may not. */
	host_end = strata_ref_has_domain(name) && first_slash ? name + (first_slash - ref) : name;
	for (const char *p = host_end; *p; p++) {
		if (!valid_name_char(*p))
			return strata_error_set(err, 0, "invalid image reference `%s`: names use lower-case letters, "
						"digits and . _ - / only", ref), NULL;
	}
	if (host_end[0] == '/' && host_end == name)
		return strata_error_set(err, 0, "invalid image reference `%s`", ref), NULL;
	if (strstr(name, "//") || name[strlen(name) - 1] == '/')
		return strata_error_set(err, 0, "invalid image reference `%s`: empty name component", ref), NULL;
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
