#!/usr/bin/env bash
# Checks the systemd units in deploy/systemd with `systemd-analyze verify`, against the
# binaries just built (the units name /usr/local/bin/...; the copies checked here name the
# build's). Any message about a unit fails the check. Run by ./scripts/test after the build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
bin="${CARGO_TARGET_DIR:?}/debug"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd unit check: systemd-analyze is missing: apt-get install systemd" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
for unit in "$root"/deploy/systemd/*.service; do
  name="$(basename "$unit")"
  sed "s|/usr/local/bin/|$bin/|g" "$unit" >"$work/$name"
  if ! out="$(systemd-analyze verify "$work/$name" 2>&1)" || grep -q "$name" <<<"$out"; then
    printf 'FAIL systemd unit %s:\n%s\n' "$name" "$out" >&2
    failures=$((failures + 1))
  else
    printf 'ok   systemd unit %s\n' "$name"
  fi
done
[ "$failures" -eq 0 ]
