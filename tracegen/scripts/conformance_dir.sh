#!/usr/bin/env bash
# Prints the conformance set's directory (rulesets, compare.py, expected records) by the one
# rule every script and test follows (ci/common.sh conformance_dir): the repository's vendored
# tests/linux-conformance, or $CTFW_CONFORMANCE_DIR. Fails if the set is not there.
set -euo pipefail
source "$(dirname "$(realpath "$0")")/../../ci/common.sh"
conformance_dir
