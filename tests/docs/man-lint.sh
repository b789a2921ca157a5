#!/bin/bash
# The man pages as built: mandoc finds nothing at warning level or above,
# and both mandoc and man(1) render them.  TAP output.
#   man-lint.sh PAGE...
set -u

if [ $# -eq 0 ]; then
  echo "usage: $0 PAGE..." >&2
  exit 2
fi

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
  n=$((n + 1)); failed=$((failed + 1))
  echo "not ok $n - $1"
  sed 's/^/# /' <<<"$2"
}

echo "1..$(($# * 4))"
for page in "$@"; do
  name=$(basename "$page")
  if [ ! -f "$page" ]; then
    for check in lint mandoc man title; do
      not_ok "$name: $check" "$page does not exist (is subdir('man') in meson.build?)"
    done
    continue
  fi

  out=$(mandoc -Tlint -Wwarning "$page" 2>&1)
  if [ $? -eq 0 ] && [ -z "$out" ]; then
    ok "$name: mandoc -Tlint -Wwarning is clean"
  else
    not_ok "$name: mandoc -Tlint -Wwarning is clean" "$out"
  fi

  out=$(mandoc -Tascii "$page" 2>&1)
  rc=$?
  out=$(col -b <<<"$out")
  if [ $rc -eq 0 ] && grep -q '^NAME$' <<<"$out" && grep -q '^SEE ALSO$' <<<"$out"; then
    ok "$name: mandoc -Tascii renders NAME to SEE ALSO"
  else
    not_ok "$name: mandoc -Tascii renders NAME to SEE ALSO" "status $rc
$(head -n 20 <<<"$out")"
  fi

  # man(1) through groff, as a reader sees it; groff's own warnings (a
  # table wider than the line, a bad escape) go to stderr.
  err=$(LC_ALL=C.UTF-8 MANWIDTH=80 MAN_KEEP_FORMATTING=0 man --warnings -l "$page" 2>&1 >/dev/null)
  rc=$?
  text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null | col -b)
  if [ $rc -eq 0 ] && [ -z "$err" ] && grep -q '^NAME$' <<<"$text"; then
    ok "$name: man -l renders without warnings"
  else
    not_ok "$name: man -l renders without warnings" "status $rc
$err"
  fi

  # Nothing of the source leaks into the text: no request or macro shown
  # as text, no unknown escape.
  leaked=$(grep -nE '^\s*\.[A-Z]{1,2}( |$)|\\f[BIRP]|\\-' <<<"$text")
  if [ -z "$leaked" ]; then
    ok "$name: no roff source in the rendered text"
  else
    not_ok "$name: no roff source in the rendered text" "$leaked"
  fi
done

[ $failed -eq 0 ]
