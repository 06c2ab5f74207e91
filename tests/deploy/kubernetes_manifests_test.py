#!/usr/bin/env python3
"""The Kubernetes manifests in deploy/kubernetes (issue 15), parsed and checked
against the real binary:

- every file is YAML with apiVersion, kind and metadata.name; kustomization.yaml
  lists every manifest but the example Secret; REDIS_URL's host is one of
  their Services;
- the Deployment's containers have memory requests and limits, and its three
  probes are startupProbe /healthz, readinessProbe /readyz, livenessProbe
  /healthz on the container port that is the ConfigMap's PORT;
- `memgate check-config` accepts the ConfigMap's settings (every key is a
  setting, every value valid);
- memgate started with those settings (on free loopback ports) answers each
  probe's path on its public port, and the startup probe's budget is at least
  what `memgate plan --probes` derives for them, when that command exists.

Usage: kubernetes_manifests_test.py SOURCE_ROOT MEMGATE_BINARY. Exit 0 when all
checks pass, 1 with the failures listed.
"""
import glob
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def load_manifests(folder):
    docs = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        with open(path) as f:
            docs[os.path.basename(path)] = [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def main(root, binary):
    folder = os.path.join(root, "deploy", "kubernetes")
    docs = load_manifests(folder)
    check(len(docs) >= 5, f"expected the manifests in {folder}, found {sorted(docs)}")
    by_kind = {}
    for name, items in docs.items():
        for d in items:
            if not check(isinstance(d, dict) and "kind" in d and "apiVersion" in d, f"{name}: no kind/apiVersion"):
                continue
            if d["kind"] != "Kustomization":
                check(d.get("metadata", {}).get("name"), f"{name}: {d['kind']} has no metadata.name")
            by_kind.setdefault(d["kind"], []).append((name, d))

    kustomization = by_kind.get("Kustomization", [(None, {})])[0][1]
    listed = set(kustomization.get("resources", []))
    for name in docs:
        if name != "kustomization.yaml" and not name.endswith(".example.yaml"):
            check(name in listed, f"kustomization.yaml does not list {name}")
    for name in listed:
        check(name in docs, f"kustomization.yaml lists {name}, which does not exist")

    configmaps = {d["metadata"]["name"]: d.get("data", {}) for _, d in by_kind.get("ConfigMap", [])}
    deployments = [d for _, d in by_kind.get("Deployment", [])]
    if not check(len(deployments) == 1 and "memgate-settings" in configmaps, "expected one Deployment and the memgate-settings ConfigMap"):
        return
    settings = {k: str(v) for k, v in configmaps["memgate-settings"].items()}
    deployment = deployments[0]
    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"]
    memgate = next((c for c in containers if c["name"] == "memgate"), None)
    if not check(memgate is not None, "no container named memgate"):
        return
    check(deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items(),
          "the Deployment's selector does not match its pod labels")
    res = memgate.get("resources", {})
    check(res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"),
          "the memgate container needs memory requests and limits")
    ports = {p["name"]: p["containerPort"] for p in memgate.get("ports", [])}
    public_port = int(settings.get("PORT", "8080"))
    admin_port = int(settings.get("ADMIN_PORT", "9090"))

    want = {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    probes = {}
    for probe, path in want.items():
        p = memgate.get(probe)
        if not check(p and "httpGet" in p, f"{probe} missing or not an httpGet probe"):
            continue
        probes[probe] = p
        check(p["httpGet"]["path"] == path, f"{probe} probes {p['httpGet']['path']}, memgate serves it on {path}")
        port = p["httpGet"]["port"]
        number = ports.get(port) if isinstance(port, str) else port
        check(number == public_port,
              f"{probe} port {port} is container port {number}, but memgate's public listener is PORT={public_port}")
    check(ports.get("admin") == admin_port, f"the admin container port {ports.get('admin')} is not ADMIN_PORT={admin_port}")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        check(int(annotations["prometheus.io/port"]) == admin_port, "prometheus.io/port is not ADMIN_PORT")
    for _, svc in by_kind.get("Service", []):
        if svc["metadata"]["name"] == "memgate":
            for p in svc["spec"]["ports"]:
                t = p["targetPort"]
                check((ports.get(t) if isinstance(t, str) else t) == public_port, f"Service memgate targets {t}, not the public port")

    # REDIS_URL names a Service the manifests define (the Redis reference).
    services = {svc["metadata"]["name"] for _, svc in by_kind.get("Service", [])}
    if settings.get("REDIS_URL"):
        m = re.match(r"^[a-z-]+://(?:[^@/]*@)?([^:/,]+)", settings["REDIS_URL"])
        check(m and m.group(1) in services, f"REDIS_URL's host is not a Service of the manifests: {settings['REDIS_URL']}")

    # The settings, as memgate reads them: valid, and probed where it serves.
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.update(settings)
    env["ADMIN_TOKEN"] = "manifest-test-token"
    checked = subprocess.run([binary, "check-config"], env=env, capture_output=True, text=True, timeout=30)
    check(checked.returncode == 0, f"memgate check-config refuses the ConfigMap: {checked.stderr.strip()}")

    # Started on loopback and free ports, local coordination in a temp folder
    # (the manifests' Redis is not here), everything else as the ConfigMap says.
    with tempfile.TemporaryDirectory(prefix="memgate-k8s-") as tmp:
        run_env = dict(env)
        port, admin = free_port(), free_port()
        run_env.update({"HOST": "127.0.0.1", "PORT": str(port), "ADMIN_HOST": "127.0.0.1", "ADMIN_PORT": str(admin),
                        "COORD_LOCAL_DIR": os.path.join(tmp, "coord"), "PROFILE_DIR": tmp, "STAGE_DELAY": "0"})
        run_env.pop("REDIS_URL", None)
        plan_env = dict(env)  # the ConfigMap's settings, without its Redis (not here)
        plan_env.pop("REDIS_URL", None)
        plan = subprocess.run([binary, "plan", "--probes"], env=plan_env, capture_output=True, text=True, timeout=30)
        check(plan.returncode == 0, f"memgate plan --probes failed: {plan.stderr.strip()}")
        if plan.returncode == 0 and "startupProbe" in probes:
            m = re.search(r"budget (\d+)s", plan.stdout)
            if check(m, f"`memgate plan --probes` printed no budget:\n{plan.stdout}"):
                sp = probes["startupProbe"]
                budget = sp.get("failureThreshold", 3) * sp.get("periodSeconds", 10)
                check(budget >= int(m.group(1)), f"the startupProbe allows {budget}s, the plan needs {m.group(1)}s")
        with open(os.path.join(tmp, "memgate.log"), "w") as log:
            proc = subprocess.Popen([binary], env=run_env, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 15
                while http_status(port, "/healthz") != 200 and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.05)  # polling a condition (the listener), bounded by the deadline
                for probe, p in probes.items():
                    status = http_status(port, p["httpGet"]["path"])
                    check(status in (200, 503), f"{probe}: GET {p['httpGet']['path']} on the public port answered {status}")
                check(http_status(admin, "/metrics") == 401, "the admin listener should want ADMIN_TOKEN for /metrics")
            finally:
                proc.kill()  # only the process this test started, by its handle
                proc.wait(timeout=10)
        if failures:
            with open(os.path.join(tmp, "memgate.log")) as f:
                failures.append("memgate's log:\n" + f.read()[-4000:])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
    for f in failures:
        print("FAIL:", f)
    print("ok" if not failures else f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)
