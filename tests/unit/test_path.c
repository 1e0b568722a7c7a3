/*
 * Unit tests for core/path.c: normalising tar entry names and escaping paths
 * for output.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/path.h"
#include "suites.h"

static void assert_normalized(const char *name, const char *expected)
{
	struct strata_error *err = NULL;
	char *path = strata_path_normalize(name, &err);

	ck_assert_msg(path != NULL, "name `%s` was rejected: %s", name, err ? err->message : "no error");
	ck_assert_ptr_null(err);
	ck_assert_msg(strcmp(path, expected) == 0, "name `%s` gives `%s`, expected `%s`", name, path, expected);
	free(path);
}

static void assert_traversal_rejected(const char *name)
{
	struct strata_error *err = NULL;
	char *path = strata_path_normalize(name, &err);
	size_t quoted_len = strlen(name) + 3;
	char *quoted = malloc(quoted_len);

	ck_assert_msg(path == NULL, "name `%s` was accepted as `%s`", name, path ? path : "");
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(err->message);
	snprintf(quoted, quoted_len, "`%s`", name);
	ck_assert_msg(strstr(err->message, quoted) != NULL, "message `%s` does not name %s", err->message, quoted);
	ck_assert_msg(strstr(err->message, "`..`") != NULL, "message `%s` does not name the `..` component",
		      err->message);

	free(quoted);
	strata_error_free(err);
}

static void assert_escaped(const char *path, const char *expected)
{
	char *escaped = strata_path_escape(path);

	ck_assert_ptr_nonnull(escaped);
	ck_assert_str_eq(escaped, expected);
	free(escaped);
}

START_TEST(test_path_normalize_plain)
{
	assert_normalized("etc/passwd", "etc/passwd");
	assert_normalized("a", "a");
	assert_normalized("usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6");
}
END_TEST

START_TEST(test_path_normalize_strips_prefixes)
{
	assert_normalized("/etc/passwd", "etc/passwd");
	assert_normalized("///etc/passwd", "etc/passwd");
	assert_normalized("./etc/passwd", "etc/passwd");
	assert_normalized("././etc", "etc");
	assert_normalized("/./etc", "etc");
}
END_TEST

START_TEST(test_path_normalize_collapses_separators)
{
	assert_normalized("etc//passwd", "etc/passwd");
	assert_normalized("etc/./passwd", "etc/passwd");
	assert_normalized("etc/././/passwd", "etc/passwd");
	assert_normalized("etc/passwd/.", "etc/passwd");
}
END_TEST

START_TEST(test_path_normalize_trailing_slash)
{
	assert_normalized("etc/", "etc");
	assert_normalized("etc/ssl//", "etc/ssl");
	assert_normalized("./etc/ssl/./", "etc/ssl");
}
END_TEST

START_TEST(test_path_normalize_root_forms)
{
	assert_normalized("/", "");
	assert_normalized("./", "");
	assert_normalized(".", "");
	assert_normalized("//", "");
	assert_normalized("/./", "");
	assert_normalized("./.", "");
	assert_normalized("", "");
}
END_TEST

START_TEST(test_path_normalize_keeps_dot_names)
{
	assert_normalized("...", "...");
	assert_normalized(".hidden/..x", ".hidden/..x");
	assert_normalized("a..b/x..", "a..b/x..");
	assert_normalized(".wh..wh..opq", ".wh..wh..opq");
}
END_TEST

START_TEST(test_path_normalize_rejects_dotdot)
{
	static const char *const names[] = {
		"..", "../", "../x", "/../x", "./../x", "a/..", "a/../", "a/../b", "a/b/..",
		"a/b/../../..", "a//..//b", "/..", "a/./../b", "x/y/../z",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_traversal_rejected(names[i]);
}
END_TEST

START_TEST(test_path_component_invalid)
{
	ck_assert(strata_path_component_invalid("", 0));
	ck_assert(strata_path_component_invalid(".", 1));
	ck_assert(strata_path_component_invalid("..", 2));
	ck_assert(strata_path_component_invalid("a/b", 3));
	ck_assert(!strata_path_component_invalid("...", 3));
	ck_assert(!strata_path_component_invalid(".a", 2));
	ck_assert(!strata_path_component_invalid("abc", 3));
	/* Only `len` bytes count: "..x" cut to two bytes is "..". */
	ck_assert(strata_path_component_invalid("..x", 2));
}
END_TEST

