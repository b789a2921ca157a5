#!/bin/sh
# run-fuzzers.sh [SECONDS [BUILD_DIR]]: builds the libFuzzer targets of
# tests/fuzz with meson (-Dfuzzing=true, clang, ASan and UBSan) in
# BUILD_DIR (default build-fuzz at the top of the tree, configured when it
# does not exist yet) and runs each for SECONDS (default 60) on a copy of
# its seed corpus tests/fuzz/corpus/NAME/.  Exits non-zero when a target
# fails to build or finds a crash; crash inputs are kept in
# BUILD_DIR/artifacts/NAME/.
#
# tests/fuzz/NAME.dict, when present, is passed as a libFuzzer dictionary.
# CC_FUZZ names the compiler (default clang).
set -eu

seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
builddir=${2:-$root/build-fuzz}

if [ ! -d "$builddir" ]; then
  CC=${CC_FUZZ:-clang} meson setup "$builddir" "$root" -Dfuzzing=true \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
echo "== building the fuzz targets in $builddir"
ninja -C "$builddir"

work=$(mktemp -d "${TMPDIR:-/tmp}/spawn-fcgi-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

failed=0
ran=0
for target in "$here"/fuzz-*.c; do
  [ -e "$target" ] || continue
  name=$(basename "$target" .c)
  name=${name#fuzz-}
  fuzzer=$builddir/tests/fuzz/fuzz-$name
  if [ ! -x "$fuzzer" ]; then
    echo "== fuzz-$name: not built (is it in tests/fuzz/meson.build?)"
    failed=1
    continue
  fi

  # New inputs go into a scratch corpus; the seeds stay as they are.
  corpus=$work/corpus-$name
  mkdir -p "$corpus" "$work/artifacts-$name"
  seeds=$here/corpus/$name
  set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts-$name/"
  if [ -f "$here/$name.dict" ]; then
    set -- "$@" -dict="$here/$name.dict"
  fi
  set -- "$@" "$corpus"
  if [ -d "$seeds" ]; then
    set -- "$@" "$seeds"
  fi

  echo "== fuzz-$name: running for ${seconds}s"
  ran=$((ran + 1))
  if "$fuzzer" "$@" > "$work/log-$name" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' \
      "$work/log-$name" || true
    echo "== fuzz-$name: ok"
  else
    keep=$builddir/artifacts/$name
    mkdir -p "$keep"
    cp "$work/artifacts-$name"/* "$keep"/ 2>/dev/null || true
    tail -n 60 "$work/log-$name"
    echo "== fuzz-$name: FAILED; crash inputs in $keep"
    failed=1
  fi
done

if [ "$ran" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "no fuzz targets found in $here" >&2
  exit 1
fi
exit "$failed"
