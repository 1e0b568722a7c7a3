/*
 * Unit tests for core/ref.c: image references (NAME[:TAG]) and ID prefixes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/ref.h"
#include "suites.h"

static void assert_normalized(const char *ref, const char *expected)
{
	struct strata_error *err = NULL;
	char *normal = strata_ref_normalize(ref, &err);

	ck_assert_msg(normal != NULL, "reference `%s` was rejected: %s", ref, err ? err->message : "no error");
	ck_assert_ptr_null(err);
	ck_assert_str_eq(normal, expected);
	free(normal);
}

/* Checks that `ref` is rejected with a message that quotes it and contains `expected_words`. */
static void assert_rejected(const char *ref, const char *expected_words)
{
	struct strata_error *err = NULL;
	char *normal = strata_ref_normalize(ref, &err);
	size_t quoted_len = strlen(ref) + 3;
	char *quoted = malloc(quoted_len);

	ck_assert_msg(normal == NULL, "reference `%s` was accepted as `%s`", ref, normal ? normal : "");
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(err->message);

	snprintf(quoted, quoted_len, "`%s`", ref);
	ck_assert_msg(strstr(err->message, quoted) != NULL, "message `%s` does not name %s", err->message, quoted);
	ck_assert_msg(strstr(err->message, expected_words) != NULL, "message `%s` does not contain `%s`",
		      err->message, expected_words);

	free(quoted);
	strata_error_free(err);
}

START_TEST(test_ref_normalize_adds_latest)
{
	assert_normalized("alpine", "alpine:latest");
	assert_normalized("library/alpine", "library/alpine:latest");
	assert_normalized("docker.io/library/alpine", "docker.io/library/alpine:latest");
	assert_normalized("my-app_2.x", "my-app_2.x:latest");
}
END_TEST

START_TEST(test_ref_normalize_keeps_tag)
{
	static const char max_tag[] =
		"alpine:"
		"A234567890123456789012345678901234567890123456789012345678901234"
		"5678901234567890123456789012345678901234567890123456789012345678";

	assert_normalized("alpine:3.19", "alpine:3.19");
	assert_normalized("alpine:latest", "alpine:latest");
	assert_normalized("app:V1_rc-2.final", "app:V1_rc-2.final");
	assert_normalized("app:_x", "app:_x");
	ck_assert_uint_eq(strlen(max_tag) - strlen("alpine:"), 128);
	assert_normalized(max_tag, max_tag);
}
END_TEST

START_TEST(test_ref_normalize_registry_port)
{
	assert_normalized("localhost:5000/app:v1", "localhost:5000/app:v1");
	assert_normalized("localhost:5000/app", "localhost:5000/app:latest");
	assert_normalized("localhost/app", "localhost/app:latest");
	assert_normalized("registry.example.com:443/team/app:1.0", "registry.example.com:443/team/app:1.0");
	/* Only the path must be lower case: host names are case-insensitive. */
	assert_normalized("Registry.Example.com/app", "Registry.Example.com/app:latest");
}
END_TEST

START_TEST(test_ref_normalize_rejects_upper_case_path)
{
	assert_rejected("Alpine", "lower-case");
	assert_rejected("library/Alpine:3.19", "lower-case");
	assert_rejected("docker.io/Library/alpine", "lower-case");
	assert_rejected("localhost:5000/App:v1", "lower-case");
}
END_TEST

