#!/bin/sh
# LeakSanitizer report from "herald deliver" when -o names an unknown key:
# main() returns before freeing rest (src/main/main.c).
# Usage: sh fuzz/crashes/deliver-bad-option.sh build-asan/herald
set -u
bin=${1:-build-asan/herald}
dir=$(mktemp -d)
printf 'data_dir = %s/var\n' "$dir" >"$dir/herald.conf"
printf 'Subject: x\n\nbody\n' |
    "$bin" deliver -u alice -o no_such_key=1 -c "$dir/herald.conf"
echo "exit status $? (75 expected; 1 with a leak report means the bug)"
rm -rf "$dir"
