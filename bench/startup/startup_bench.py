#!/usr/bin/env python3
"""Start-up benchmark: the staged plan against an eager start, same modules, same run.

Each round starts memgate twice with the same heavy test modules (each build
allocates and touches BUILD_MB of scratch memory and keeps KEEP_MB): once with
STARTUP_MODE=staged and once with STARTUP_MODE=eager (every module at once on the
worker pool). Rounds alternate the order. For each start it records:
  - exec -> first 200 on /healthz, and exec -> first 200 on /readyz;
  - the start-up peak RSS (the largest per-stage peak memgate measured, each
    stage's peak read from VmHWM after a reset through /proc/self/clear_refs);
  - RSS and live heap once ready.
And once, an empty server (no modules) for its idle RSS and heap.
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

BIN = os.environ.get("MEMGATE_BIN", "build/release/app/memgate")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
MODULES = os.environ.get("MODULES", "4")
BUILD_MB = os.environ.get("BUILD_MB", "256")
KEEP_MB = os.environ.get("KEEP_MB", "32")
BUILD_MS = os.environ.get("BUILD_MS", "200")


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
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode()
    except (OSError, IndexError, ValueError):
        return 0, ""


def wait_status(port, path, want, t0, limit_s):
    deadline = t0 + limit_s
    while time.perf_counter() < deadline:
        status, body = get(port, path)
        if status == want:
            return time.perf_counter() - t0, body
        time.sleep(0.0002)
    raise RuntimeError(f"{path} did not answer {want} within {limit_s}s")


def rss_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def start(mode, modules=True):
    port, admin = free_port(), free_port()
    coord_dir = tempfile.mkdtemp(prefix="memgate-bench-coord-")
    env = dict(os.environ, PORT=str(port), ADMIN_PORT=str(admin), LOG_LEVEL="warn",
               STARTUP_MODE=mode, STAGE_DELAY="100ms", WORKER_THREADS="4", COORD_LOCAL_DIR=coord_dir)
    env.pop("REDIS_URL", None)
    if modules:
        env.update(MEMGATE_TEST_ROUTES="1", MEMGATE_TEST_HEAVY_MODULES=MODULES, MEMGATE_TEST_BUILD_MB=BUILD_MB,
                   MEMGATE_TEST_KEEP_MB=KEEP_MB, MEMGATE_TEST_BUILD_MS=BUILD_MS)
    t0 = time.perf_counter()
    proc = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t_health, _ = wait_status(port, "/healthz", 200, t0, 10)
        t_ready, _ = wait_status(port, "/readyz", 200, t0, 120)
        time.sleep(0.3)  # let background purging settle before reading RSS
        _, startupz = get(port, "/startupz")
        _, mem = get(admin, "/debug/memory")
        s = json.loads(startupz)
        m = json.loads(mem)
        return {
            "health_ms": t_health * 1000, "ready_ms": t_ready * 1000,
            "peak": s.get("startup_peak_rss_bytes", 0), "rss": rss_of(proc.pid),
            "heap": m["allocator"]["allocated"],
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(coord_dir, ignore_errors=True)


def mib(b):
    return f"{b / 1048576:.1f} MiB"


def main():
    if not os.path.exists(BIN):
        sys.exit(f"no binary at {BIN}; build first (make build)")
    empty = [start("staged", modules=False) for _ in range(3)]
    runs = {"staged": [], "eager": []}
    for r in range(ROUNDS):
        order = ["staged", "eager"] if r % 2 == 0 else ["eager", "staged"]
        for mode in order:
            runs[mode].append(start(mode))
            print(f"round {r + 1} {mode:6}: peak {mib(runs[mode][-1]['peak'])}, "
                  f"ready {runs[mode][-1]['ready_ms']:.0f} ms", flush=True)
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    e_rss, e_heap = med(empty, "rss"), med(empty, "heap")
    print()
    print(f"modules: {MODULES} x (build {BUILD_MB} MiB scratch, keep {KEEP_MB} MiB, {BUILD_MS} ms), "
          f"{ROUNDS} rounds, medians")
    print(f"empty server: exec->/healthz {med(empty, 'health_ms'):.1f} ms, idle RSS {mib(e_rss)}, heap {mib(e_heap)}")
    for mode in ("staged", "eager"):
        xs = runs[mode]
        print(f"{mode:6}: start-up peak RSS {mib(med(xs, 'peak'))}, exec->/healthz {med(xs, 'health_ms'):.1f} ms, "
              f"exec->/readyz {med(xs, 'ready_ms'):.0f} ms, RSS when ready {mib(med(xs, 'rss'))}, "
              f"heap {mib(med(xs, 'heap'))}")
    ratio = med(runs["staged"], "peak") / med(runs["eager"], "peak")
    print(f"staged/eager peak RSS ratio: {ratio:.2f} (goal <= 0.60)")
    s = runs["staged"]
    expected = med(s, "heap") - e_heap + e_rss
    print(f"staged RSS when ready vs live heap + empty server RSS: {mib(med(s, 'rss'))} vs {mib(expected)} "
          f"= {med(s, 'rss') / expected:.2f}x (goal <= 1.15)")


if __name__ == "__main__":
    main()
