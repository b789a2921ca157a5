#!/usr/bin/python3
"""Time until 64 php-cgi children are running: `spawn-fcgi -F 64 -s SOCK -P PIDFILE -- php-cgi`.

Wall time from the start of the spawner until it exits (fork mode: it exits
once it has started, and checked, the children). After each run the php-cgi
processes are counted through /proc (executable is php-cgi and fd 0 is the
listening socket), at the spawner's exit and again after a short pause; then
every process of the run is ended and the socket directory removed. Runs of
the peer and ours alternate.

Standalone: bench/children.py [--quick] OURS [PEER]
"""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import pids, print_table, proc_stat, socket_inode

CHILDREN = 64
TARGET_RATIO = 1.1
PHP_CGI = "/usr/bin/php-cgi"

FULL = {"runs": 15}
QUICK = {"runs": 2}
SETTLE = 0.3      # seconds the children must stay alive after all of them run php-cgi
WAIT_ALL = 3.0    # seconds after the spawner's exit to wait for all of them to run php-cgi

class Failure(Exception):
    pass


def _fd0_inode(pid):
    try:
        link = os.readlink(f"/proc/{pid}/fd/0")
    except OSError:
        return None
    if link.startswith("socket:[") and link.endswith("]"):
        return int(link[8:-1])
    return None


def _exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def count_alive(sock_ino, php_exe):
    """php-cgi processes whose fd 0 is the socket; also processes on the socket at all."""
    on_socket, php = 0, 0
    if sock_ino is None:
        return 0, 0
    for pid in pids():
        if _fd0_inode(pid) == sock_ino:
            on_socket += 1
            if _exe(pid) == php_exe:
                php += 1
    return php, on_socket


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _targets(sock_ino):
    """Processes of this run: our (re-parented) children and processes on the socket."""
    me = os.getpid()
    found = set()
    for pid in pids():
        if pid == me:
            continue
        st = proc_stat(pid)
        if (st is not None and st[1] == me) or (sock_ino is not None
                                                and _fd0_inode(pid) == sock_ino):
            found.add(pid)
    return found


def end_processes(sock_ino, timeout=5.0):
    """SIGTERM, then SIGKILL after half the timeout; returns pids still there."""
    deadline = time.monotonic() + timeout
    killed_hard = False
    while True:
        _reap()
        pids = _targets(sock_ino)
        if not pids:
            return set()
        now = time.monotonic()
        if now > deadline:
            return pids
        sig = signal.SIGTERM
        if now > deadline - timeout / 2:
            sig, killed_hard = signal.SIGKILL, True
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.05 if not killed_hard else 0.02)


def read_pidfile(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split() if x.isdigit()]
    except OSError:
        return []


def one_run(tool, workdir, env, php_exe):
    d = tempfile.mkdtemp(prefix="children-", dir=workdir)
    sock, pidfile, log = (os.path.join(d, n) for n in ("s", "pid", "log"))
    res = {"ok": False}
    sock_ino = None
    try:
        with open(log, "w") as out:
            t0 = time.perf_counter_ns()
            try:
                p = subprocess.Popen([tool, "-F", str(CHILDREN), "-s", sock, "-P", pidfile,
                                      "--", PHP_CGI],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                     close_fds=True)
            except OSError as e:
                res["log"] = f"cannot start {tool}: {e}"
                return res
            try:
                rc = p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = None
            t1 = time.perf_counter_ns()
        res["ns"] = t1 - t0
        res["rc"] = rc
        sock_ino = socket_inode(sock)
        res["alive_exit"], res["on_socket"] = count_alive(sock_ino, php_exe)
        if res["alive_exit"] == CHILDREN:
            res["all_ns"] = res["ns"]
        end = t1 + int(WAIT_ALL * 1e9)
        while "all_ns" not in res and time.perf_counter_ns() < end:
            time.sleep(0.01)
            php, _ = count_alive(sock_ino, php_exe)
            if php == CHILDREN:
                res["all_ns"] = time.perf_counter_ns() - t0
        time.sleep(SETTLE)
        res["alive_later"], _ = count_alive(sock_ino, php_exe)
        res["pidfile"] = len(read_pidfile(pidfile))
        with open(log, errors="replace") as f:
            res["log"] = f.read()
        res["ok"] = rc == 0 and res["alive_later"] == CHILDREN
        return res
    finally:
        left = end_processes(sock_ino)
        if left:
            res["ok"] = False
            res["left"] = sorted(left)
        shutil.rmtree(d, ignore_errors=True)


def _ms(ns):
    return f"{ns / 1e6:.1f} ms"



