#!/usr/bin/env bash
#
# Import benchmark: `strata pull-from-tarball` next to `tar -xzf` of the same
# layer blobs and `podman load`, on the `debian` image of the real-image corpus.
#
# usage: bench/import.sh [RUNS]        run as root; RUNS defaults to 3
#
# Environment:
#   STRATA     strata binary (default: ../strata next to this script)
#   CORPUS     directory holding debian.oci-archive.tar, debian.docker-archive.tar
#              and debian.oci-layout-zstd.tar (default: /var/tmp/strata-corpus/images)
#   BENCH_TMP  parent of the scratch directory (default: /var/tmp)
#
# How it measures:
# - Every measured command runs under GNU time (wall, user, sys, max RSS)
#   inside a wrapper shell that reads its own /proc/PID/io before and after.
#   The kernel adds the I/O counters of a reaped child to its parent, so the
#   difference is what the command wrote.  The command's output goes to a
#   pipe, which adds nothing to write_bytes.
# - Inputs stay in the page cache.  The script reads them and the strata and
#   podman binaries again before every measured command, and it never drops
#   caches.  The read_bytes column shows what a command still read from disk.
#   An untimed warm-up round runs every command once first.
# - `sync` runs before every measured command, so writeback left by the
#   previous command does not overlap the next one.  No command is followed by
#   a sync inside its measurement, so dirty data it leaves is not charged to it.
# - Every extraction and every store goes to a new directory.  Nothing is
#   deleted before the end, because ext4 is slow right after a large tree is
#   removed.
set -euo pipefail
export LC_ALL=C

runs=${1:-3}
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: $0 [RUNS]  (RUNS is a positive integer, default 3)" >&2
	exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
strata=$(realpath -m "${STRATA:-$here/../strata}")
corpus=${CORPUS:-/var/tmp/strata-corpus/images}
oci_archive=$corpus/debian.oci-archive.tar
docker_archive=$corpus/debian.docker-archive.tar
zstd_layout=$corpus/debian.oci-layout-zstd.tar

die() {
	echo "import.sh: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root: podman load with a private storage root needs it"
[ -x "$strata" ] || die "strata binary \`$strata\` not found; build it with \`make -C $here/..\`"
for f in "$oci_archive" "$docker_archive" "$zstd_layout"; do
	[ -f "$f" ] || die "input \`$f\` not found; the real-image corpus build writes it (set CORPUS to its directory)"
done
for cmd in /usr/bin/time tar gzip jq podman sync findmnt; do
	command -v "$cmd" >/dev/null || die "\`$cmd\` not found"
done

scratch=$(mktemp -d "${BENCH_TMP:-/var/tmp}/strata-bench.XXXXXX")

cleanup() {
	local mounts target

	# podman's overlay driver may leave mounts below its root; remove only
	# those below this run's scratch directory, deepest first.
	mounts=$(findmnt -rn -o TARGET | grep -F "$scratch/" | sort -r || true)
	for target in $mounts; do
		umount "$target" || true
	done
	rm -rf -- "$scratch"
}
trap cleanup EXIT

results=$scratch/results.tsv
: > "$results"
mkdir "$scratch/logs" "$scratch/in" "$scratch/work" "$scratch/tmp"
export TMPDIR=$scratch/tmp

storage_driver=overlay

# Prints the microseconds per `: > FILE` over 1,000 new empty files in a new
# directory below the scratch directory (kept until the end).  File creation
# on ext4 can be many times slower for minutes after a large tree was deleted:
# perf on the machine in RESULTS.md showed new inodes spending their time in
# ext4's recently_deleted() check then.  The probe shows whether that was the
# case during a run.
probe_create() {
	local dir=$scratch/probe/$1 i start end

	mkdir -p "$dir"
	start=$EPOCHREALTIME
	for ((i = 0; i < 1000; i++)); do
		: > "$dir/$i"
	done
	end=$EPOCHREALTIME
	echo $(((${end/./} - ${start/./}) / 1000))
}

print_machine() {
	local rev

	rev=$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)
	echo "## Machine and versions"
	echo
	echo "- CPUs: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "- memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	echo "- kernel: $(uname -r)"
	echo "- scratch filesystem: $(findmnt -n -o FSTYPE --target "$scratch") ($scratch)"
	echo "- strata: $("$strata" --version) (git $rev)"
	echo "- $(tar --version | head -n 1); $(gzip --version | head -n 1)"
	echo "- $(podman --version), storage driver $storage_driver"
	echo "- libarchive $(pkg-config --modversion libarchive 2>/dev/null || echo unknown)," \
		"libisal $(pkg-config --modversion libisal 2>/dev/null || echo unknown)"
	echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- file creation probe at start: $(probe_create start) us per empty file"
	echo "- rounds: $runs, after one untimed warm-up round"
	echo
}

