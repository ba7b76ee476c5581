#!/usr/bin/env bash
# `make install PREFIX=...` (after `make c`): the libraries, tripwire.h, tripwire.hpp and
# tripwire.pc, so that `pkg-config --cflags --libs tripwire` works with
# PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig (or without it for /usr/local).
set -euo pipefail
cd "$(dirname "$0")/../.."
PREFIX="${1:-${PREFIX:-/usr/local}}"
[ -n "$PREFIX" ] || PREFIX=/usr/local
T="${CARGO_TARGET_DIR:-target}/release"
for f in "$T/libtripwire.a" "$T/libtripwire.so" bindings-c/include/tripwire.h; do
  [ -f "$f" ] || { echo "install-c: $f is missing: run 'make c' first" >&2; exit 1; }
done
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR=${VERSION%%.*}
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include"
install -m 644 "$T/libtripwire.a" "$PREFIX/lib/libtripwire.a"
install -m 755 "$T/libtripwire.so" "$PREFIX/lib/libtripwire.so.$VERSION"
ln -sf "libtripwire.so.$VERSION" "$PREFIX/lib/libtripwire.so.$MAJOR"
ln -sf "libtripwire.so.$MAJOR" "$PREFIX/lib/libtripwire.so"
install -m 644 bindings-c/include/tripwire.h bindings-c/include/tripwire.hpp "$PREFIX/include/"
# What a static link needs besides libtripwire.a (the Rust standard library's system libraries).
LIBS_PRIVATE="-lpthread -ldl -lm -lgcc_s -lc"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@VERSION@|$VERSION|" -e "s|@LIBS_PRIVATE@|$LIBS_PRIVATE|" \
  bindings-c/tripwire.pc.in > "$PREFIX/lib/pkgconfig/tripwire.pc"
echo "install-c: installed tripwire $VERSION into $PREFIX"
echo "  PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --cflags --libs tripwire"
