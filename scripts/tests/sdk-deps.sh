#!/usr/bin/env bash
# Keeps the SDK lean: a department system that depends on exchange-client-sdk must not
# compile the command line's or the launcher's crates. Fails if clap, indicatif, csv or
# anyhow is in the SDK's normal dependency tree (with or without its `profile` feature), or
# toml without that feature. What is linked counts: proc-macros, which only the compiler
# runs, are left out (prost-derive itself uses anyhow). `cargo tree` only resolves the graph:
# nothing is built, so this never starts a RocksDB build. Run by ./scripts/test.
# The same check on exchange-cli, which does use clap, must find it: a check that cannot
# fail proves nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# Prints the forbidden crates ($2, a regex of names) in package $1's normal dependency tree,
# with cargo tree's extra arguments after.
forbidden() {
  local package="$1" names="$2"
  shift 2
  cargo tree -p "$package" -e normal,no-proc-macro --locked --prefix none --format '{p}' "$@" \
    | sed -nE "s/^(${names}) v.*/\1/p" | sort -u
}

failures=0
check() {
  local what="$1" names="$2"
  shift 2
  local found
  found="$(forbidden exchange-client-sdk "$names" "$@" | tr '\n' ' ')"
  if [ -n "$found" ]; then
    printf 'FAIL exchange-client-sdk (%s) depends on %s: the SDK is the library alone (move it to cli/ or localnet/)\n' \
      "$what" "$found" >&2
    failures=$((failures + 1))
  else
    printf 'ok   exchange-client-sdk (%s) has none of %s\n' "$what" "${names//|/, }"
  fi
}

check "default features" "clap|indicatif|csv|anyhow|toml"
check "feature profile" "clap|indicatif|csv|anyhow" --features profile

if [ "$(forbidden exchange-cli "clap")" != clap ]; then
  echo "FAIL sdk-deps: the check does not see clap in exchange-cli's tree, so it would not see it in the SDK's" >&2
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ]
