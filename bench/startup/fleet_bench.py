#!/usr/bin/env python3
"""Fleet start-up under memory limits: four memgate instances on one redis-server,
all with the knowledge base on the same generated corpus, two of them in memory
cgroups whose limit is below the kb's measured build peak.

  1. Generates CORPUS_MB (30) of varied markdown and text in a temp dir (seeded,
     so every run indexes the same bytes).
  2. Calibration: one instance alone, local coordination, in a cgroup without a
     limit: the kb's measured build peak (/startupz), the process's peak RSS
     (VmHWM polled, and the cgroup's peak) and its RSS once ready.
  3. LIMIT = LIMIT_SHARE (0.70) of that process peak, and it must stay below it.
  4. ROUNDS rounds (fresh Redis data each: FLUSHALL): starts a, b (cgroups without
     a limit, for their peaks) and c, d (cgroups limited to LIMIT; LIMITED=abcd
     to limit all four) at once, all
     with REDIS_URL, KB_CORPUS_DIR and their own INSTANCE_ID; waits for /readyz on
     all four; reads each one's kb row from /startupz (decision, outcome,
     built_by, predicted peak, headroom) and each cgroup's peak and OOM kills.
Prints the figures per round and the medians. Loopback only; every wait is
bounded; it kills only the processes it started and removes its cgroups and
temp dirs.
"""
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memcg  # noqa: E402
from startup_bench import PeakPoller, free_port, get, proc_status, stop_process  # noqa: E402

BIN = os.environ.get("MEMGATE_BIN", "build/release/app/memgate")
REDIS = os.environ.get("REDIS_SERVER", "redis-server")
CORPUS_MB = float(os.environ.get("CORPUS_MB", "30"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
LIMIT_SHARE = float(os.environ.get("LIMIT_SHARE", "0.70"))
READY_S = float(os.environ.get("READY_S", "240"))
NAMES = ("a", "b", "c", "d")
LIMITED = tuple(os.environ.get("LIMITED", "cd"))  # which of a, b, c, d run under the limit


def mib(b):
    return f"{b / 1048576:.1f} MiB"


# ---- the corpus -------------------------------------------------------------

def make_corpus(root, megabytes, seed=6):
    """Markdown and plain-text files of Zipf-distributed pseudo-words; returns bytes written."""
    rng = random.Random(seed)
    syl = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "qua", "bri", "ster", "on", "el", "ath",
           "dor", "fen", "gil", "hap", "jun", "mar", "pol", "rix", "tor", "ul", "wen", "yl", "cre", "pha", "sto"]
    vocab = sorted({"".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(60000)})
    rng.shuffle(vocab)
    weights = [1.0 / (i + 1) ** 1.05 for i in range(len(vocab))]
    cum, acc = [], 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    words = lambda n: rng.choices(vocab, cum_weights=cum, k=n)

    def sentence():
        w = words(rng.randint(6, 22))
        w[0] = w[0].capitalize()
        return " ".join(w) + rng.choice([".", ".", ".", "?", "!", ";"])

    def paragraph():
        return " ".join(sentence() for _ in range(rng.randint(2, 7)))

    target, total, n = int(megabytes * 1048576), 0, 0
    while total < target:
        n += 1
        sub = os.path.join(root, f"section-{n % 17:02d}")
        os.makedirs(sub, exist_ok=True)
        size = rng.randint(20_000, 140_000)
        parts = []
        if n % 3:
            parts.append("# " + " ".join(words(rng.randint(2, 6))).title() + "\n")
            while sum(map(len, parts)) < size:
                r = rng.random()
                if r < 0.12:
                    parts.append("\n## " + " ".join(words(rng.randint(2, 5))).title() + "\n")
                elif r < 0.22:
                    parts.append("\n" + "\n".join("- " + sentence() for _ in range(rng.randint(2, 6))) + "\n")
                elif r < 0.28:
                    parts.append("\n```\n" + "\n".join(f"{a} = {b}({c}, {rng.randint(0, 999)})"
                                                    for a, b, c in (words(3) for _ in range(rng.randint(2, 8))))
                                 + "\n```\n")
                elif r < 0.32:
                    cols = words(3)
                    parts.append("\n| " + " | ".join(cols) + " |\n|---|---|---|\n" + "\n".join(
                        "| " + " | ".join(words(3)) + " |" for _ in range(rng.randint(2, 6))) + "\n")
                else:
                    parts.append("\n" + paragraph() + "\n")
            name = f"doc-{n:05d}.md"
        else:
            while sum(map(len, parts)) < size:
                parts.append(paragraph() + "\n\n")
            name = f"notes-{n:05d}.txt"
        text = "".join(parts)
        with open(os.path.join(sub, name), "w") as f:
            f.write(text)
        total += len(text.encode())
    return total, n


# ---- redis --------------------------------------------------------------------

def redis_cmd(port, *args, timeout=5.0):
    """One RESP command; the first reply line."""
    msg = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(msg.encode())
        return s.recv(4096).split(b"\r\n")[0].decode()


def start_redis(tmp):
    port = free_port()
    proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis_cmd(port, "PING", timeout=0.5) == "+PONG":
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError("redis-server did not answer PING within 10 s")


# ---- memgate ------------------------------------------------------------------

class Instance:
    def __init__(self, name, corpus, limit=None, redis_port=None, coord_dir=None):
        self.name, self.limit = name, limit
        self.port, self.admin = free_port(), free_port()
        self.env = dict(os.environ, PORT=str(self.port), ADMIN_PORT=str(self.admin), LOG_LEVEL="info",
                        LOG_FORMAT="json", INSTANCE_ID=f"fleet-{name}", ENABLE_KB_SERVICE="true",
                        KB_CORPUS_DIR=corpus, STAGE_DELAY="0s", WORKER_THREADS="2", IO_THREADS="1")
        self.env.pop("REDIS_URL", None)
        if redis_port:
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}"
        if coord_dir:
            self.env["COORD_LOCAL_DIR"] = coord_dir
        self.cg = memcg.MemCgroup(f"bench-fleet-{name}", limit)
        self.proc = self.poller = self.ready_s = None
        self.log = tempfile.NamedTemporaryFile(prefix=f"memgate-fleet-{name}-", suffix=".log", delete=False)

    def start(self, t0):
        self.t0 = t0
        self.proc = subprocess.Popen([BIN], env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=self.cg.preexec())
        self.poller = PeakPoller(self.proc.pid)

    def poll(self):
        """True once /readyz answered 200; records when."""
        if self.ready_s is not None:
            return True
        self.poller.poll()
        if get(self.port, "/readyz", timeout=1.0)[0] == 200:
            self.ready_s = time.perf_counter() - self.t0
            return True
        return False

    def kb(self):
        status, body = get(self.port, "/startupz")
        if status != 200:
            return {}
        for m in json.loads(body).get("modules", []):
            if m["name"] == "kb":
                return m
        return {}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc)
        self.log.close()
        self.cg.remove()