# The wrapper runs its arguments under GNU time, which prints
# "@time WALL USER SYS MAXRSS_KB" on stderr, then prints
# "@io WRITE_BYTES CANCELLED_WRITE_BYTES WCHAR READ_BYTES" for what they did and
# "@span START END": wall clock in microseconds around GNU time, for commands
# shorter than its 10 ms resolution.
cat > "$scratch/measure.sh" <<'EOF'
io_delta() {
	local re=$'(^|\n)'"$1"': ([0-9]+)'
	local before after

	[[ $io_before =~ $re ]] && before=${BASH_REMATCH[2]}
	[[ $io_after =~ $re ]] && after=${BASH_REMATCH[2]}
	echo $((after - before))
}

# bash reads $(<file) without starting a subshell, so these reads add no I/O.
io_before=$(</proc/$$/io)
start=$EPOCHREALTIME
/usr/bin/time -f "@time %e %U %S %M" "$@"
status=$?
end=$EPOCHREALTIME
io_after=$(</proc/$$/io)
echo "@io $(io_delta write_bytes) $(io_delta cancelled_write_bytes) $(io_delta wchar) $(io_delta read_bytes)"
echo "@span ${start/./} ${end/./}"
exit $status
EOF

# measure TOOL INPUT ROUND CMD... : runs CMD once and appends its row to the results.
measure() {
	local tool=$1 input=$2 round=$3
	shift 3
	local log=$scratch/logs/$tool.$input.$round
	local wall user sys rss written cancelled wchar disk_read start end

	warm_page_cache
	sync
	if ! bash "$scratch/measure.sh" "$@" 2>&1 | cat > "$log"; then
		tail -n 20 "$log" >&2
		die "command failed: $*"
	fi
	read -r wall user sys rss < <(awk '$1 == "@time" {print $2, $3, $4, $5}' "$log")
	read -r written cancelled wchar disk_read < <(awk '$1 == "@io" {print $2, $3, $4, $5}' "$log")
	read -r start end < <(awk '$1 == "@span" {print $2, $3}' "$log")
	if [ -z "$wall" ] || [ -z "$written" ] || [ -z "$start" ]; then
		die "no measurement in \`$log\`"
	fi
	# Columns: round tool input wall user sys maxrss_kb write_bytes
	# cancelled_write_bytes wchar cpu span_s read_bytes
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$tool" "$input" \
		"$wall" "$user" "$sys" "$rss" "$written" "$cancelled" "$wchar" \
		"$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" \
		"$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.6f", (b - a) / 1e6}')" "$disk_read" >> "$results"
}

