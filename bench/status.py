#!/usr/bin/python3
"""The status endpoint of a supervised pool (`spawn-fcgi -w --status-socket`):

  cost:   supervisor CPU time (utime + stime from /proc/PID/stat) per status
          request with 64 children, for each format (text, JSON,
          Prometheus); target < 1 ms
  idle:   voluntary context switches of the supervisor with 8 children and
          a status socket open (and one client served before), over an idle
          period; target 0

spawn-fcgi 1.6.4 has no status at all: the peer column is empty.  The
children are php-cgi (the state application of the build when php-cgi is
missing).

Standalone: bench/status.py [--quick] OURS [PEER]
"""

import os
import socket
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, BENCH_DIR)

import benchlib  # noqa: E402
from benchlib import print_table, proc_stat  # noqa: E402

PHP_CGI = "/usr/bin/php-cgi"
COST_CHILDREN = 64
IDLE_CHILDREN = 8
COST_TARGET_MS = 1.0
FULL = {"requests": 300, "idle": 10.0}
QUICK = {"requests": 30, "idle": 1.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Failure(Exception):
    pass


def application(ours):
    if os.access(PHP_CGI, os.X_OK):
        return [PHP_CGI]
    app = os.path.join(os.path.dirname(os.path.dirname(ours)), "tests", "app",
                       "fcgi-state-app")
    if os.access(app, os.X_OK):
        return [app]
    raise Failure(f"neither {PHP_CGI} nor {app} can be run")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        rest = f.read().decode("ascii", "replace")
    fields = rest[rest.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def voluntary_switches(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise Failure(f"no voluntary_ctxt_switches for {pid}")


def ask(path, target):
    """One request; the body."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200 "):
        raise Failure(f"{target}: {head[:80]!r}")
    return body


def children_of(pid):
    return [p for p in benchlib.pids() if (st := proc_stat(p)) and st[1] == pid and st[0] != "Z"]


class Pool:
    def __init__(self, ours, workdir, n, name):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.status = os.path.join(self.dir, "st")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PHP_FCGI_MAX_REQUESTS": "0"}
        self.proc = subprocess.Popen(
            [ours, "-w", "-F", str(n), "-s", os.path.join(self.dir, "sock"),
             f"--status-socket={self.status}", "--"] + application(ours),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"{name}: spawn-fcgi exited: {self.proc.returncode}")
            if os.path.exists(self.status) and len(children_of(self.proc.pid)) == n:
                break
            if time.monotonic() > deadline:
                raise Failure(f"{name}: {n} children did not start within 60 s")
            time.sleep(0.05)
        # Every child has reached exec and the status reports them all.
        while ask(self.status, "/status?json").count(b'"pid"') != n:
            if time.monotonic() > deadline:
                raise Failure(f"{name}: the status does not show {n} children")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def measure_cost(ours, workdir, cfg):
    pool = Pool(ours, workdir, COST_CHILDREN, "cost")
    try:
        costs = {}
        for fmt, target in (("text", "/status"), ("json", "/status?json"),
                            ("prometheus", "/metrics")):
            ask(pool.status, target)
            before = cpu_ticks(pool.proc.pid)
            size = 0
            for _ in range(cfg["requests"]):
                size = len(ask(pool.status, target))
            spent = cpu_ticks(pool.proc.pid) - before
            costs[fmt] = (spent / CLK_TCK * 1000 / cfg["requests"], size)
        return costs
    finally:
        pool.stop()


def measure_idle(ours, workdir, cfg):
    pool = Pool(ours, workdir, IDLE_CHILDREN, "idle")
    try:
        ask(pool.status, "/metrics")
        # The client that was just served is gone; nothing is due any more.
        time.sleep(0.2)
        before = voluntary_switches(pool.proc.pid)
        time.sleep(cfg["idle"])
        return voluntary_switches(pool.proc.pid) - before
    finally:
        pool.stop()


def run(peer, ours, quick, workdir):
    cfg = QUICK if quick else FULL
    print(f"== status: the status endpoint, {COST_CHILDREN} children for its cost, "
          f"{IDLE_CHILDREN} for idle wake-ups (spawn-fcgi 1.6.4 has no status)")
    benchlib.note_load()
    try:
        costs = measure_cost(ours, workdir, cfg)
        wakeups = measure_idle(ours, workdir, cfg)
    except Failure as e:
        return [], [f"status: {e}"]
    table = [[fmt, f"{ms:.3f} ms", f"{size} bytes"] for fmt, (ms, size) in costs.items()]
    print_table(table, ["format", f"supervisor CPU per request ({cfg['requests']} requests)",
                        "answer"])
    print(f"  idle: {wakeups} voluntary context switches in {cfg['idle']:g} s "
          f"with the status socket open")
    worst = max(ms for ms, _ in costs.values())
    return [
        ["status", f"supervisor CPU per status request, {COST_CHILDREN} children (worst format)",
         "-", f"{worst:.3f} ms", "-", f"< {COST_TARGET_MS:g} ms",
         "yes" if worst < COST_TARGET_MS else "NO"],
        ["status", f"idle wakeups in {cfg['idle']:g} s with a status socket",
         "-", wakeups, "-", "0", "yes" if wakeups == 0 else "NO"],
    ], []


if __name__ == "__main__":
    sys.exit(benchlib.standalone_main("status", run, sys.argv[1:]))