def wait_all(instances, limit_s):
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if all([i.poll() for i in instances]):  # a list: every instance polled each pass
            return True
        for i in instances:
            if i.proc.poll() is not None and i.ready_s is None:
                return False  # died (an OOM kill, say) before it was ready
        time.sleep(0.01)
    return False


def calibrate(corpus, tmp):
    coord = tempfile.mkdtemp(prefix="coord-", dir=tmp)
    inst = Instance("calib", corpus, coord_dir=coord)
    try:
        inst.start(time.perf_counter())
        if not wait_all([inst], READY_S):
            raise RuntimeError(f"calibration instance not ready within {READY_S}s (see {inst.log.name})")
        time.sleep(0.3)
        kb = inst.kb()
        mem = kb.get("memory", {})
        return {"ready_s": inst.ready_s, "kb_ms": kb.get("duration_ms"), "outcome": kb.get("outcome"),
                "build_peak": mem.get("measured_build_peak_bytes", 0),
                "predicted_build": mem.get("predicted_build_bytes", 0),
                "predicted_load": mem.get("predicted_load_bytes", 0),
                "process_peak": inst.poller.peak, "cg_peak": inst.cg.peak(),
                "rss_ready": proc_status(inst.proc.pid, "VmRSS")["VmRSS"],
                "artifact_bytes": kb.get("artifact_bytes", 0)}
    finally:
        inst.stop()
        shutil.rmtree(coord, ignore_errors=True)


def fleet_round(corpus, redis_port, limit):
    instances = []
    try:
        for n in NAMES:
            instances.append(Instance(n, corpus, limit if n in LIMITED else None, redis_port=redis_port))
        t0 = time.perf_counter()
        for i in instances:
            i.start(t0)
        all_ready = wait_all(instances, READY_S)
        t_all = time.perf_counter() - t0 if all_ready else None
        time.sleep(0.3)
        rows = []
        for i in instances:
            kb = i.kb() if i.proc.poll() is None else {}
            mem = kb.get("memory", {})
            rows.append({"name": i.name, "limit": i.limit, "ready_s": i.ready_s,
                         "exit": i.proc.poll(), "state": kb.get("state"), "reason": kb.get("reason", ""),
                         "decision": mem.get("decision"), "outcome": kb.get("outcome"),
                         "built_by": kb.get("built_by"), "kb_ms": kb.get("duration_ms"),
                         "predicted_build": mem.get("predicted_build_bytes", 0),
                         "build_source": mem.get("build_prediction_source"),
                         "headroom": mem.get("headroom_bytes", 0), "budget": mem.get("build_budget_bytes", 0),
                         "build_peak": mem.get("measured_build_peak_bytes", 0),
                         "load_peak": mem.get("measured_load_peak_bytes", 0),
                         "rss_peak": i.poller.peak, "cg_peak": i.cg.peak(),
                         "oom_kills": i.cg.oom_kills(), "failcnt": i.cg.failcnt(), "log": i.log.name})
        return t_all, rows
    finally:
        for i in instances:
            i.stop()


