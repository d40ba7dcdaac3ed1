#!/bin/sh
# ONNX Runtime's C and C++ API headers for building libmnm; prints the include folder on stdout.
#
#   scripts/onnxruntime_headers.sh [DEST]        (DEST: build/third_party/onnxruntime)
#
# No PyPI or npm package ships onnxruntime_c_api.h, and Debian 12 has no onnxruntime package, so:
# - ONNXRUNTIME_ROOT set (an ONNX Runtime release archive, unpacked): its include/ is used as it is;
# - else /usr/include/onnxruntime when the system has it (Debian 13's libonnxruntime-dev installed);
# - else Debian 13 (trixie)'s libonnxruntime-dev is downloaded with a private apt configuration
#   (its own sources list, package lists, cache and status under DEST/apt: the machine's apt state
#   is left alone) and only its headers and copyright file are unpacked into DEST/include.
# Only the headers are used: the library is loaded at run time (docs/capi.md). Messages go to stderr.
set -eu

dest=${1:-build/third_party/onnxruntime}
say() { echo "[onnxruntime headers] $*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -n "${ONNXRUNTIME_ROOT:-}" ]; then
    [ -f "$ONNXRUNTIME_ROOT/include/onnxruntime_c_api.h" ] ||
        die "ONNXRUNTIME_ROOT=$ONNXRUNTIME_ROOT has no include/onnxruntime_c_api.h (expected an unpacked ONNX Runtime release)"
    echo "$ONNXRUNTIME_ROOT/include"
    exit 0
fi
if [ -f /usr/include/onnxruntime/onnxruntime_c_api.h ]; then
    echo /usr/include/onnxruntime
    exit 0
fi
if [ -f "$dest/include/onnxruntime_c_api.h" ]; then
    echo "$dest/include"
    exit 0
fi

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
    die "no apt-get here: unpack an ONNX Runtime release (github.com/microsoft/onnxruntime/releases) and set ONNXRUNTIME_ROOT to it"

# The Debian mirror this machine already uses (deb822 or one-line sources), else deb.debian.org.
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
         sed -n 's|^URIs:[[:space:]]*\([^[:space:]]*/debian\)/*[[:space:]]*$|\1|p' | head -n 1)
[ -n "$mirror" ] || mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
         sed -n 's|^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*/debian\)/*[[:space:]].*|\2|p' | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
work="$dest/apt"
rm -rf "$work" "$dest/include.partial"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/sources.d" "$work/deb"
: > "$work/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ -f "$keyring" ]; then
    echo "deb [signed-by=$keyring] $mirror trixie main" > "$work/sources.list"
else
    echo "deb $mirror trixie main" > "$work/sources.list"
fi

set -- -q -o Dir::Etc::sourcelist="$work/sources.list" -o Dir::Etc::sourceparts="$work/sources.d" \
    -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o Dir::State::status="$work/status" \
    -o APT::Sandbox::User="$(id -un)" -o Acquire::Languages=none
say "fetching Debian 13's libonnxruntime-dev from $mirror (headers only; private apt state in $work)"
apt-get "$@" update >&2 || die "apt-get update of $mirror trixie failed"
(cd "$work/deb" && apt-get "$@" download libonnxruntime-dev >&2) || die "apt-get download libonnxruntime-dev failed"
deb=$(ls "$work"/deb/libonnxruntime-dev_*.deb)
dpkg-deb -x "$deb" "$work/root"
[ -f "$work/root/usr/include/onnxruntime/onnxruntime_c_api.h" ] || die "$deb has no usr/include/onnxruntime/onnxruntime_c_api.h"

mkdir -p "$dest/include.partial"
cp -R "$work/root/usr/include/onnxruntime/." "$dest/include.partial/"
copyright=$(find "$work/root/usr/share/doc" -name copyright | head -n 1)
[ -n "$copyright" ] && cp "$copyright" "$dest/include.partial/LICENSE.onnxruntime-debian"
rm -rf "$dest/include"
mv "$dest/include.partial" "$dest/include"
echo "$(basename "$deb")" > "$dest/include/SOURCE"
rm -rf "$work"
say "$(sed -n 's/^#define ORT_API_VERSION \([0-9]*\).*/ORT_API_VERSION \1/p' "$dest/include/onnxruntime_c_api.h") headers in $dest/include"
echo "$dest/include"