START_TEST(test_ref_normalize_rejects_digest)
{
	assert_rejected("alpine@sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "digest");
	assert_rejected("alpine:3.19@sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
			"digest");
}
END_TEST

START_TEST(test_ref_normalize_rejects_empty)
{
	assert_rejected("", "invalid image reference");
	assert_rejected(":tag", "invalid image reference");
}
END_TEST

START_TEST(test_ref_normalize_rejects_empty_component)
{
	assert_rejected("a//b", "name components use lower-case letters");
	assert_rejected("library/", "name components use lower-case letters");
	assert_rejected("library/:v1", "name components use lower-case letters");
	assert_rejected("/alpine", "invalid image reference");
}
END_TEST

START_TEST(test_ref_normalize_rejects_bad_components)
{
	assert_rejected("../app", "invalid registry host");
	assert_rejected("./app", "invalid registry host");
	assert_rejected("-app", "name components use lower-case letters");
	assert_rejected("app.", "name components use lower-case letters");
	assert_rejected("a___b", "name components use lower-case letters");
	assert_rejected("bad host!.com/app", "invalid registry host");
	assert_rejected("localhost:abc/app", "invalid registry host");
}
END_TEST

START_TEST(test_ref_normalize_rejects_bad_tag)
{
	static const char long_tag[] =
		"alpine:"
		"1234567890123456789012345678901234567890123456789012345678901234"
		"56789012345678901234567890123456789012345678901234567890123456789";

	assert_rejected("alpine:", "expected NAME[:TAG]");
	assert_rejected("alpine:.hidden", "expected NAME[:TAG]");
	assert_rejected("alpine:-rc", "expected NAME[:TAG]");
	assert_rejected("alpine:a+b", "expected NAME[:TAG]");
	assert_rejected("alpine:a b", "expected NAME[:TAG]");
	assert_rejected("alpine:3.19:extra", "invalid image reference");
	ck_assert_uint_eq(strlen(long_tag) - strlen("alpine:"), 129);
	assert_rejected(long_tag, "expected NAME[:TAG]");
}
END_TEST

START_TEST(test_ref_normalize_rejects_bad_name_chars)
{
	assert_rejected("al pine", "lower-case");
	assert_rejected("alpine!", "lower-case");
	assert_rejected("library/al+pine", "lower-case");
}
END_TEST

START_TEST(test_ref_has_domain)
{
	ck_assert(strata_ref_has_domain("docker.io/library/alpine"));
	ck_assert(strata_ref_has_domain("localhost/app"));
	ck_assert(strata_ref_has_domain("localhost:5000/app"));
	ck_assert(strata_ref_has_domain("registry:5000/app"));
	ck_assert(strata_ref_has_domain("quay.io/team/app:v1"));

	ck_assert(!strata_ref_has_domain("alpine"));
	ck_assert(!strata_ref_has_domain("alpine:3.19"));
	ck_assert(!strata_ref_has_domain("library/alpine"));
	ck_assert(!strata_ref_has_domain("localhost"));
	ck_assert(!strata_ref_has_domain("localhostx/app"));
	ck_assert(!strata_ref_has_domain("team/app.v2"));
	ck_assert(!strata_ref_has_domain(""));
}
END_TEST

START_TEST(test_ref_is_id_prefix)
{
	static const char full[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

	ck_assert(strata_ref_is_id_prefix("abcd"));
	ck_assert(strata_ref_is_id_prefix("0123456789"));
	ck_assert(strata_ref_is_id_prefix(full));
	ck_assert(strata_ref_is_id_prefix("sha256:ba78"));
	ck_assert(strata_ref_is_id_prefix("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

	ck_assert(!strata_ref_is_id_prefix(""));
	ck_assert(!strata_ref_is_id_prefix("abc"));
	ck_assert(!strata_ref_is_id_prefix("sha256:"));
	ck_assert(!strata_ref_is_id_prefix("sha256:abc"));
	ck_assert(!strata_ref_is_id_prefix("ABCD"));
	ck_assert(!strata_ref_is_id_prefix("abcg"));
	ck_assert(!strata_ref_is_id_prefix("alpine"));
	ck_assert(!strata_ref_is_id_prefix("sha512:abcd"));
	ck_assert(!strata_ref_is_id_prefix(
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"));
}
END_TEST

Suite *ref_suite(void)
{
	Suite *s = suite_create("ref");
	TCase *tc = tcase_create("ref");

	tcase_add_test(tc, test_ref_normalize_adds_latest);
	tcase_add_test(tc, test_ref_normalize_keeps_tag);
	tcase_add_test(tc, test_ref_normalize_registry_port);
	tcase_add_test(tc, test_ref_normalize_rejects_upper_case_path);
	tcase_add_test(tc, test_ref_normalize_rejects_digest);
	tcase_add_test(tc, test_ref_normalize_rejects_empty);
	tcase_add_test(tc, test_ref_normalize_rejects_empty_component);
	tcase_add_test(tc, test_ref_normalize_rejects_bad_components);
	tcase_add_test(tc, test_ref_normalize_rejects_bad_tag);
	tcase_add_test(tc, test_ref_normalize_rejects_bad_name_chars);
	tcase_add_test(tc, test_ref_has_domain);
	tcase_add_test(tc, test_ref_is_id_prefix);
	suite_add_tcase(s, tc);
	return s;
}