# Untimed: the gzip layer blobs of the OCI archive, in manifest order.
prepare_tar_inputs() {
	local dir=$scratch/in/oci manifest mediatype digest

	mkdir "$dir"
	tar -C "$dir" -xf "$oci_archive"
	manifest=$(jq -r '.manifests[0].digest' "$dir/index.json")
	[ "$(jq '.manifests | length' "$dir/index.json")" = 1 ] || die "\`$oci_archive\` contains more than one manifest; expected one image"
	: > "$scratch/in/layers.list"
	while read -r mediatype digest; do
		case $mediatype in
		*tar+gzip | *tar.gzip) ;;
		*) die "layer \`$digest\` of \`$oci_archive\` has media type \`$mediatype\`, not a gzip layer" ;;
		esac
		echo "$dir/blobs/${digest/://}" >> "$scratch/in/layers.list"
	done < <(jq -r '.layers[] | "\(.mediaType) \(.digest)"' "$dir/blobs/${manifest/://}")
	[ -s "$scratch/in/layers.list" ] || die "no layers in the manifest of \`$oci_archive\`"
}

# Loads the inputs and the programs into the page cache.
warm_page_cache() {
	cat "$oci_archive" "$docker_archive" "$zstd_layout" "$strata" "$(command -v podman)" > /dev/null
	xargs cat < "$scratch/in/layers.list" > /dev/null
}

# Runs tar -xzf on every layer blob, each into its own new empty directory.
# Each tar is measured on its own.  The round's row is the sum of wall and CPU
# and the maximum of RSS over the layers.
bench_tar() {
	local round=$1 dir=$scratch/work/r$1/tar i=0 blob

	mkdir -p "$dir"
	while read -r blob; do
		i=$((i + 1))
		mkdir "$dir/$i"
	done < "$scratch/in/layers.list"

	i=0
	while read -r blob; do
		i=$((i + 1))
		measure tar-layer "$i" "$round" tar -C "$dir/$i" -xzf "$blob"
	done < "$scratch/in/layers.list"

	awk -F'\t' -v r="$round" 'BEGIN {OFS = "\t"}
		$1 == r && $2 == "tar-layer" {
			n++; wall += $4; user += $5; sys += $6; if ($7 > rss) rss = $7
			w += $8; c += $9; wc += $10; cpu += $11; span += $12; rd += $13
		}
		END {print r, "tar-xzf", "oci-archive", wall, user, sys, rss, w, c, wc, cpu, span, rd}' "$results" > "$scratch/tar-row"
	cat "$scratch/tar-row" >> "$results"
}

bench_round() {
	local round=$1 dir=$scratch/work/r$1

	mkdir -p "$dir"
	bench_tar "$round"
	measure strata-pull oci-archive "$round" "$strata" --store "$dir/store-oci" pull-from-tarball "$oci_archive"
	measure strata-pull docker-archive "$round" "$strata" --store "$dir/store-docker" pull-from-tarball "$docker_archive"
	measure strata-pull oci-layout-zstd "$round" "$strata" --store "$dir/store-zstd" pull-from-tarball "$zstd_layout"
	# podman gets a storage.conf of its own, so that no system-wide storage
	# option (additional image stores, mount programs) applies.  podman 4.3
	# rejects a storage.conf without graphroot and runroot.
	mkdir -p "$dir/podman/tmp"
	cat > "$dir/podman/storage.conf" <<-EOF
		[storage]
		driver = "$storage_driver"
		graphroot = "$dir/podman/graph"
		runroot = "$dir/podman/run"
	EOF
	measure podman-load oci-archive "$round" \
		env CONTAINERS_STORAGE_CONF="$dir/podman/storage.conf" TMPDIR="$dir/podman/tmp" \
		podman --root "$dir/podman/graph" --runroot "$dir/podman/run" --tmpdir "$dir/podman/libpod" \
		--network-config-dir "$dir/podman/networks" --storage-driver "$storage_driver" \
		--events-backend none --cgroup-manager cgroupfs \
		load -q -i "$oci_archive"
	measure strata-pull-again oci-archive "$round" "$strata" --store "$dir/store-oci" pull-from-tarball "$oci_archive"
	measure strata-images store "$round" "$strata" --store "$dir/store-oci" images
	measure strata-layers store "$round" "$strata" --store "$dir/store-oci" layers localhost/debian:latest
}

