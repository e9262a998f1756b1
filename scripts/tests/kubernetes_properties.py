"""Asserts what deploy/README.md promises of a rendered Kubernetes overlay.

Usage: kubernetes_properties.py NAME RENDERED.yaml OUT.toml
NAME is the overlay (`catalog` or a department id). Writes the daemon configuration held in
the overlay's ConfigMap to OUT.toml, for `check-config`. Exits 1 naming every failed property.
"""

import sys
import tomllib

import yaml

name, rendered, toml_out = sys.argv[1:4]
docs = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def of_kind(kind):
    return [d for d in docs if d["kind"] == kind]


daemon = "exchange-catalog" if name == "catalog" else "exchange-node"
config_file = "catalog.toml" if name == "catalog" else "node.toml"
dept = "gov.sz.exchange" if name == "catalog" else name

namespaces = of_kind("Namespace")
check(len(namespaces) == 1, "one Namespace")
namespace = namespaces[0]["metadata"]["name"] if namespaces else ""
check(
    namespaces and namespaces[0]["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted",
    "the namespace enforces the restricted Pod Security Standard",
)
check(all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace"),
      "every object in the overlay's namespace")
check(all(d["metadata"].get("labels", {}).get("exchange.sz.gov.cn/dept") == dept for d in docs),
      f"every object labelled with its department {dept}")

sets = of_kind("StatefulSet")
check(len(sets) == 1 and sets[0]["spec"]["replicas"] == 1, "one StatefulSet with one replica")
sts = sets[0] if sets else {"spec": {"template": {"spec": {"containers": [{}]}}}}
pod = sts["spec"]["template"]["spec"]
container = pod["containers"][0]
check(container.get("command", [])[:2] == [daemon, "serve"], f"the container runs {daemon} serve")
claims = sts["spec"].get("volumeClaimTemplates", [])
mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
check(any(c["metadata"]["name"] in mounts and mounts[c["metadata"]["name"]]["mountPath"] == "/var/lib/exchange"
          for c in claims), "a PersistentVolumeClaim template mounted at /var/lib/exchange")
volumes = {v["name"]: v for v in pod.get("volumes", [])}
secrets = [v for v in volumes.values() if "secret" in v]
check(len(secrets) == 2 and all(mounts.get(v["name"], {}).get("readOnly") for v in secrets),
      "certificates and keys from two Secrets, mounted read-only")
check(all(mounts.get(v["name"], {}).get("mountPath") in ("/etc/exchange/pki", "/etc/exchange/keys") for v in secrets),
      "the Secrets at /etc/exchange/pki and /etc/exchange/keys")
security = pod.get("securityContext", {})
check(security.get("runAsNonRoot") is True and security.get("runAsUser", 0) != 0, "runs as a non-root user")
csec = container.get("securityContext", {})
check(csec.get("allowPrivilegeEscalation") is False and csec.get("readOnlyRootFilesystem") is True
      and csec.get("capabilities", {}).get("drop") == ["ALL"], "no privilege escalation, read-only root, no capability")

configmaps = {d["metadata"]["name"]: d for d in of_kind("ConfigMap")}
config_volumes = [v for v in volumes.values() if "configMap" in v]
check(len(config_volumes) == 1 and config_volumes[0]["configMap"]["name"] in configmaps,
      "the configuration from a ConfigMap of the overlay")
text = configmaps[config_volumes[0]["configMap"]["name"]]["data"].get(config_file, "") if config_volumes and \
    config_volumes[0]["configMap"]["name"] in configmaps else ""
config = tomllib.loads(text) if text else {}
with open(toml_out, "w", encoding="utf-8") as f:
    f.write(text)
check(mounts.get(config_volumes[0]["name"] if config_volumes else "", {}).get("mountPath") == "/etc/exchange/config"
      and f"/etc/exchange/config/{config_file}" in container.get("command", []),
      f"the daemon reads the ConfigMap's {config_file}")
if name != "catalog":
    check(config.get("dept_id") == name, f"node.toml's dept_id is the overlay's department ({config.get('dept_id')})")
    check(all(d.get("id", "").startswith(name + "/") for d in config.get("datasets", [])) and config.get("datasets"),
          "node.toml serves datasets of its own department")

port = int(config.get("listen", ":0").rsplit(":", 1)[1])
metrics_port = int(config.get("metrics_listen", ":0").rsplit(":", 1)[1])
check(metrics_port == 9400 and config.get("metrics_remote") is True,
      "the metrics listener is on the pod's address, port 9400, declared remote")
ports = [p["containerPort"] for p in container.get("ports", [])]
check(ports == [port, metrics_port],
      f"the container ports are the configuration's listen and metrics ports ({ports} vs {port}, {metrics_port})")

env = {e["name"]: e.get("value") for e in container.get("env", [])}
env_maps = [r["configMapRef"]["name"] for r in container.get("envFrom", []) if "configMapRef" in r]
for m in env_maps:
    check(m in configmaps, f"the probe's ConfigMap {m} is in the overlay")
    env.update(configmaps.get(m, {}).get("data", {}))
check(env.get("EXCHANGE_HEALTH_ADDR") == f"https://127.0.0.1:{port}", "the probe asks the pod's own listener")
check(env.get("EXCHANGE_HEALTH_CA") == "/etc/exchange/pki/ca.crt", "the probe trusts the federation CA")
services = of_kind("Service")
check(env.get("EXCHANGE_HEALTH_NAME") in {f"{s['metadata']['name']}.{namespace}.svc" for s in services},
      "the probe expects the Service's cluster name in the certificate")


def probe(kind):
    p = container.get(kind) or {}
    return p.get("exec", {}).get("command", []) if "exec" in p else None


ready, alive = probe("readinessProbe"), probe("livenessProbe")
check(ready is not None and ready[:2] == [daemon, "health"] and "--liveness" not in ready,
      "readiness: an exec probe with `health` (SERVING only)")
check(alive is not None and alive[:2] == [daemon, "health"] and "--liveness" in alive,
      "liveness: an exec probe with `health --liveness`")
check(all(container.get(k) is None or "exec" in container[k] for k in ("readinessProbe", "livenessProbe", "startupProbe")),
      "no probe but exec (the kubelet's gRPC probe cannot speak TLS)")

check(len(services) >= 1 and all(
    [p["port"] for p in s["spec"]["ports"]] == [port] and s["spec"]["selector"].items()
    <= sts["spec"]["template"]["metadata"]["labels"].items() for s in services),
    "the Services select the pod and carry only its port")
check(any(s["metadata"]["name"] == sts["spec"].get("serviceName") and s["spec"].get("clusterIP") == "None"
          for s in services), "the StatefulSet's headless Service")

policies = of_kind("NetworkPolicy")
check(len(policies) == 1, "one NetworkPolicy")
for policy in policies:
    spec = policy["spec"]
    check(spec["podSelector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items(),
          "the NetworkPolicy selects the pod")
    check(sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"], "the NetworkPolicy governs both directions")
    ingress = [(p.get("protocol", "TCP"), p.get("port")) for r in spec.get("ingress", []) for p in r.get("ports", [])]
    check(ingress == [("TCP", port), ("TCP", metrics_port)] and all(r.get("ports") for r in spec.get("ingress", [])),
          f"ingress admits only the daemon's port {port}/TCP and its metrics port ({ingress})")
    monitoring = [r.get("from") for r in spec.get("ingress", []) if any(p.get("port") == metrics_port for p in r["ports"])]
    check(monitoring == [[{"namespaceSelector": {"matchLabels": {"exchange.gov.sz/monitoring": "true"}}}]],
          f"the metrics port only from the monitoring namespace ({monitoring})")
    allowed_out = set() if name == "catalog" else {("TCP", 7400), ("UDP", 53), ("TCP", 53)}
    egress = {(p.get("protocol", "TCP"), p.get("port")) for r in spec.get("egress", []) for p in r.get("ports", [])}
    check(egress == allowed_out and all(r.get("ports") for r in spec.get("egress", [])),
          f"egress admits only {sorted(allowed_out) or 'nothing'} ({sorted(egress)})")
    if name != "catalog":
        catalog_port = int(config.get("catalog_endpoint", ":0").rsplit(":", 1)[1])
        check(catalog_port == 7400, "the node's catalog_endpoint uses the port egress admits")

for f in failures:
    print(f"FAIL kubernetes {name}: {f}", file=sys.stderr)
if not failures:
    print(f"ok   kubernetes properties {name}")
sys.exit(1 if failures else 0)
