#!/bin/sh
# LeakSanitizer report from a worker that exits while a LOGIN is waiting
# for its failure delay (auth_request in src/imap/cmd_auth.c).
# Usage: sh fuzz/crashes/shutdown-pending-login.sh build-asan/herald
set -u
bin=${1:-build-asan/herald}
dir=$(mktemp -d)
port=$((20000 + $$ % 20000))
cat >"$dir/herald.conf" <<CONF
data_dir = $dir/var
imap_listen = 127.0.0.1:$port
imaps_listen =
lmtp_listen =
workers = 1
demo_user = no
auth_failure_delay_ms = 5000
CONF
echo secret | "$bin" user add -c "$dir/herald.conf" alice >/dev/null
"$bin" serve -c "$dir/herald.conf" 2>"$dir/log" &
pid=$!
sleep 1
python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.recv(1000)
s.sendall(b"a LOGIN alice wrong\r\n")
time.sleep(0.5)
PY
kill -TERM $pid
wait $pid
grep -A12 "LeakSanitizer" "$dir/log" || echo "no leak report"
rm -rf "$dir"