def main():
    if not os.path.exists(BIN):
        sys.exit(f"no binary at {BIN}; build first")
    if not shutil.which(REDIS):
        sys.exit(f"no {REDIS} on PATH")
    tmp = tempfile.mkdtemp(prefix="memgate-fleet-bench-")
    redis = None
    try:
        corpus = os.path.join(tmp, "corpus")
        t = time.perf_counter()
        size, files = make_corpus(corpus, CORPUS_MB)
        print(f"corpus: {files} files, {size / 1e6:.1f} MB of markdown and text ({time.perf_counter() - t:.1f} s "
              f"to generate) in {corpus}; cgroup v{memcg.version()}", flush=True)
        c = calibrate(corpus, tmp)
        print(f"calibration (alone, no limit): kb {c['outcome']} in {c['kb_ms']} ms, measured build peak "
              f"{mib(c['build_peak'])} (predicted {mib(c['predicted_build'])}, load {mib(c['predicted_load'])}); "
              f"process peak RSS {mib(c['process_peak'])}, cgroup peak {mib(c['cg_peak'])}, RSS when ready "
              f"{mib(c['rss_ready'])}, artifact {mib(c['artifact_bytes'])}", flush=True)
        limit = int(LIMIT_SHARE * c["process_peak"]) // 4096 * 4096
        if limit >= min(c["process_peak"], c["cg_peak"] or c["process_peak"]):
            sys.exit("the limit would not be below the build peak")
        print(f"limit for {', '.join(LIMITED)}: {mib(limit)} = {LIMIT_SHARE:.0%} of the process's build peak RSS", flush=True)
        redis, redis_port = start_redis(tmp)
        totals, all_rows = [], []
        for r in range(ROUNDS):
            if redis_cmd(redis_port, "FLUSHALL") != "+OK":
                raise RuntimeError("FLUSHALL failed")
            t_all, rows = fleet_round(corpus, redis_port, limit)
            totals.append(t_all)
            all_rows.append(rows)
            print(f"\nround {r + 1}: all 4 ready in " + (f"{t_all:.2f} s" if t_all else f"NOT within {READY_S}s"))
            for x in rows:
                lim = (f"limit {mib(x['limit'])}, cgroup peak {mib(x['cg_peak'])} = {x['cg_peak'] / x['limit']:.2f}x, "
                       if x["limit"] else f"no limit, cgroup peak {mib(x['cg_peak'])}, ")
                print(f"  {x['name']}: ready {x['ready_s'] and round(x['ready_s'], 2)} s, {lim}RSS peak "
                      f"{mib(x['rss_peak'])}, oom_kill {x['oom_kills']}, failcnt {x['failcnt']}; kb {x['state']} "
                      f"decision={x['decision']} outcome={x['outcome']} built_by={x['built_by']} "
                      f"({x['kb_ms']} ms; predicted build {mib(x['predicted_build'])} [{x['build_source']}], "
                      f"headroom {mib(x['headroom'])}, measured build {mib(x['build_peak'])} / load "
                      f"{mib(x['load_peak'])}){' exit ' + str(x['exit']) if x['exit'] is not None else ''}"
                      f"{' reason: ' + x['reason'] if x['reason'] else ''}", flush=True)
        done = [t for t in totals if t]
        print()
        print(f"{ROUNDS} rounds: all 4 ready median "
              + (f"{statistics.median(done):.2f} s (min {min(done):.2f}, max {max(done):.2f})" if done else "n/a")
              + f"; rounds with every instance ready {len(done)}/{ROUNDS}")
        for n in LIMITED:
            xs = [x for rows in all_rows for x in rows if x["name"] == n]
            print(f"{n}: OOM kills {sum(max(0, x['oom_kills']) for x in xs)} (goal 0), cgroup peak / limit "
                  f"median {statistics.median(x['cg_peak'] / limit for x in xs):.2f}, max "
                  f"{max(x['cg_peak'] / limit for x in xs):.2f}; outcomes "
                  f"{','.join(str(x['outcome']) for x in xs)}")
        keep = os.environ.get("KEEP_LOGS")
        if not keep:
            for rows in all_rows:
                for x in rows:
                    os.unlink(x["log"])
    finally:
        if redis:
            stop_process(redis)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
