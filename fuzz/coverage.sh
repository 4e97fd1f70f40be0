#!/bin/sh
# Source coverage of the fuzz corpora (make fuzz-coverage).
#
#   fuzz/coverage.sh COV_BUILD_DIR CORPUS_BUILD_DIR [TARGET...]
#
# COV_BUILD_DIR holds the targets built with clang's source coverage
# (-fprofile-instr-generate -fcoverage-mapping); each runs once over its
# corpus (CORPUS_BUILD_DIR/fuzz-corpus/NAME, fuzz/corpus/NAME and, for
# mime, the Maildir corpus) and llvm-cov prints the line and branch
# coverage of the files under src/ that the target reaches.
set -eu
cd "$(dirname "$0")/.."

[ $# -ge 2 ] || { echo "usage: $0 COV_BUILD CORPUS_BUILD [TARGET...]" >&2; exit 2; }
cov=$1
corpus=$2
shift 2
if [ $# -eq 0 ]; then
	set -- $(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_\(.*\)\.c|\1|')
fi
corpus_root=${HERALD_CORPUS:-../shared/corpus}
profdata=$(command -v llvm-profdata-14 || command -v llvm-profdata)
llvmcov=$(command -v llvm-cov-14 || command -v llvm-cov)

mkdir -p "$cov/fuzz-cov"
for t in "$@"; do
	dirs="fuzz/corpus/$t"
	[ -d "$corpus/fuzz-corpus/$t" ] && dirs="$corpus/fuzz-corpus/$t $dirs"
	[ "$t" = mime ] && [ -d "$corpus_root/maildir" ] &&
	    dirs="$dirs $corpus_root/maildir"
	rm -f "$cov/fuzz-cov/$t".*.profraw
	# shellcheck disable=SC2086
	LLVM_PROFILE_FILE="$cov/fuzz-cov/$t.%p.profraw" \
	    "$cov/fuzz/fuzz_$t" -runs=0 $dirs >"$cov/fuzz-cov/$t.log" 2>&1
	"$profdata" merge -sparse -o "$cov/fuzz-cov/$t.profdata" \
	    "$cov/fuzz-cov/$t".*.profraw
	echo "== $t"
	"$llvmcov" report "$cov/fuzz/fuzz_$t" \
	    -instr-profile="$cov/fuzz-cov/$t.profdata" \
	    -ignore-filename-regex='(fuzz/|/usr/|\.h$)' |
	    awk 'NF >= 13 && $1 != "Filename" { printf "%-28s lines %8s  branches %8s\n",
	        $1, $10, $13 }'
done
