#!/usr/bin/python3
"""Reloads with requests in flight, real applications behind nginx: failed
requests of ours (`spawn-fcgi -w`, SIGHUP) against the peers, which can only
be restarted (multiwatch under 1.6.4 -n: stop and start; 1.6.4 -F: stop the
children and run it again), in one run.

Applications: fcgiwrap running a CGI script, php-cgi and a Go net/http/fcgi
program (tests/app/sleep-app.go, built by meson when go is found).  Per
reload, 16 requests that each sleep 1 s are sent at once; once the
children hold their connections, the tool reloads; every response is
counted.  fcgiwrap aborts a running CGI on any signal: only a supervisor
that retires a child once it holds no accepted connection keeps every one.

Standalone: bench/reload.py [--quick] OURS [PEER]
"""

import os
import shutil
import signal
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request

BENCH_DIR = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

import benchlib  # noqa: E402
import supervise  # noqa: E402
from benchlib import print_table  # noqa: E402
from pm import accepted_inodes  # noqa: E402
from supervise import (Failure, Procs, alive, children_running, log_tail,  # noqa: E402
                       make_site, reap_orphans, run_sections, wait_for)

PHP_CGI = supervise.PHP_CGI
FCGIWRAP = "/usr/sbin/fcgiwrap"
MULTIWATCH = supervise.MULTIWATCH

CHILDREN = 8
CONCURRENT = 16
SLEEP_MS = 1000
STOP_TIMEOUT = 60  # ours: an old child still busy after this gets the stop signal anyway

FULL = {"reloads": 5}
QUICK = {"reloads": 1}

APP_DIR = os.path.join(REPO, "tests", "app")


def go_app(ours):
    """The Go application of the build our binary comes from, else of this
    repository's build/."""
    parent = os.path.dirname(ours)
    builds = [os.path.join(REPO, "build")]
    if os.path.basename(parent) == "src":
        builds.insert(0, os.path.dirname(parent))
    paths = [os.path.join(b, "tests", "app", "go-sleep-app") for b in builds]
    return next((p for p in paths if os.access(p, os.X_OK)), paths[0])


def applications(ours):
    """name -> (argv, page, stop signal, environment)."""
    env = supervise.php_env()
    return {
        "fcgiwrap": ([FCGIWRAP], "sleep.cgi", "TERM", env),
        "php-cgi": ([PHP_CGI], "sleep.php", "TERM", env),
        "go": ([go_app(ours)], "sleep", "TERM", env),
    }


# ---------------------------------------------------------------------------
# the three ways of running N children of an application


class Tool:
    """Runs argv N times on sock; start(), kids(), reload(), stop()."""

    def __init__(self, procs, binary, sock, argv, stop_signal, env):
        self.procs, self.bin, self.sock = procs, binary, sock
        self.argv, self.sig, self.env = argv, stop_signal, env
        self.exe = os.path.realpath(argv[0])
        self.p = None
        procs.sockets.add(sock)

    def wait_children(self, exclude=(), timeout=30):
        def ok():
            if self.p.poll() is not None:
                raise Failure(f"{self.label} exited ({self.p.returncode}): {log_tail(self.p)}")
            kids = self.kids()
            return kids if len(kids) == CHILDREN and not set(kids) & set(exclude) else None
        return wait_for(ok, timeout, f"{CHILDREN} children of {self.label}")

    def kids(self):
        return children_running(self.p.pid, self.exe)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=STOP_TIMEOUT + 15)
            except Exception:
                raise Failure(f"{self.label} did not stop on SIGTERM")


class Ours(Tool):
    label = "ours -w"
    how = "SIGHUP"

    def start(self):
        self.p = self.procs.start([self.bin, "-w", "-F", CHILDREN, "-s", self.sock,
                                   "--stop-signal", self.sig, "--stop-timeout", STOP_TIMEOUT,
                                   "--", *self.argv], env=self.env)
        self.wait_children()

    def reload(self, old):
        """SIGHUP; done once CHILDREN new children run and none of old."""
        self.p.send_signal(signal.SIGHUP)
        self.wait_children(exclude=old, timeout=STOP_TIMEOUT * CHILDREN)


class Multiwatch(Tool):
    label = "multiwatch"
    how = "stop + start"

    def start(self):
        self.p = self.procs.start([self.bin, "-n", "-s", self.sock, "--", MULTIWATCH,
                                   "-f", CHILDREN, "-s", self.sig, "--", *self.argv],
                                  env=self.env)
        self.wait_children()

    def reload(self, old):
        self.stop()
        self.start()


class Forked(Tool):
    label = "1.6.4 -F"
    how = "kill children + start"

    def start(self):
        pidfile = self.sock + ".pid"
        p = self.procs.start([self.bin, "-F", CHILDREN, "-s", self.sock, "-P", pidfile,
                              "--", *self.argv], env=self.env)
        rc = p.wait(timeout=30)
        with open(pidfile) as f:
            self.pids = [int(x) for x in f.read().split()]
        if rc != 0 or len(self.pids) != CHILDREN:
            raise Failure(f"{self.label}: exit {rc}, {len(self.pids)} PIDs: {log_tail(p)}")
        self.p = p
        wait_for(lambda: all(self._runs(k) for k in self.pids), 30,
                 f"{CHILDREN} children of {self.label}")

    def _runs(self, pid):
        try:
            return os.readlink(f"/proc/{pid}/exe") == self.exe
        except OSError:
            return False

    def kids(self):
        return [p for p in self.pids if alive(p)]

    def stop(self):
        for pid in self.pids:
            try:
                os.kill(pid, getattr(signal, "SIG" + self.sig))
            except ProcessLookupError:
                pass

        def gone():
            reap_orphans(keep=self.procs.popen_pids())
            return not self.kids()
        wait_for(gone, STOP_TIMEOUT, f"the children of {self.label} to exit")

    def reload(self, old):
        self.stop()
        self.start()