# stat_of TOOL INPUT FIELD [max] : the median (or maximum) of a results column over the timed rounds.
stat_of() {
	awk -F'\t' -v t="$1" -v i="$2" -v f="$3" '$1 > 0 && $2 == t && $3 == i {print $f}' "$results" | sort -g |
		awk -v mode="${4:-median}" '{v[NR] = $1}
			END {
				if (NR == 0) exit 1
				if (mode == "max") print v[NR]
				else if (NR % 2) print v[(NR + 1) / 2]
				else print (v[NR / 2] + v[NR / 2 + 1]) / 2
			}'
}

print_row() {
	local label=$1 tool=$2 input=$3 input_label=$4 wall_only=${5:-}
	local wall cpu rss written disk_read

	if [ -n "$wall_only" ]; then
		wall=$(stat_of "$tool" "$input" 12)
		printf '| %s | %s | %.3f | - | - | - | - |\n' "$label" "$input_label" "$wall"
		return
	fi
	wall=$(stat_of "$tool" "$input" 4)
	cpu=$(stat_of "$tool" "$input" 11)
	rss=$(stat_of "$tool" "$input" 7)
	written=$(stat_of "$tool" "$input" 8)
	disk_read=$(stat_of "$tool" "$input" 13)
	printf '| %s | %s | %.2f | %.2f | %.1f | %.0f | %.0f |\n' "$label" "$input_label" "$wall" "$cpu" \
		"$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$(awk -v b="$written" 'BEGIN {print b / 1024}')" \
		"$(awk -v b="$disk_read" 'BEGIN {print b / 1024}')"
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'
}

# round_ratios TOOL_A INPUT_A TOOL_B INPUT_B FIELD : the lowest and highest
# per-round ratio A / B over the timed rounds, as "LOW to HIGH".  Both
# commands of a round ran within seconds of each other, so this range shows
# how much the machine's state moved the ratio between rounds.
round_ratios() {
	awk -F'\t' -v ta="$1" -v ia="$2" -v tb="$3" -v ib="$4" -v f="$5" '
		$1 > 0 && $2 == ta && $3 == ia {a[$1] = $f}
		$1 > 0 && $2 == tb && $3 == ib {b[$1] = $f}
		END {
			for (r in a) {
				if (!(r in b) || b[r] == 0) continue
				v = a[r] / b[r]
				if (n == 0 || v < lo) lo = v
				if (n == 0 || v > hi) hi = v
				n++
			}
			printf "%.2f to %.2f", lo, hi
		}' "$results"
}

verdict() {
	if awk -v v="$1" -v op="$2" -v limit="$3" 'BEGIN {exit !(op == "<=" ? v <= limit : op == ">=" ? v >= limit : v < limit)}'; then
		echo met
	else
		echo MISSED
	fi
}

