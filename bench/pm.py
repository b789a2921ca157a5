#!/usr/bin/python3
"""Process manager: spawn-fcgi with php-cgi against php-fpm 8.2, behind the
same nginx with wrk, on the same PHP scripts, in one run.

  burst:      from the minimum to 64 connections of 50 ms requests, at most
              16 children: time until 16 children are busy, failed requests,
              most children seen
  scale-down: after the burst, time until the pool is back at its minimum
  first:      ondemand from 0 children: latency of the first request
  steady:     64 connections, dynamic at its maximum: supervisor CPU and
              requests/s against static mode
  throughput: requests/s and total PSS of the pool, php-fpm pm=static

"Busy" is measured from outside, the same way for both: a child is busy
while one of its fds is a connection accepted from the pool's socket (the
connected sockets bound to the socket's path in /proc/net/unix).

php-fpm runs from its own config in a temporary directory (`php-fpm8.2 -y
FILE -F`), never as the system service.  The rows that need spawn-fcgi's
process manager print "n/a (no --pm)" when `spawn-fcgi --help` does not
list --pm.

Standalone: bench/pm.py [--quick] OURS [PEER]
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, BENCH_DIR)

import benchlib  # noqa: E402
import supervise  # noqa: E402
from benchlib import print_table, proc_stat  # noqa: E402
from supervise import Failure, Load, Nginx, Procs, fcgi_hello, log_tail, wait_for  # noqa: E402

PHP_CGI = supervise.PHP_CGI
PHP_FPM = shutil.which("php-fpm8.2") or "/usr/sbin/php-fpm8.2"

BURST_CHILDREN = 16
BURST_CONNECTIONS = 64
BURST_TARGET_MS = 300.0
BURST_TARGET_RATIO = 0.5
IDLE_TIMEOUT = 2          # seconds, ours --idle-timeout and php-fpm's process_idle_timeout
SCALE_DOWN_SLACK = 1.0    # target: back at the minimum within idle timeout + this
FIRST_TARGET_MS = 5.0     # first request: at most php-cgi's own start + this
STEADY_CHILDREN = 4
STEADY_CPU_TARGET = 1.0   # % of one core
STEADY_RANGE = (0.97, 1.03)
NO_PM = "n/a (no --pm)"

FULL = {"burst_load": 3, "scale_wait": 25.0, "first_samples": 10, "steady": 5,
        "pairs": 4, "load": 2}
QUICK = {"burst_load": 1, "scale_wait": 4.0, "first_samples": 2, "steady": 1,
         "pairs": 1, "load": 1}

HELLO_PHP = supervise.HELLO_PHP
BURST_PHP = '<?php usleep(50000); echo "hello ", getmypid(), "\\n";'

FPM_CONF = """\
[global]
pid = {dir}/php-fpm.pid
error_log = {dir}/php-fpm.log
daemonize = no

[bench]
listen = {sock}
listen.backlog = 1024
{user}
pm = {pm}
pm.max_children = {max}
{pm_lines}
pm.max_requests = 0
"""


# ---------------------------------------------------------------------------
# the pool, seen from outside


def children_of(pid):
    """Live children of pid (of any of its threads)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for k in kids:
            st = proc_stat(k)
            if st is not None and st[0] != "Z":
                out.append(k)
    return out


def accepted_inodes(sock):
    """Inodes of the connections accepted from the unix socket at sock: the
    connected sockets that carry its path (state 03 in /proc/net/unix; a
    connection still waiting to be accepted has inode 0)."""
    found = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == sock and parts[5] == "03" and parts[6] != "0":
                found.add(int(parts[6]))
    return found


def holds_any(pid, inodes):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and int(link[8:-1]) in inodes:
            return True
    return False


