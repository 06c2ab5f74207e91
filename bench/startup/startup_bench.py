#!/usr/bin/env python3
"""Start-up benchmark: the staged plan, the budgeted plan and an eager start, same
modules, same run.

Each round starts memgate three times with the same heavy test modules (module i
in stage i; each build allocates and touches BUILD_MB of scratch, takes BUILD_MS
more and keeps KEEP_MB):
  - STARTUP_MODE=staged: stage by stage, STAGE_DELAY between stages;
  - STARTUP_MODE=budgeted: stage order without delays, modules together while the
    sum of their predicted peaks fits STARTUP_MEMORY_BUDGET, which is set to
    BUDGET_SHARE (60%) of the first eager start's measured peak RSS;
  - STARTUP_MODE=eager: every module at once on the worker pool.
The first round starts eager first (it fixes the budget); later rounds rotate the
order. For each start it records:
  - exec -> first 200 on /healthz, and exec -> first 200 on /readyz;
  - the peak RSS: the largest of VmHWM/VmRSS polled from /proc/<pid>/status
    while waiting and memgate's own start-up peak (/startupz; memgate resets
    VmHWM per stage through /proc/self/clear_refs, so a single VmHWM read at the
    end would show only the last stage);
  - the peak charge of a memory cgroup (no limit) made for that start alone
    (bench/startup/memcg.py; skipped when cgroups are not writable), which also
    counts the page cache of the artifacts memgate writes;
  - RSS and live heap once ready.
And, first, an empty server (no modules) for its idle RSS and heap.
Prints medians and ratios. Loopback only; every wait is bounded; it kills only
the processes it started.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memcg  # noqa: E402

BIN = os.environ.get("MEMGATE_BIN", "build/release/app/memgate")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
MODULES = os.environ.get("MODULES", "4")
BUILD_MB = os.environ.get("BUILD_MB", "256")
KEEP_MB = os.environ.get("KEEP_MB", "32")
BUILD_MS = os.environ.get("BUILD_MS", "200")
STAGE_DELAY = os.environ.get("STAGE_DELAY", "100ms")
BUDGET_SHARE = float(os.environ.get("BUDGET_SHARE", "0.60"))
MODES = ("staged", "budgeted", "eager")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path, timeout=2.0):
    """One GET over a fresh connection; (status, body) or (0, '')."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while len(data) < (64 << 20):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode()
    except (OSError, IndexError, ValueError):
        return 0, ""


def proc_status(pid, *fields):
    """The named /proc/<pid>/status fields in bytes (0 when absent or gone)."""
    out = dict.fromkeys(fields, 0)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in out:
                    out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def rss_of(pid):
    return proc_status(pid, "VmRSS")["VmRSS"]


class PeakPoller:
    """The largest VmHWM/VmRSS of one process seen by poll()."""

    def __init__(self, pid):
        self.pid, self.peak = pid, 0

    def poll(self):
        s = proc_status(self.pid, "VmHWM", "VmRSS")
        self.peak = max(self.peak, s["VmHWM"], s["VmRSS"])


def wait_status(port, path, want, t0, limit_s, poller=None, proc=None):
    deadline = t0 + limit_s
    while time.perf_counter() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"memgate exited with {proc.returncode} before {path} answered {want}")
        status, body = get(port, path)
        if status == want:
            return time.perf_counter() - t0, body
        if poller:
            poller.poll()
        time.sleep(0.002)
    raise RuntimeError(f"{path} did not answer {want} within {limit_s}s")


def stop_process(proc):
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def cgroups_usable():
    try:
        cg = memcg.MemCgroup("bench-startup-probe")
    except (OSError, RuntimeError) as e:
        print(f"(no cgroup peaks: {e})", flush=True)
        return False
    cg.remove()
    return True


USE_CGROUPS = None


def start(mode, modules=True, budget=None):
    port, admin = free_port(), free_port()
    coord_dir = tempfile.mkdtemp(prefix="memgate-bench-coord-")
    env = dict(os.environ, PORT=str(port), ADMIN_PORT=str(admin), LOG_LEVEL="warn",
               STARTUP_MODE=mode, STAGE_DELAY=STAGE_DELAY, WORKER_THREADS="4", COORD_LOCAL_DIR=coord_dir)
    env.pop("REDIS_URL", None)
    if budget is not None:
        env["STARTUP_MEMORY_BUDGET"] = f"{budget // 1048576}MB"
    if modules:
        env.update(MEMGATE_TEST_ROUTES="1", MEMGATE_TEST_HEAVY_MODULES=MODULES, MEMGATE_TEST_BUILD_MB=BUILD_MB,
                   MEMGATE_TEST_KEEP_MB=KEEP_MB, MEMGATE_TEST_BUILD_MS=BUILD_MS)
    cg = memcg.MemCgroup("bench-startup") if USE_CGROUPS else None
    t0 = time.perf_counter()
    proc = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=cg.preexec() if cg else None)
    poller = PeakPoller(proc.pid)
    try:
        t_health, _ = wait_status(port, "/healthz", 200, t0, 10, poller, proc)
        t_ready, _ = wait_status(port, "/readyz", 200, t0, 120, poller, proc)
        poller.poll()
        time.sleep(0.3)  # let background purging settle before reading RSS
        _, startupz = get(port, "/startupz")
        _, mem = get(admin, "/debug/memory")
        s = json.loads(startupz)
        m = json.loads(mem)
        return {
            "health_ms": t_health * 1000, "ready_ms": t_ready * 1000,
            "peak": max(poller.peak, s.get("startup_peak_rss_bytes", 0)),
            "memgate_peak": s.get("startup_peak_rss_bytes", 0),
            "cg_peak": cg.peak() if cg else 0,
            "rss": rss_of(proc.pid), "heap": m["allocator"]["allocated"],
            "stages": len(s.get("stages", [])),
            "at_once": at_once(s.get("modules", [])),
            "states": sorted({x["state"] for x in s.get("modules", [])}),
        }
    finally:
        stop_process(proc)
        if cg:
            cg.remove()
        shutil.rmtree(coord_dir, ignore_errors=True)


