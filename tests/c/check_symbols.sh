#!/bin/sh
# The symbol-list test: what libtdscache.so exports must be exactly capi/tdscache.symbols, and
# every function tdscache.h declares must be in that list. Usage: check_symbols.sh LIB LIST HEADER
set -eu
lib=$1
list=$2
header=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/tds-symbols-XXXXXX")
trap 'rm -rf "$work"' EXIT

nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | LC_ALL=C sort -u >"$work/exported"
grep -v '^#' "$list" | sed '/^[[:space:]]*$/d' | LC_ALL=C sort -u >"$work/committed"
grep '^TDS_API' "$header" | grep -oE 'tds_[a-z0-9_]+\(' | tr -d '(' | LC_ALL=C sort -u >"$work/declared"

status=0
if ! diff -u "$work/committed" "$work/exported" >"$work/diff"; then
  echo "libtdscache.so exports differ from $list (- committed, + exported):"
  cat "$work/diff"
  echo "If the change to the C ABI is intended, update $list."
  status=1
fi
if ! diff -u "$work/committed" "$work/declared" >"$work/diff"; then
  echo "tdscache.h declares other functions than $list lists (- committed, + declared):"
  cat "$work/diff"
  status=1
fi
if [ "$status" -eq 0 ]; then
  echo "symbols: $(wc -l <"$work/exported") exported, all tds_*, matching $list and tdscache.h"
fi
exit "$status"
