#!/bin/sh
# run-fuzzers.sh [SECONDS]: builds every tests/fuzz/fuzz-NAME.c as a
# libFuzzer binary with ASan and UBSan and runs it for SECONDS (default 60)
# on the seed corpus tests/fuzz/corpus/NAME/.  Exits non-zero when a target
# fails to build or finds a crash; crash inputs are kept in
# build-fuzz/artifacts/NAME/ at the top of the tree.
#
# A target names the src/ files it needs in a line
#   // fuzz-sources: a.c b.c
# and, optionally, pkg-config packages (default glib-2.0) in
#   // fuzz-packages: glib-2.0 libsystemd
# tests/fuzz/NAME.dict, when present, is passed as a libFuzzer dictionary.
# config.h comes from $BUILD_DIR, else from the first build*/ directory,
# else a minimal one is written.
set -eu

seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC_FUZZ:-clang}

work=$(mktemp -d "${TMPDIR:-/tmp}/spawn-fcgi-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

config=
if [ -n "${BUILD_DIR:-}" ] && [ -f "$BUILD_DIR/config.h" ]; then
  config=$BUILD_DIR/config.h
else
  for c in "$root"/build*/config.h; do
    if [ -f "$c" ]; then config=$c; break; fi
  done
fi
if [ -n "$config" ]; then
  cp "$config" "$work/config.h"
else
  cat > "$work/config.h" <<'EOF'
#define PACKAGE_VERSION "fuzz"
#define SYSCONFDIR "/etc"
#define HAVE_CLOSE_RANGE 1
EOF
fi

failed=0
ran=0
for target in "$here"/fuzz-*.c; do
  [ -e "$target" ] || continue
  name=$(basename "$target" .c)
  name=${name#fuzz-}
  sources=$(sed -n 's|^// fuzz-sources:||p' "$target" | head -n 1)
  packages=$(sed -n 's|^// fuzz-packages:||p' "$target" | head -n 1)
  [ -n "$packages" ] || packages=glib-2.0

  src_paths=
  for s in $sources; do
    src_paths="$src_paths $root/src/$s"
  done

  echo "== fuzz-$name: building"
  # shellcheck disable=SC2046,SC2086  # word splitting of flags and file lists is wanted
  # -D_GNU_SOURCE as meson.build adds it to every file of the project.
  if ! "$cc" -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -I"$work" -I"$root/src" $(pkg-config --cflags $packages) \
      "$target" $src_paths $(pkg-config --libs $packages) \
      -o "$work/fuzz-$name"; then
    echo "== fuzz-$name: BUILD FAILED"
    failed=1
    continue
  fi

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
  if "$work/fuzz-$name" "$@" > "$work/log-$name" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' \
      "$work/log-$name" || true
    echo "== fuzz-$name: ok"
  else
    keep=$root/build-fuzz/artifacts/$name
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
