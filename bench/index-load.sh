#!/usr/bin/env bash
#
# Builds bench/index-load against ../libstrata.a and runs it: a synthetic
# layer of FILES small files is unpacked with strata_layer_unpack(), then its
# index is loaded LOADS times with strata_index_load().
#
# usage: bench/index-load.sh [FILES [LOADS]]     defaults: 100000 files, 50 loads
# The temporary layer goes below $TMPDIR (default /var/tmp) and is removed at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

make -s -C "$here" index-load
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$here/index-load" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
