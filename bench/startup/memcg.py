"""Memory cgroups for the start-up benchmarks: one per child process, created and
removed by the benchmark, read for the child's peak and its OOM kills.

cgroup v2 when /sys/fs/cgroup has cgroup.controllers listing memory (the child
goes under this process's own v2 cgroup); else v1, under this process's memory
cgroup as /proc/self/cgroup names it (/sys/fs/cgroup/memory/<path>/<name>).
A child is put in by a preexec_fn that writes its pid to cgroup.procs, so it is
charged from its first page. Not thread-safe; stdlib only.
"""
import os
import time

ROOT = "/sys/fs/cgroup"


def _read(path):
    with open(path) as f:
        return f.read()


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _self_paths():
    """(v2 path, v1 memory path) of this process, from /proc/self/cgroup."""
    v2 = v1 = None
    for line in _read("/proc/self/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def version():
    """2 or 1 (which hierarchy new cgroups go in), or 0 when neither is usable."""
    try:
        if "memory" in _read(os.path.join(ROOT, "cgroup.controllers")).split():
            return 2
    except OSError:
        pass
    return 1 if os.path.exists(os.path.join(ROOT, "memory", "memory.limit_in_bytes")) else 0


class MemCgroup:
    """One memory cgroup. limit: bytes, or None for no limit."""

    def __init__(self, name, limit=None):
        self.version = version()
        v2, v1 = _self_paths()
        if self.version == 2:
            parent = os.path.join(ROOT, (v2 or "/").lstrip("/"))
            try:  # the memory controller must be on for the parent's children
                if "memory" not in _read(os.path.join(parent, "cgroup.subtree_control")).split():
                    _write(os.path.join(parent, "cgroup.subtree_control"), "+memory")
            except OSError as e:
                raise RuntimeError(f"cannot enable the memory controller under {parent}: {e}")
        elif self.version == 1:
            parent = os.path.join(ROOT, "memory", (v1 or "/").lstrip("/"))
            if not os.path.exists(os.path.join(parent, "memory.limit_in_bytes")):
                parent = os.path.join(ROOT, "memory")  # the container's cgroup mounted as the root
        else:
            raise RuntimeError("no memory cgroup hierarchy under " + ROOT)
        self.path = os.path.join(parent, f"{name}-{os.getpid()}-{int(time.time() * 1000) % 10**8}")
        os.mkdir(self.path)
        self.limit = limit
        if limit is not None:
            if self.version == 2:
                _write(self._f("memory.max"), str(limit))
                if os.path.exists(self._f("memory.swap.max")):
                    _write(self._f("memory.swap.max"), "0")
            else:
                _write(self._f("memory.limit_in_bytes"), str(limit))
                if os.path.exists(self._f("memory.memsw.limit_in_bytes")):
                    _write(self._f("memory.memsw.limit_in_bytes"), str(limit))

    def _f(self, name):
        return os.path.join(self.path, name)

    def preexec(self):
        """For subprocess.Popen(preexec_fn=...): moves the child in before exec."""
        procs = self._f("cgroup.procs")
        return lambda: _write(procs, str(os.getpid()))

    def peak(self):
        """The cgroup's peak charge in bytes (v1 max_usage_in_bytes, v2 memory.peak), or 0."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(_read(self._f(name)).split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def oom_kills(self):
        """OOM kills inside the cgroup (oom_kill in memory.events / memory.oom_control)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in _read(self._f(name)).splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        except (OSError, ValueError):
            pass
        return -1  # the kernel does not count them here

    def failcnt(self):
        """How often a charge hit the limit (v1: memory and memsw failcnt; v2: memory.events max). -1 if unknown."""
        try:
            if self.version == 1:  # memsw is charged first when it is limited too
                n = int(_read(self._f("memory.failcnt")))
                if os.path.exists(self._f("memory.memsw.failcnt")):
                    n += int(_read(self._f("memory.memsw.failcnt")))
                return n
            for line in _read(self._f("memory.events")).splitlines():
                k, _, v = line.partition(" ")
                if k == "max":
                    return int(v)
        except (OSError, ValueError):
            pass
        return -1

    def remove(self):
        """Removes the cgroup once its processes are gone; bounded to ~5 s."""
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                time.sleep(0.1)
        return False
