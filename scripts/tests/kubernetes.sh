#!/usr/bin/env bash
# Checks deploy/kubernetes: `kubectl kustomize` renders every overlay (and one more department
# added by the recipe of deploy/README.md), kubernetes-validate checks the output against the
# Kubernetes API schemas (strict: an unknown field fails), and the properties the runbook
# promises are asserted (StatefulSets with a volume claim, Secrets and ConfigMaps mounted,
# exec probes running `health`, non-root, a NetworkPolicy admitting only the federation's
# ports, ports that agree with the daemon's configuration). Each overlay's configuration is
# then checked by the daemon itself (`check-config`), with its /etc/exchange files made by
# the project's own CLI. Run by ./scripts/test after the build; works offline.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CARGO_TARGET_DIR:?}/debug"
for tool in kubectl kubernetes-validate; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kubernetes check: $tool is missing (kubectl: apt-get install kubectl; kubernetes-validate: scripts/env.sh installs it)" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# One more department, exactly as deploy/README.md ("Adding a department") says.
cp -r "$root/deploy/kubernetes" "$work/kubernetes"
(
  cd "$work/kubernetes/overlays"
  cp -r gov.sz.pnr gov.sz.lh.hrss
  sed -i 's/gov\.sz\.pnr/gov.sz.lh.hrss/g; s/gov-sz-pnr/gov-sz-lh-hrss/g' gov.sz.lh.hrss/*
)

failures=0
for overlay in "$work"/kubernetes/overlays/*/; do
  name="$(basename "$overlay")"
  out="$work/$name.yaml"
  if ! kubectl kustomize "$overlay" >"$out" 2>"$work/$name.err"; then
    printf 'FAIL kustomize %s:\n%s\n' "$name" "$(cat "$work/$name.err")" >&2
    failures=$((failures + 1))
    continue
  fi
  if ! report="$(kubernetes-validate --strict --quiet "$out" 2>&1)" || [ -n "$report" ]; then
    printf 'FAIL schema %s:\n%s\n' "$name" "$report" >&2
    failures=$((failures + 1))
    continue
  fi
  printf 'ok   kustomize + schema %s\n' "$name"
  if ! python3 "$here/kubernetes_properties.py" "$name" "$out" "$work/$name.toml"; then
    failures=$((failures + 1))
    continue
  fi
  # The daemon reads the rendered configuration, with its files where the pod mounts them.
  etc="$work/$name-root/etc"
  mkdir -p "$etc/pki" "$etc/keys"
  sed -e "s|/etc/exchange/|$etc/|g" -e "s|/var/lib/exchange/|$work/$name-root/var/|g" "$work/$name.toml" >"$work/$name.local.toml"
  if [ ! -d "$work/ca" ]; then
    "$bin/exchange" ca init --dir "$work/ca" >/dev/null
  fi
  if [ "$name" = catalog ]; then
    daemon=exchange-catalog
    dept=gov.sz.exchange
    issue=(--kind server --dns exchange-catalog.exchange-catalog.svc)
    "$bin/exchange-catalog" keygen --dir "$etc/keys" >/dev/null
  else
    daemon=exchange-node
    dept="$name"
    issue=(--kind both --dns "exchange-node.exchange-${name//./-}.svc")
    "$bin/exchange-node" keygen --dir "$etc/keys" >/dev/null
    # The catalog key the operator pastes in (any valid key will do for the check).
    key="$(grep -o '[0-9a-f]\{64\}$' <<<"$("$bin/exchange-node" keygen --dir "$work/$name-root" | tail -1)")"
    sed -i "s/^catalog_public_key = .*/catalog_public_key = \"$key\"/" "$work/$name.local.toml"
  fi
  "$bin/exchange" ca issue --ca-dir "$work/ca" --dept "$dept" "${issue[@]}" --out "$etc/pki" --stem tls >/dev/null
  if ! checked="$("$bin/$daemon" check-config --config "$work/$name.local.toml" 2>&1)"; then
    printf 'FAIL %s check-config of the %s overlay:\n%s\n' "$daemon" "$name" "$checked" >&2
    failures=$((failures + 1))
    continue
  fi
  printf 'ok   %s check-config %s\n' "$daemon" "$name"
done
[ "$failures" -eq 0 ]