# ---------------------------------------------------------------------------
# requests in flight


def get(url):
    """"ok" for a complete answer, "bad" for another one (nginx's 502),
    "error" when the connection broke."""
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            body = r.read()
            return "ok" if r.status == 200 and body.startswith(b"slept ") else "bad"
    except urllib.error.HTTPError:
        return "bad"
    except (urllib.error.URLError, OSError):
        return "error"


def held(pids, sock):
    inodes = accepted_inodes(sock)
    n = 0
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                n += 1
    return n


def reload_rounds(tool, url, cfg):
    """cfg["reloads"] times: CONCURRENT requests at once; once the children
    hold at least CHILDREN of them (or all of them, for an application that
    serves many at a time), reload and wait until it is done, then for every
    answer.  Returns the counts and the reload times."""
    counts = {"ok": 0, "bad": 0, "error": 0}
    took = []
    lock = threading.Lock()

    def one():
        r = get(url)
        with lock:
            counts[r] += 1
    tool.start()
    for _ in range(cfg["reloads"]):
        old = tool.kids()
        threads = [threading.Thread(target=one, daemon=True) for _ in range(CONCURRENT)]
        for t in threads:
            t.start()
        wait_for(lambda: held(old, tool.sock) >= CHILDREN, 30, "requests in flight")
        t0 = time.monotonic()
        tool.reload(old)
        took.append(time.monotonic() - t0)
        for t in threads:
            t.join(timeout=180)
    tool.stop()
    counts["total"] = sum(counts.values())
    return counts, took


def section_app(procs, nginx, peer, ours_bin, socks, cfg, name, app):
    argv, page, sig, env = app
    if not os.access(argv[0], os.X_OK):
        raise Failure(f"{argv[0]} not found (fcgiwrap, php8.2-cgi; the Go application "
                      "is built by meson when golang-go is installed)")
    tools = [("ours", Ours(procs, ours_bin, socks["ours"], argv, sig, env)),
             ("multiwatch", Multiwatch(procs, peer, socks["mw"], argv, sig, env)),
             ("1.6.4 -F", Forked(procs, peer, socks["peer"], argv, sig, env))]
    print(f"-- {name}: {cfg['reloads']} reload(s), each with {CONCURRENT} requests of "
          f"{SLEEP_MS} ms in flight, {CHILDREN} children, stop signal SIG{sig}")
    res = {}
    for tname, t in tools:
        base = nginx.url(t.sock).rsplit("/", 1)[0]
        res[tname] = reload_rounds(t, f"{base}/{page}?ms={SLEEP_MS}", cfg)
        procs.end_all(keep={nginx.p.pid})
    table = []
    for tname, t in tools:
        c, took = res[tname]
        failed = c["bad"] + c["error"]
        table.append([tname, t.how, c["total"], c["ok"], c["bad"], c["error"],
                      f"{100.0 * failed / max(c['total'], 1):.1f} %",
                      f"{statistics.median(took):.2f} s"])
    print_table(table, ["tool", "reload", "requests", "ok", "bad answers", "socket errors",
                        "failed", "reload took (median)"])
    o = res["ours"][0]
    ofail = o["bad"] + o["error"]
    rows = []
    for tname in ("multiwatch", "1.6.4 -F"):
        p = res[tname][0]
        rows.append(["reload", f"{name}: failed requests, {cfg['reloads']} reloads with "
                     f"{CONCURRENT} x {SLEEP_MS} ms in flight (peer: {tname} restart)",
                     f"{p['bad'] + p['error']}/{p['total']}", f"{ofail}/{o['total']}", "-",
                     "ours = 0", "yes" if ofail == 0 and o["total"] > 0 else "NO"])
    return rows


def run(peer, ours_bin, quick, workdir):
    """Returns (summary rows, list of failures)."""
    cfg = QUICK if quick else FULL
    print(f"== reload: ours -w (SIGHUP) vs multiwatch and 1.6.4 -F restarts, requests in "
          f"flight, fcgiwrap, php-cgi and Go behind nginx")
    benchlib.note_load()
    missing = [p for p in (MULTIWATCH, supervise.NGINX) if not os.access(p, os.X_OK)]
    if missing:
        return [], [f"reload: not installed: {', '.join(missing)} (packages multiwatch, nginx)"]
    benchlib.become_subreaper()
    d, www = make_site(workdir, "reload-", {})
    for page in ("sleep.php", "sleep.cgi"):
        shutil.copy(os.path.join(APP_DIR, page), www)
    procs = Procs(d)
    socks = {k: os.path.join(d, k + ".sock") for k in ("ours", "mw", "peer")}
    apps = applications(ours_bin)
    return run_sections("reload", procs, www, socks, lambda nginx: [
        (name, lambda name=name, app=app: section_app(procs, nginx, peer, ours_bin, socks,
                                                     cfg, name, app))
        for name, app in apps.items()])


if __name__ == "__main__":
    sys.exit(benchlib.standalone_main("reload", run, sys.argv[1:]))
