#include "path.h"

#include <stdint.h>
#include <string.h>

#include "util.h"

char *strata_path_normalize(const char *name, struct strata_error **err)
{
	size_t len = strlen(name);
	char *out = xmalloc(len + 1);
	size_t o = 0;
	const char *p = name;

	while (*p) {
		const char *end;
		size_t clen;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		end = strchr(p, '/');
		if (end == NULL)
			end = p + strlen(p);
		clen = (size_t)(end - p);

		if (clen == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		if (clen == 2 && p[0] == '.' && p[1] == '.') {
			free(out);
			strata_error_set(err, 0, "entry `%s` has a `..` component (path traversal)", name);
			return NULL;
		}
		if (o > 0)
			out[o++] = '/';
		memcpy(out + o, p, clen);
		o += clen;
		p = end;
	}
	out[o] = '\0';
	return out;
}

bool strata_path_component_invalid(const char *component, size_t len)
{
	if (len == 0)
		return true;
	if (len == 1 && component[0] == '.')
		return true;
	if (len == 2 && component[0] == '.' && component[1] == '.')
		return true;
	return memchr(component, '/', len) != NULL;
}

size_t strata_path_depth(const char *path)
{
	size_t depth = 0;

	if (*path == '\0')
		return 0;
	for (depth = 1; *path; path++)
		if (*path == '/')
			depth++;
	return depth;
}

/* Returns the length of the UTF-8 sequence at s, or 0 if it is invalid. */
static size_t utf8_sequence_length(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Reject overlong forms, surrogates and values past U+10FFFF. */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

char *strata_path_escape(const char *path)
{
	struct strbuf sb = {0};
	const unsigned char *s = (const unsigned char *)path;

	strbuf_append(&sb, "", 0);
	while (*s) {
		size_t n = utf8_sequence_length(s);

		if (n == 1 && (*s < 0x20 || *s == 0x7f || *s == '\\')) {
			if (*s == '\\')
				strbuf_addstr(&sb, "\\\\");
			else
				strbuf_addf(&sb, "\\x%02x", *s);
			s++;
		} else if (n == 0) {
			strbuf_addf(&sb, "\\x%02x", *s);
			s++;
		} else {
			strbuf_append(&sb, s, n);
			s += n;
		}
	}
	return sb.data;
}