def at_once(modules):
    """The most heavy test modules running at the same time, from /startupz's start and finish times."""
    spans = [(m["started_ms"], m["finished_ms"]) for m in modules
             if m["name"].startswith("test-heavy-") and m["started_ms"] >= 0 and m["finished_ms"] >= 0]
    return max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0)


def mib(b):
    return f"{b / 1048576:.1f} MiB"


def main():
    global USE_CGROUPS
    if not os.path.exists(BIN):
        sys.exit(f"no binary at {BIN}; build first (make build)")
    USE_CGROUPS = cgroups_usable()
    empty = [start("staged", modules=False) for _ in range(3)]
    runs = {m: [] for m in MODES}
    budget = None

    def one(r, mode):
        x = start(mode, budget=budget if mode == "budgeted" else None)
        runs[mode].append(x)
        print(f"round {r + 1} {mode:8}: peak RSS {mib(x['peak'])} (memgate's {mib(x['memgate_peak'])}, "
              f"cgroup {mib(x['cg_peak'])}), ready {x['ready_ms']:.0f} ms, states {','.join(x['states'])}",
              flush=True)

    for r in range(ROUNDS):
        order = [MODES[(2 + r + k) % 3] for k in range(3)]  # round 1: eager first, it fixes the budget
        for mode in order:
            one(r, mode)
            if budget is None and mode == "eager":
                budget = int(runs["eager"][0]["peak"] * BUDGET_SHARE)
                print(f"STARTUP_MEMORY_BUDGET={budget // 1048576}MB ({BUDGET_SHARE:.0%} of the eager peak RSS "
                      f"{mib(runs['eager'][0]['peak'])})", flush=True)
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    e_rss, e_heap = med(empty, "rss"), med(empty, "heap")
    print()
    print(f"modules: {MODULES} x (build {BUILD_MB} MiB scratch, keep {KEEP_MB} MiB, {BUILD_MS} ms), "
          f"STAGE_DELAY={STAGE_DELAY}, WORKER_THREADS=4, {ROUNDS} rounds, medians; "
          f"STARTUP_MEMORY_BUDGET={budget // 1048576}MB")
    print(f"empty server: exec->/healthz {med(empty, 'health_ms'):.1f} ms, idle RSS {mib(e_rss)}, heap {mib(e_heap)}")
    for mode in MODES:
        xs = runs[mode]
        print(f"{mode:8}: peak RSS {mib(med(xs, 'peak'))} (cgroup peak {mib(med(xs, 'cg_peak'))}), "
              f"exec->/healthz {med(xs, 'health_ms'):.1f} ms, exec->/readyz {med(xs, 'ready_ms'):.0f} ms, "
              f"RSS when ready {mib(med(xs, 'rss'))}, heap {mib(med(xs, 'heap'))}, "
              f"stages {med(xs, 'stages'):.0f}, heavy modules at once {med(xs, 'at_once'):.0f}")
    peak = {m: med(runs[m], "peak") for m in MODES}
    ready = {m: med(runs[m], "ready_ms") for m in MODES}
    verdict = lambda ok: "met" if ok else "MISSED"
    print(f"staged/eager peak RSS ratio: {peak['staged'] / peak['eager']:.2f} (goal <= 0.60, "
          f"{verdict(peak['staged'] / peak['eager'] <= 0.60)})")
    print(f"budgeted/eager peak RSS ratio: {peak['budgeted'] / peak['eager']:.2f}")
    worst = max(x["peak"] for x in runs["budgeted"])
    within = sum(1 for x in runs["budgeted"] if x["peak"] <= budget)
    print(f"budgeted peak RSS / budget: median {peak['budgeted'] / budget:.2f}, worst {worst / budget:.2f} "
          f"(goal <= 1.00, {verdict(peak['budgeted'] <= budget)} at the median; within the budget in "
          f"{within}/{len(runs['budgeted'])} runs)")
    above = peak["budgeted"] - statistics.median(x["rss"] for x in empty)
    print(f"budgeted peak RSS above the empty server's RSS / budget: {above / budget:.2f}")
    if USE_CGROUPS:
        cgp = med(runs["budgeted"], "cg_peak")
        print(f"budgeted cgroup peak / budget: {cgp / budget:.2f}")
    print(f"budgeted/staged exec->/readyz: {ready['budgeted'] / ready['staged']:.2f} (goal <= 0.60, "
          f"{verdict(ready['budgeted'] <= 0.6 * ready['staged'])}); budgeted/eager {ready['budgeted'] / ready['eager']:.2f}; "
          f"staged/eager {ready['staged'] / ready['eager']:.2f}")
    s = runs["staged"]
    expected = med(s, "heap") - e_heap + e_rss
    print(f"staged RSS when ready vs live heap + empty server RSS: {mib(med(s, 'rss'))} vs {mib(expected)} "
          f"= {med(s, 'rss') / expected:.2f}x (goal <= 1.15)")


if __name__ == "__main__":
    main()