START_TEST(test_path_depth)
{
	ck_assert_uint_eq(strata_path_depth(""), 0);
	ck_assert_uint_eq(strata_path_depth("a"), 1);
	ck_assert_uint_eq(strata_path_depth("a/b"), 2);
	ck_assert_uint_eq(strata_path_depth("usr/lib/x86_64-linux-gnu/libc.so.6"), 4);
}
END_TEST

START_TEST(test_path_escape_printable_unchanged)
{
	assert_escaped("", "");
	assert_escaped("etc/passwd", "etc/passwd");
	assert_escaped("a b ~!@#$%^&*()\"'", "a b ~!@#$%^&*()\"'");
}
END_TEST

START_TEST(test_path_escape_control_bytes)
{
	assert_escaped("a\nb", "a\\x0ab");
	assert_escaped("\x1b[31mred", "\\x1b[31mred");
	assert_escaped("\t\r", "\\x09\\x0d");
	assert_escaped("\x01", "\\x01");
	assert_escaped("del\x7f", "del\\x7f");
}
END_TEST

START_TEST(test_path_escape_backslash)
{
	/*
	 * A backslash is doubled, so that an escaped name never contains a bare
	 * backslash and "\x0a" in the output always means an escaped byte.
	 */
	assert_escaped("a\\b", "a\\\\b");
	assert_escaped("\\x0a", "\\\\x0a");
}
END_TEST

START_TEST(test_path_escape_invalid_utf8)
{
	assert_escaped("\xff", "\\xff");
	assert_escaped("a\x80z", "a\\x80z");
	/* Lead byte without its continuation byte. */
	assert_escaped("\xc3z", "\\xc3z");
	/* Sequence cut short by the end of the string. */
	assert_escaped("x\xe6\x97", "x\\xe6\\x97");
	/* Overlong encoding of "/". */
	assert_escaped("\xc0\xaf", "\\xc0\\xaf");
	/* UTF-16 surrogate U+D800. */
	assert_escaped("\xed\xa0\x80", "\\xed\\xa0\\x80");
	/* U+110000, past the last code point. */
	assert_escaped("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");
	assert_escaped("\xf8\x88\x80\x80\x80", "\\xf8\\x88\\x80\\x80\\x80");
}
END_TEST

START_TEST(test_path_escape_valid_utf8_kept)
{
	/* é (2 bytes), 日本 (3 bytes each), U+1F600 (4 bytes), U+10FFFF. */
	assert_escaped("caf\xc3\xa9", "caf\xc3\xa9");
	assert_escaped("\xe6\x97\xa5\xe6\x9c\xac/x", "\xe6\x97\xa5\xe6\x9c\xac/x");
	assert_escaped("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
	assert_escaped("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");
	assert_escaped("\xc3\xa9\n", "\xc3\xa9\\x0a");
}
END_TEST

Suite *path_suite(void)
{
	Suite *s = suite_create("path");
	TCase *tc = tcase_create("path");

	tcase_add_test(tc, test_path_normalize_plain);
	tcase_add_test(tc, test_path_normalize_strips_prefixes);
	tcase_add_test(tc, test_path_normalize_collapses_separators);
	tcase_add_test(tc, test_path_normalize_trailing_slash);
	tcase_add_test(tc, test_path_normalize_root_forms);
	tcase_add_test(tc, test_path_normalize_keeps_dot_names);
	tcase_add_test(tc, test_path_normalize_rejects_dotdot);
	tcase_add_test(tc, test_path_component_invalid);
	tcase_add_test(tc, test_path_depth);
	tcase_add_test(tc, test_path_escape_printable_unchanged);
	tcase_add_test(tc, test_path_escape_control_bytes);
	tcase_add_test(tc, test_path_escape_backslash);
	tcase_add_test(tc, test_path_escape_invalid_utf8);
	tcase_add_test(tc, test_path_escape_valid_utf8_kept);
	suite_add_tcase(s, tc);
	return s;
}
