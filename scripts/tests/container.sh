#!/usr/bin/env bash
# Checks deploy/container/Containerfile without building it (no container engine is assumed):
# hadolint lints it, then dockerfile-parse reads it and the properties the runbook promises are
# asserted: a build stage and a runtime stage, a non-root numeric USER in the final stage, a
# state VOLUME, a HEALTHCHECK that runs the daemons' `health` subcommand, and every binary it
# installs being a binary target of this workspace. Run by ./scripts/test after the build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
file="$root/deploy/container/Containerfile"
command -v hadolint >/dev/null 2>&1 || { echo "container check: hadolint is missing (scripts/env.sh installs it)" >&2; exit 1; }
hadolint "$file"
echo "ok   hadolint deploy/container/Containerfile"
bins="$(cargo metadata --no-deps --format-version 1 --offline |
  python3 -c 'import json,sys; print(" ".join(t["name"] for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bin" in t["kind"]))')"
python3 - "$file" "$bins" <<'PY'
import re
import sys

from dockerfile_parse import DockerfileParser

path, workspace_bins = sys.argv[1], set(sys.argv[2].split())
with open(path, "rb") as f:
    parser = DockerfileParser(fileobj=f)
    instructions = parser.structure
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + "Containerfile: " + what)
    if not ok:
        failures.append(what)


froms = [i for i in instructions if i["instruction"] == "FROM"]
check(len(froms) >= 2, f"multi-stage ({len(froms)} stages)")
stage_names = [f["value"].split()[-1] for f in froms if " AS " in f["value"].upper()]
check("build" in stage_names, "a stage named build")
last_from = max(i["startline"] for i in froms)
final = [i for i in instructions if i["startline"] > last_from]
check("rust" not in froms[-1]["value"], "the runtime stage is not the Rust image")
check("debian" in froms[-1]["value"] and "-slim" in froms[-1]["value"], "the runtime stage is a slim Debian")
build = [i for i in instructions if froms[0]["startline"] <= i["startline"] < last_from]
check(any(i["instruction"] == "RUN" and "libclang-dev" in i["value"] for i in build),
      "the build stage installs libclang-dev (RocksDB's bindgen)")
check(any(i["instruction"] == "COPY" and "--from=build" in i["value"] for i in final),
      "the runtime stage copies the binaries from the build stage")
users = [i["value"].strip() for i in final if i["instruction"] == "USER"]
user = users[-1] if users else ""
uid = user.split(":")[0]
check(bool(users) and uid.isdigit() and int(uid) != 0, f"final USER is a numeric non-root user ({user or 'none'})")
check(any(i["instruction"] == "VOLUME" and "/var/lib/exchange" in i["value"] for i in final),
      "a state VOLUME /var/lib/exchange")
health = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
check(len(health) == 1 and re.search(r'"exchange-(node|catalog)",\s*"health"', health[0]) is not None,
      "a HEALTHCHECK running the daemons' health subcommand")
installed = set()
for i in build:
    if i["instruction"] == "RUN":
        installed |= set(re.findall(r"target/release/([A-Za-z0-9_-]+)", i["value"]))
expected = {"exchange", "exchange-catalog", "exchange-node", "exchange-gateway"}
check(installed == expected, f"installs the four programs ({', '.join(sorted(installed))})")
missing = installed - workspace_bins
check(not missing, "every installed binary is a binary target of the workspace"
      + (f" (not: {', '.join(sorted(missing))})" if missing else ""))
cmd = [i["value"] for i in final if i["instruction"] == "CMD"]
check(bool(cmd) and cmd[-1].lstrip().startswith("["), "CMD in exec form (the daemon is PID 1 and gets SIGTERM)")
sys.exit(1 if failures else 0)
PY
