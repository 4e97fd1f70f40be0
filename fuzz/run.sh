#!/bin/sh
# Run the libFuzzer targets one after the other (make fuzz, make fuzz-smoke).
#
#   fuzz/run.sh [-s] BUILD_DIR SECONDS [TARGET...]
#
# Each target runs for SECONDS on its corpus with its dictionary:
#   BUILD_DIR/fuzz/fuzz_NAME  -dict=fuzz/NAME.dict  WORK fuzz/corpus/NAME [more]
# WORK is where libFuzzer adds what it finds: BUILD_DIR/fuzz-corpus/NAME,
# kept between runs, or with -s (smoke, for CI) a fresh temporary directory
# so that every run starts from the committed seeds.  The MIME target also
# reads the Maildir corpus ($HERALD_CORPUS, default ../shared/corpus).
# Crashing inputs go to BUILD_DIR/fuzz-crashes/, logs to BUILD_DIR/fuzz-logs/.
# Exit status 1 if any target failed; the others still run.
set -eu
cd "$(dirname "$0")/.."

smoke=0
if [ "${1:-}" = "-s" ]; then
	smoke=1
	shift
fi
[ $# -ge 2 ] || { echo "usage: $0 [-s] BUILD_DIR SECONDS [TARGET...]" >&2; exit 2; }
build=$1
seconds=$2
shift 2
if [ $# -eq 0 ]; then
	set -- $(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_\(.*\)\.c|\1|')
fi
corpus_root=${HERALD_CORPUS:-../shared/corpus}

mkdir -p "$build/fuzz-crashes" "$build/fuzz-logs"
failed=""
for t in "$@"; do
	bin=$build/fuzz/fuzz_$t
	log=$build/fuzz-logs/$t.log
	[ -x "$bin" ] || { echo "fuzz: $bin missing (build first)" >&2; exit 2; }
	if [ $smoke -eq 1 ]; then
		work=$(mktemp -d "${TMPDIR:-/tmp}/herald-fuzz-$t.XXXXXX")
	else
		work=$build/fuzz-corpus/$t
		mkdir -p "$work"
	fi
	extra=""
	case $t in
	imap_parser) opts="-max_len=16384" ;;
	mime)
		opts="-max_len=131072"
		[ -d "$corpus_root/maildir" ] && extra="$corpus_root/maildir"
		;;
	*) opts="" ;;
	esac
	# -timeout: one input may take 10 s (ASan, big MIME trees); it is
	# wall time, so long runs on a busy machine raise it (FUZZ_TIMEOUT).
	# -rss_limit_mb: the machine is shared.
	# shellcheck disable=SC2086
	if nice -n 10 "$bin" -max_total_time="$seconds" \
	    -timeout="${FUZZ_TIMEOUT:-10}" \
	    -rss_limit_mb=2048 -print_final_stats=1 $opts \
	    -dict="fuzz/$t.dict" -artifact_prefix="$build/fuzz-crashes/$t-" \
	    "$work" "fuzz/corpus/$t" $extra >"$log" 2>&1; then
		status=ok
	else
		status=FAILED
		failed="$failed $t"
	fi
	# The last status line: "#N DONE cov: C ft: F corp: N/S ...".
	line=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
	printf 'fuzz %-12s %-6s %s\n' "$t" "$status" "$line"
	if [ "$status" = FAILED ]; then
		grep -E 'ERROR|FUZZ_CHECK|SUMMARY|artifact|Test unit written' \
		    "$log" | head -n 20 >&2 || true
		echo "  full log: $log" >&2
	fi
	[ $smoke -eq 1 ] && rm -rf "$work"
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed (inputs in $build/fuzz-crashes/)" >&2
	exit 1
fi