def busy_and_total(server):
    kids = children_of(server.main)
    inodes = accepted_inodes(server.sock)
    return sum(1 for k in kids if inodes and holds_any(k, inodes)), len(kids)


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read()
    fields = rest[rest.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pool_pss_kb(server):
    return sum(pss_kb(p) for p in [server.main] + children_of(server.main))


# ---------------------------------------------------------------------------
# the two process managers


class Ours:
    """spawn-fcgi -w -F MAX [--pm=... --min-children=M --idle-timeout=S] -- php-cgi"""

    def __init__(self, procs, tool, sock, pm, max_children, min_children=None, env=None):
        self.procs, self.tool, self.sock = procs, tool, sock
        self.pm, self.max, self.min = pm, max_children, min_children
        self.env = env
        self.label = f"spawn-fcgi {pm}"
        procs.sockets.add(sock)

    def start(self):
        pm_args = []
        if self.pm != "-w":
            pm_args = [f"--pm={self.pm}"]
            if self.min is not None and self.pm == "dynamic":
                pm_args.append(f"--min-children={self.min}")
            if self.pm != "static":
                pm_args.append(f"--idle-timeout={IDLE_TIMEOUT}")
        env = supervise.php_env()
        env.update(self.env or {})
        self.p = self.procs.start([self.tool, "-w", "-F", self.max, *pm_args, "-s", self.sock,
                                   "--", PHP_CGI], env=env)
        self.wait_pool(self.initial())

    def initial(self):
        return {"ondemand": 0, "dynamic": self.min}.get(self.pm, self.max)

    @property
    def main(self):
        return self.p.pid

    def wait_pool(self, n):
        def ok():
            if self.p.poll() is not None:
                raise Failure(f"{self.label} exited ({self.p.returncode}): {log_tail(self.p)}")
            return os.path.exists(self.sock) and len(children_of(self.main)) == n
        wait_for(ok, 20, f"{n} children of {self.label}")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                raise Failure(f"{self.label} did not stop on SIGTERM")
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass


class Fpm(Ours):
    """php-fpm8.2 -y CONF -F, its own config in the temporary directory."""

    def __init__(self, procs, sock, pm, max_children, min_children=None):
        super().__init__(procs, PHP_FPM, sock, pm, max_children, min_children)
        self.label = f"php-fpm {pm}"

    def start(self):
        d = os.path.dirname(self.sock)
        lines = {
            "static": "",
            "dynamic": (f"pm.start_servers = {self.min}\npm.min_spare_servers = {self.min}\n"
                        f"pm.max_spare_servers = {self.min}"),
            "ondemand": f"pm.process_idle_timeout = {IDLE_TIMEOUT}s",
        }[self.pm]
        root = os.geteuid() == 0
        conf = os.path.join(d, f"php-fpm-{self.pm}.conf")
        with open(conf, "w") as f:
            f.write(FPM_CONF.format(dir=d, sock=self.sock, pm=self.pm, max=self.max,
                                    pm_lines=lines,
                                    user="user = root\ngroup = root" if root else ""))
        self.p = self.procs.start([PHP_FPM, "-y", conf, "-F", *(["-R"] if root else [])])
        self.wait_pool(self.initial())


def have_pm(ours):
    try:
        r = subprocess.run([ours, "--help"], capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = r.stdout + r.stderr
    return all(o in text for o in ("--pm", "--min-children", "--idle-timeout"))


# ---------------------------------------------------------------------------
# the benchmarks


def bench_burst(procs, nginx, server, cfg, d):
    """From the pool's minimum to 64 connections of 50 ms requests: ms until
    16 children are busy, the most children seen, failed requests; then
    seconds from the end of the load until the pool is back at its minimum
    (None: not within cfg["scale_wait"])."""
    server.start()
    url = nginx.url(server.sock).replace("hello.php", "burst.php")
    t0 = time.monotonic()
    load = Load(procs, d, url, cfg["burst_load"], conns=BURST_CONNECTIONS)
    reached, most, most_busy = None, 0, 0
    while load.p is None or load.p.poll() is None:
        busy, total = busy_and_total(server)
        most, most_busy = max(most, total), max(most_busy, busy)
        if reached is None and busy >= BURST_CHILDREN:
            reached = (time.monotonic() - t0) * 1e3
        if load.p is None and time.monotonic() - t0 > load.seconds:
            break
        time.sleep(0.005 if reached is None else 0.05)
    r = load.result()
    t_end = time.monotonic()
    minimum = server.initial()
    back = None
    while time.monotonic() - t_end < cfg["scale_wait"]:
        n = len(children_of(server.main))
        most = max(most, n)
        if n <= minimum:
            back = time.monotonic() - t_end
            break
        time.sleep(0.02)
    left = len(children_of(server.main))
    server.stop()
    return {"busy_ms": reached, "most": most, "most_busy": most_busy,
            "failed": r["bad"] + r["errors"], "total": r["total"], "down_s": back,
            "left": left}


def bench_first(make, script, cfg):
    """ms from the request to the answer, ondemand from 0 children, a fresh
    pool per sample."""
    out = []
    for _ in range(cfg["first_samples"]):
        server = make()
        server.start()
        t0 = time.perf_counter_ns()
        pid = fcgi_hello(server.sock, script)
        ms = (time.perf_counter_ns() - t0) / 1e6
        server.stop()
        if pid is None:
            raise Failure(f"{server.label}: the first request got no answer")
        out.append(ms)
    return out


def php_cgi_start_ms(script, cfg):
    """php-cgi's own start-up, one request and exit (CGI mode), in ms."""
    env = supervise.php_env()
    env.update({"REDIRECT_STATUS": "200", "SCRIPT_FILENAME": script,
                "REQUEST_METHOD": "GET", "GATEWAY_INTERFACE": "CGI/1.1"})
    out = []
    for _ in range(max(3, cfg["first_samples"])):
        t0 = time.perf_counter_ns()
        subprocess.run([PHP_CGI], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def bench_steady(procs, nginx, server, cfg, d):
    """Requests/s and the supervisor's CPU (% of one core) under steady load,
    after a 1 s warm-up that grows a dynamic pool to its maximum."""
    server.start()
    url = nginx.url(server.sock)
    Load(procs, d, url, 1).result()
    c0, t0 = cpu_ticks(server.main), time.monotonic()
    r = Load(procs, d, url, cfg["steady"]).result()
    c1, t1 = cpu_ticks(server.main), time.monotonic()
    children = len(children_of(server.main))
    server.stop()
    cpu = 100.0 * (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)
    return {"rps": r["ok"] / r["seconds"], "cpu": cpu, "failed": r["bad"] + r["errors"],
            "children": children}


def bench_throughput(procs, nginx, tools, cfg, d):
    """Requests/s in pairs (supervise.requests_in_pairs), then the total PSS
    of each pool (main process and children) after its load."""
    for t in tools.values():
        t.start()
    res, failed, ratios = supervise.requests_in_pairs(procs, nginx, tools, cfg, d)
    pss = {}
    for name, t in tools.items():
        pss[name] = pool_pss_kb(t)
        t.stop()
    return res, failed, ratios, pss


# ---------------------------------------------------------------------------
# sections


def _ms(v):
    return "n/a" if v is None else f"{v:.1f} ms"


def _no_pm(names, width):
    """Table lines for pools that need --pm, when ours has none."""
    return [[name, NO_PM] + ["-"] * (width - 2) for name in names]


def _s(v, limit):
    return f"> {limit:g} s" if v is None else f"{v:.2f} s"


def section_burst(procs, nginx, ours_bin, pm, socks, cfg, d):
    servers = [("php-fpm dynamic", Fpm(procs, socks["fpm"], "dynamic", BURST_CHILDREN, 1)),
               ("php-fpm ondemand", Fpm(procs, socks["fpm"], "ondemand", BURST_CHILDREN))]
    if pm:
        servers += [("spawn-fcgi dynamic",
                     Ours(procs, ours_bin, socks["ours"], "dynamic", BURST_CHILDREN, 1)),
                    ("spawn-fcgi ondemand",
                     Ours(procs, ours_bin, socks["ours"], "ondemand", BURST_CHILDREN))]
    print(f"-- burst: {BURST_CONNECTIONS} connections of 50 ms requests for "
          f"{cfg['burst_load']} s, at most {BURST_CHILDREN} children, from the minimum "
          f"(dynamic: 1, ondemand: 0); then until back at the minimum (idle timeout "
          f"{IDLE_TIMEOUT} s; php-fpm dynamic retires one idle child per second)")
    res = {}
    for name, s in servers:
        res[name] = bench_burst(procs, nginx, s, cfg, d)
    def reached(r):
        return f"> {cfg['burst_load'] * 1000} ms" if r["busy_ms"] is None else _ms(r["busy_ms"])
    table = [[name, reached(r), r["most_busy"], r["most"], f"{r['failed']}/{r['total']}",
              _s(r["down_s"], cfg["scale_wait"]), r["left"]] for name, r in res.items()]
    if not pm:
        table += _no_pm(["spawn-fcgi dynamic", "spawn-fcgi ondemand"], 7)
    print_table(table, ["pool", f"{BURST_CHILDREN} busy after", "most busy",
                        "most children", "failed", "back at minimum after",
                        "children left"])

    fd, fo = res["php-fpm dynamic"], res["php-fpm ondemand"]
    rows = []
    if pm:
        od = res["spawn-fcgi dynamic"]
        o, p = od["busy_ms"], fd["busy_ms"]
        met = (o is not None and o <= BURST_TARGET_MS and od["failed"] == 0 and
               (p is None or o <= BURST_TARGET_RATIO * p) and od["most"] <= BURST_CHILDREN)
        rows.append(["pm", f"burst: {BURST_CHILDREN} busy, dynamic (peer: php-fpm dynamic)",
                     reached(fd), reached(od), f"{o / p:.2f}x" if o and p else "-",
                     f"<= {BURST_TARGET_MS:g} ms, <= {BURST_TARGET_RATIO}x, 0 failed",
                     "yes" if met else "NO"])
        oo = res["spawn-fcgi ondemand"]
        rows.append(["pm", f"burst: {BURST_CHILDREN} busy, ondemand (peer: php-fpm ondemand)",
                     reached(fo), reached(oo),
                     f"{oo['busy_ms'] / fo['busy_ms']:.2f}x"
                     if oo["busy_ms"] and fo["busy_ms"] else "-", "(info)", "-"])
        limit = IDLE_TIMEOUT + SCALE_DOWN_SLACK
        for mode in ("dynamic", "ondemand"):
            o, p = res[f"spawn-fcgi {mode}"], res[f"php-fpm {mode}"]
            met = o["down_s"] is not None and o["down_s"] <= limit
            rows.append(["pm", f"scale-down to the minimum, {mode} (peer: php-fpm {mode})",
                         _s(p["down_s"], cfg["scale_wait"]), _s(o["down_s"], cfg["scale_wait"]),
                         f"{o['down_s'] / p['down_s']:.2f}x" if o["down_s"] and p["down_s"]
                         else "-", f"<= {limit:g} s", "yes" if met else "NO"])
    else:
        rows.append(["pm", f"burst: {BURST_CHILDREN} busy, dynamic (peer: php-fpm dynamic)",
                     reached(fd), NO_PM, "-", f"<= {BURST_TARGET_MS:g} ms", "n/a"])
        rows.append(["pm", "scale-down to the minimum (peer: php-fpm dynamic)",
                     _s(fd["down_s"], cfg["scale_wait"]), NO_PM, "-",
                     f"<= {IDLE_TIMEOUT + SCALE_DOWN_SLACK:g} s", "n/a"])
    return rows


def section_first(procs, ours_bin, pm, socks, cfg, script):
    print(f"-- first request: ondemand from 0 children, {cfg['first_samples']} samples, "
          "FastCGI straight to the socket; php-cgi's own start-up (CGI mode, one request)")
    php = statistics.median(php_cgi_start_ms(script, cfg))
    res = {"php-fpm ondemand": bench_first(
        lambda: Fpm(procs, socks["fpm"], "ondemand", BURST_CHILDREN), script, cfg)}
    if pm:
        res["spawn-fcgi ondemand"] = bench_first(
            lambda: Ours(procs, ours_bin, socks["ours"], "ondemand", BURST_CHILDREN),
            script, cfg)
    table = [["php-cgi alone (start, request, exit)", _ms(php), "-", "-"]]
    table += [[name, _ms(statistics.median(v)), _ms(min(v)), _ms(max(v))]
              for name, v in res.items()]
    if not pm:
        table += _no_pm(["spawn-fcgi ondemand"], 4)
    print_table(table, ["", "median", "min", "max"])
    f = statistics.median(res["php-fpm ondemand"])
    if not pm:
        return [["pm", "first request from 0 children, ondemand (peer: php-fpm ondemand)",
                 _ms(f), NO_PM, "-", f"<= php-cgi start + {FIRST_TARGET_MS:g} ms", "n/a"]]
    o = statistics.median(res["spawn-fcgi ondemand"])
    return [["pm", "first request from 0 children, ondemand (peer: php-fpm ondemand)",
             _ms(f), _ms(o), f"{o / f:.2f}x",
             f"<= {php + FIRST_TARGET_MS:.1f} ms (php-cgi {php:.1f} + {FIRST_TARGET_MS:g})",
             "yes" if o <= php + FIRST_TARGET_MS else "NO"]]


def section_steady(procs, nginx, ours_bin, pm, socks, cfg, d):
    n = STEADY_CHILDREN
    print(f"-- steady: {supervise.CONNECTIONS} connections, {n} children at most, "
          f"{cfg['steady']} s after a 1 s warm-up: requests/s and supervisor CPU")
    servers = [("php-fpm dynamic", Fpm(procs, socks["fpm"], "dynamic", n, 1))]
    if pm:
        servers += [("spawn-fcgi static", Ours(procs, ours_bin, socks["ours"], "static", n)),
                    ("spawn-fcgi dynamic", Ours(procs, ours_bin, socks["ours"], "dynamic", n, 1))]
    res = {name: bench_steady(procs, nginx, s, cfg, d) for name, s in servers}
    table = [[name, f"{r['rps']:.0f}", f"{r['cpu']:.2f} %", r["children"], r["failed"]]
             for name, r in res.items()]
    if not pm:
        table += _no_pm(["spawn-fcgi static", "spawn-fcgi dynamic"], 5)
    print_table(table, ["pool", "requests/s", "supervisor CPU", "children at the end",
                        "failed"])
    if not pm:
        return [["pm", "steady: supervisor CPU, dynamic at its maximum", "-", NO_PM, "-",
                 f"<= {STEADY_CPU_TARGET:g} %", "n/a"],
                ["pm", "steady: requests/s dynamic vs static", "-", NO_PM, "-",
                 f"{STEADY_RANGE[0]}-{STEADY_RANGE[1]}x", "n/a"]]
    st, dy, fp = res["spawn-fcgi static"], res["spawn-fcgi dynamic"], res["php-fpm dynamic"]
    ratio = dy["rps"] / st["rps"]
    lo, hi = STEADY_RANGE
    return [["pm", "steady: supervisor CPU, dynamic at its maximum (peer: php-fpm master)",
             f"{fp['cpu']:.2f} %", f"{dy['cpu']:.2f} %", "-", f"<= {STEADY_CPU_TARGET:g} %",
             "yes" if dy["cpu"] <= STEADY_CPU_TARGET else "NO"],
            ["pm", "steady: requests/s dynamic (peer column: our static)",
             f"{st['rps']:.0f}", f"{dy['rps']:.0f}", f"{ratio:.2f}x", f"{lo}-{hi}x",
             "yes" if lo <= ratio <= hi and dy["failed"] == 0 else "NO"]]


def section_throughput(procs, nginx, ours_bin, socks, cfg, d):
    n = STEADY_CHILDREN
    print(f"-- throughput: {n} children, php-fpm pm=static against spawn-fcgi -w -F {n} "
          f"php-cgi (PHP_FCGI_MAX_REQUESTS=0), {supervise.CONNECTIONS} connections, "
          f"{cfg['pairs']} pairs of {cfg['load']} s runs (ABBA); PSS of each pool after")
    tools = {"php-fpm": Fpm(procs, socks["fpm"], "static", n),
             "spawn-fcgi": Ours(procs, ours_bin, socks["ours"], "-w", n)}
    res, failed, ratios, pss = bench_throughput(procs, nginx, tools, cfg, d)
    table = [[name, " ".join(f"{x:.0f}" for x in v), f"{statistics.median(v):.0f}",
              failed[name], f"{pss[name]} kB"] for name, v in res.items()]
    print_table(table, ["pool", "requests/s per run", "median", "failed",
                        "PSS (main + children)"])
    print(f"  ratio spawn-fcgi/php-fpm per pair: {' '.join(f'{r:.3f}' for r in ratios)}")
    r = statistics.median(ratios)
    p, o = pss["php-fpm"], pss["spawn-fcgi"]
    return [["pm", f"requests/s, {n} children (peer: php-fpm static; median of pairs)",
             f"{statistics.median(res['php-fpm']):.0f}",
             f"{statistics.median(res['spawn-fcgi']):.0f}", f"{r:.2f}x", ">= 1.00x",
             "yes" if r >= 1.0 and failed["spawn-fcgi"] == 0 else "NO"],
            ["pm", f"total PSS of the pool, {n} children (peer: php-fpm static)",
             f"{p} kB", f"{o} kB", f"{o / p:.2f}x" if p else "-", "<= 1.00x",
             "yes" if p and o <= p else "NO"]]


def run(peer, ours_bin, quick, workdir):
    """Returns (summary rows, list of failures).  peer is not used: the
    peer here is php-fpm."""
    cfg = QUICK if quick else FULL
    pm = have_pm(ours_bin)
    print(f"== pm: spawn-fcgi + php-cgi against php-fpm 8.2, behind nginx, wrk"
          f"{'' if pm else '; spawn-fcgi has no --pm: its process manager rows are n/a'}")
    benchlib.note_load()
    missing = [p for p in (PHP_CGI, PHP_FPM, supervise.NGINX) if not os.access(p, os.X_OK)]
    if not supervise.WRK:
        missing.append("wrk")
    if missing:
        return [], [f"pm: not installed: {', '.join(missing)} "
                    "(packages php8.2-cgi, php8.2-fpm, nginx, wrk)"]
    benchlib.become_subreaper()

    d, www = supervise.make_site(workdir, "pm-", {"hello.php": HELLO_PHP,
                                                  "burst.php": BURST_PHP})
    script = os.path.join(www, "hello.php")
    procs = Procs(d)
    socks = {k: os.path.join(d, k + ".sock") for k in ("ours", "fpm")}
    return supervise.run_sections("pm", procs, www, socks, lambda nginx: [
        ("burst", lambda: section_burst(procs, nginx, ours_bin, pm, socks, cfg, d)),
        ("first", lambda: section_first(procs, ours_bin, pm, socks, cfg, script)),
        ("steady", lambda: section_steady(procs, nginx, ours_bin, pm, socks, cfg, d)),
        ("throughput", lambda: section_throughput(procs, nginx, ours_bin, socks, cfg, d)),
    ])


if __name__ == "__main__":
    sys.exit(benchlib.standalone_main("pm", run, sys.argv[1:]))