print_summary() {
	local tar_cpu tar_wall strata_cpu strata_wall podman_cpu
	local cpu_ratio wall_ratio podman_ratio again_written again_wchar first_written rss_max

	echo "## Medians over $runs rounds"
	echo
	echo "| tool | input | wall s | CPU s (user+sys) | peak RSS MiB | written KiB (write_bytes) | read from disk KiB (read_bytes) |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	print_row "tar -xzf, each layer blob" tar-xzf oci-archive debian.oci-archive.tar
	print_row "strata pull-from-tarball" strata-pull oci-archive debian.oci-archive.tar
	print_row "strata pull-from-tarball" strata-pull docker-archive debian.docker-archive.tar
	print_row "strata pull-from-tarball" strata-pull oci-layout-zstd debian.oci-layout-zstd.tar
	print_row "podman load ($storage_driver)" podman-load oci-archive debian.oci-archive.tar
	print_row "strata pull-from-tarball, second time" strata-pull-again oci-archive debian.oci-archive.tar
	print_row "strata images" strata-images store "the store" wall-only
	print_row "strata layers localhost/debian:latest" strata-layers store "the store" wall-only
	echo
	echo "CPU is user + sys.  The tar row is the sum over the layer blobs (peak RSS: the largest)." \
		"The wall times of strata images and strata layers come from bash's clock around GNU time," \
		"whose 10 ms resolution is too coarse for them."
	echo

	tar_cpu=$(stat_of tar-xzf oci-archive 11)
	tar_wall=$(stat_of tar-xzf oci-archive 4)
	strata_cpu=$(stat_of strata-pull oci-archive 11)
	strata_wall=$(stat_of strata-pull oci-archive 4)
	podman_cpu=$(stat_of podman-load oci-archive 11)
	cpu_ratio=$(ratio "$strata_cpu" "$tar_cpu")
	wall_ratio=$(ratio "$strata_wall" "$tar_wall")
	podman_ratio=$(ratio "$podman_cpu" "$strata_cpu")
	again_written=$(stat_of strata-pull-again oci-archive 8 max)
	again_wchar=$(stat_of strata-pull-again oci-archive 10 max)
	first_written=$(stat_of strata-pull oci-archive 8)
	rss_max=0
	for input in oci-archive docker-archive oci-layout-zstd; do
		rss_max=$(printf '%s\n%s\n' "$rss_max" "$(stat_of strata-pull "$input" 7 max)" | sort -g | tail -n 1)
	done
	rss_max=$(printf '%s\n%s\n' "$rss_max" "$(stat_of strata-pull-again oci-archive 7 max)" | sort -g | tail -n 1)

	echo "## Ratios and targets (debian.oci-archive.tar)"
	echo
	echo "Ratios are ratios of the medians above; the result column judges them." \
		"The range is the lowest and highest ratio within one round."
	echo
	echo "| target | measured | per-round range | result |"
	echo "|---|---|---|---|"
	echo "| strata CPU <= 0.5x tar -xzf CPU | $cpu_ratio x |" \
		"$(round_ratios strata-pull oci-archive tar-xzf oci-archive 11) | $(verdict "$cpu_ratio" "<=" 0.5) |"
	echo "| strata wall <= 0.6x tar -xzf wall | $wall_ratio x |" \
		"$(round_ratios strata-pull oci-archive tar-xzf oci-archive 4) | $(verdict "$wall_ratio" "<=" 0.6) |"
	echo "| podman load CPU >= 5x strata CPU | $podman_ratio x |" \
		"$(round_ratios podman-load oci-archive strata-pull oci-archive 11) | $(verdict "$podman_ratio" ">=" 5) |"
	echo "| second import writes no file data (write_bytes < 1 MiB, worst round) |" \
		"$again_written B write_bytes, $again_wchar B passed to write calls (first import: $first_written B) | - |" \
		"$(verdict "$again_written" "<" 1048576) |"
	echo "| strata peak RSS < 64 MiB (worst round, any input) | $(awk -v k="$rss_max" 'BEGIN {printf "%.1f", k / 1024}') MiB | - |" \
		"$(verdict "$rss_max" "<" 65536) |"
	echo
	echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg);" \
		"file creation probe at end: $(probe_create end) us per empty file"
}

print_raw() {
	echo
	echo "## Raw rounds (round 0 is the untimed warm-up)"
	echo
	echo '```'
	printf 'round\ttool\tinput\twall_s\tuser_s\tsys_s\tmaxrss_kb\twrite_bytes\tcancelled\twchar\tcpu_s\tspan_s\tread_bytes\n'
	awk -F'\t' '$2 != "tar-layer"' "$results"
	echo '```'
}

prepare_tar_inputs
warm_page_cache
print_machine
for round in $(seq 0 "$runs"); do
	echo "round $round of $runs$([ "$round" = 0 ] && echo ' (warm-up, not counted)')" >&2
	bench_round "$round"
done
print_summary
print_raw
