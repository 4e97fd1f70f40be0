#!/bin/sh
# Install the Debian packages Herald needs, only those that are missing.
#   scripts/deps.sh build   what building and running needs
#   scripts/deps.sh test    that, plus what the test suite needs
set -eu

build_pkgs="build-essential cmake pkg-config libuv1-dev libssl-dev
libsqlite3-dev zlib1g-dev libcrypt-dev libutf8proc-dev openssl"
test_pkgs="libcmocka-dev python3 python3-pytest curl clang
libclang-rt-14-dev dovecot-imapd dovecot-lmtpd isync"
# The imapflow client tests (tests/clients/imapflow) need node and npm.  A
# node from elsewhere (e.g. NodeSource, whose nodejs package bundles npm and
# conflicts with Debian's npm) is used as it is; otherwise Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1
then
	test_pkgs="$test_pkgs nodejs npm"
fi

case "${1:-build}" in
build) want="$build_pkgs" ;;
test) want="$build_pkgs $test_pkgs" ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "run as root, or install these packages first:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
