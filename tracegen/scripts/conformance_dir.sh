#!/usr/bin/env bash
# Prints the conformance set's directory (rulesets, compare.py, expected records):
# $CTFW_CONFORMANCE if set, else the repository's vendored tests/linux-conformance, else a
# shared/conformance found in a directory above this script. Exits 2 if there is none.
set -euo pipefail
here=$(dirname "$(realpath "$0")")
if [ -n "${CTFW_CONFORMANCE:-}" ]; then
  realpath "$CTFW_CONFORMANCE"
  exit 0
fi
if [ -f "$here/../../tests/linux-conformance/classic.nft" ]; then
  realpath "$here/../../tests/linux-conformance"
  exit 0
fi
d=$here
while [ "$d" != / ]; do
  if [ -f "$d/shared/conformance/classic.nft" ]; then
    echo "$d/shared/conformance"
    exit 0
  fi
  d=$(dirname "$d")
done
echo "conformance set not found; set CTFW_CONFORMANCE" >&2
exit 2