def run(peer, ours, quick, workdir):
    cfg = QUICK if quick else FULL
    failures, rows = [], []
    print(f"== children: spawn-fcgi -F {CHILDREN} -s SOCK -P PIDFILE -- {PHP_CGI} "
          f"({cfg['runs']} runs each, alternating)")
    benchlib.note_load()
    if not os.access(PHP_CGI, os.X_OK):
        failures.append(f"children: {PHP_CGI} not found (package php8.2-cgi)")
        rows.append(["children", "spawner exit (median)", "n/a", "n/a", "-",
                     f"<= {TARGET_RATIO}x", "n/a"])
        return rows, failures
    php_exe = os.path.realpath(PHP_CGI)
    if not benchlib.become_subreaper():
        print("  note: could not become a child subreaper; children are found through /proc only")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PHP_FCGI_CHILDREN", "PHP_FCGI_MAX_REQUESTS")}
    tools = [("1.6.4", peer), ("ours", ours)]
    results = {name: [] for name, _ in tools}
    broken = set()
    for i in range(cfg["runs"]):
        order = tools if i % 2 == 0 else tools[::-1]
        for name, tool in order:
            if name in broken:
                continue
            r = one_run(tool, workdir, env, php_exe)
            results[name].append(r)
            if not r["ok"]:
                broken.add(name)
                why = (f"exit status {r.get('rc')}, php-cgi alive at the end of the run: "
                       f"{r.get('alive_later')}/{CHILDREN}")
                if r.get("left"):
                    why += f", processes that would not end: {r['left']}"
                log = (r.get("log") or "").strip().splitlines()
                if log:
                    why += f"; last output: {log[-1][:200]!r}"
                failures.append(f"children/{name}: run {i + 1}: {why}")

    table = []
    for name, _ in tools:
        for j, r in enumerate(results[name]):
            table.append([name, j + 1, _ms(r["ns"]) if "ns" in r else "n/a", r.get("rc"),
                          f"{r.get('on_socket')}/{CHILDREN}", f"{r.get('alive_exit')}/{CHILDREN}",
                          _ms(r["all_ns"]) if "all_ns" in r else "n/a",
                          f"{r.get('alive_later')}/{CHILDREN}", r.get("pidfile"),
                          "ok" if r["ok"] else "FAILED"])
    print_table(table, ["tool", "run", "spawner exit", "status", "fd0=socket at exit",
                        "php-cgi at exit", f"{CHILDREN} php-cgi running",
                        f"alive {SETTLE:g} s later", "PID-file lines", "verified"])

    def stat_of(name, key):
        vals = [r[key] for r in results[name] if r["ok"] and key in r]
        if name in broken or len(vals) != len(results[name]) or not vals:
            return None
        return vals

    med, med_all = {}, {}
    stable = []
    for name, _ in tools:
        v, a = stat_of(name, "ns"), stat_of(name, "all_ns")
        if v:
            med[name] = statistics.median(v)
        if a:
            med_all[name] = statistics.median(a)
        stable.append([name] + ([_ms(statistics.median(v)), _ms(statistics.fmean(v)), _ms(min(v)),
                                 _ms(max(v))] if v else ["n/a"] * 4)
                      + [_ms(med_all[name]) if name in med_all else "n/a"])
    print_table(stable, ["tool", "exit median", "exit mean", "exit min", "exit max",
                         f"{CHILDREN} running median"])

    # The target compares the moment all 64 children are running *and* the
    # spawner has said so: the later of its exit and the 64th exec.  1.6.4
    # exits before most children have exec'd (it checks only the first), so
    # its exit time alone would compare a promise with a fact.
    ready = {}
    for name, _ in tools:
        both = [max(r["ns"], r["all_ns"]) for r in results[name]
                if r["ok"] and "ns" in r and "all_ns" in r]
        if name not in broken and both and len(both) == len(results[name]):
            ready[name] = statistics.median(both)
    p, o = ready.get("1.6.4"), ready.get("ours")
    rows.append(["children", f"{CHILDREN} running and reported (median)",
                 _ms(p) if p else "n/a", _ms(o) if o else "n/a",
                 f"{o / p:.2f}x" if p and o else "-", f"<= {TARGET_RATIO}x",
                 ("yes" if o / p <= TARGET_RATIO else "NO") if p and o else "n/a"])
    for label, table_ in ((f"{CHILDREN} php-cgi running (median)", med_all),
                          ("spawner exit (median)", med)):
        pa, oa = table_.get("1.6.4"), table_.get("ours")
        rows.append(["children", label, _ms(pa) if pa else "n/a", _ms(oa) if oa else "n/a",
                     f"{oa / pa:.2f}x" if pa and oa else "-", "(info)", "-"])
    return rows, failures


if __name__ == "__main__":
    sys.exit(benchlib.standalone_main("children", run, sys.argv[1:]))
