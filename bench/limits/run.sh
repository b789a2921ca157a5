#!/bin/sh
# run.sh BUILD_DIR: runs bench-limits from BUILD_DIR/bench/limits, or, when
# the build does not include the benchmarks, compiles it from the sources
# (with BUILD_DIR/config.h) into a temporary directory first.  Prints the
# table; never fails on timing.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

bin=$build/bench/limits/bench-limits
if [ ! -x "$bin" ]; then
  if [ ! -f "$build/config.h" ]; then
    echo "$0: $build has no config.h; run meson setup first" >&2
    exit 1
  fi
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-limits.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT INT TERM
  bin=$tmp/bench-limits
  # shellcheck disable=SC2046  # pkg-config output is a list of flags
  ${CC:-cc} -std=gnu11 -O2 -g -D_FILE_OFFSET_BITS=64 -I"$build" -I"$root/src" \
    $(pkg-config --cflags glib-2.0) \
    "$here/bench-limits.c" "$root/src/limits-conf.c" "$root/src/identity.c" "$root/src/trusted-file.c" \
    $(pkg-config --libs glib-2.0) -o "$bin"
fi
"$bin"
