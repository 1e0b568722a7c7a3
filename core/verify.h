/*
 * Verifying unpacked layers against their indexes.
 */
#ifndef STRATA_VERIFY_H
#define STRATA_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Receives one problem: the path in the layer and what is wrong with it. */
typedef void (*strata_problem_fn)(void *data, const char *path, const char *problem);

/*
 * Re-hashes every regular file of the layer directory `layer_dirfd` and
 * compares type, mode, owner (root stores), size, content, symlink targets
 * and device numbers with the index; files the index does not list are
 * problems too.  Stores the number of problems in *problems.  Fails only
 * when the layer cannot be read at all.
 */
int strata_layer_verify(int layer_dirfd, bool rootless, strata_problem_fn report, void *data, size_t *problems,
			struct strata_error **err);

#endif
