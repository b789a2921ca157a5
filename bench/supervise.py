#!/usr/bin/python3
"""Supervising mode (`spawn-fcgi -w`) against the classic setups, in one run:
multiwatch under spawn-fcgi 1.6.4 (`spawn-fcgi -n -s SOCK -- multiwatch -f N
-- php-cgi`) and spawn-fcgi 1.6.4 in fork mode (`-F N`).

  reload:   failed requests out of all during reloads under load (64
            connections, nginx -> php-cgi): ours SIGHUP, the peers can
            only be stopped and started again
  respawn:  time from killing the only child to the replacement answering
  idle:     voluntary context switches and VmRSS of the supervisor with 8
            children over an idle period
  requests: throughput nginx -> php-cgi, children run by ours -w vs 1.6.4 -F

Everything is on loopback and unix sockets in a private temporary directory;
every run is bounded in time and every process started is ended.

Standalone: bench/supervise.py [--quick] OURS [PEER]
"""

import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import math

BENCH_DIR = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, BENCH_DIR)

import benchlib  # noqa: E402
from benchlib import pids, print_table, proc_stat, socket_inode  # noqa: E402


PHP_CGI = "/usr/bin/php-cgi"
MULTIWATCH = os.environ.get("BENCH_MULTIWATCH", "/usr/bin/multiwatch")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk")

CONNECTIONS = 64
CHILDREN = 4
IDLE_CHILDREN = 8
IDLE_INSTANCES = 5  # of ours and of multiwatch: VmRSS differs by +-5 % between instances
RESPAWN_TARGET_MS = 50.0
THROUGHPUT_RANGE = (0.95, 1.05)

FULL = {"reloads": 5, "reload_every": 1.0, "respawn_samples": 30, "idle": 10.0,
        "pairs": 8, "load": 2.0}
QUICK = {"reloads": 2, "reload_every": 0.4, "respawn_samples": 2, "idle": 1.0,
         "pairs": 1, "load": 1.0}

HELLO_PHP = '<?php echo "hello ", getmypid(), "\\n";'
HELLO_RE = re.compile(rb"hello (\d+)\n")

WRK_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  if status == 200 and string.match(body, "^hello %d+\n$") then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format("RESULT ok=%d bad=%d requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d\n",
    o, b, summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout))
end
"""

NGINX_CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
{user_line}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type text/plain;
{servers}
}}
"""

NGINX_SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param REDIRECT_STATUS 200;
            fastcgi_pass unix:{sock};
        }}
    }}
"""


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------
# processes


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def status_value(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name == key:
                    return int(value.split()[0])
    except OSError:
        pass
    return None


def children_running(parent, exe):
    """Live children of parent whose executable is exe (exec done)."""
    out = []
    for pid in pids():
        st = proc_stat(pid)
        if st is None or st[0] == "Z" or st[1] != parent:
            continue
        try:
            if os.readlink(f"/proc/{pid}/exe") == exe:
                out.append(pid)
        except OSError:
            pass
    return sorted(out)


def reap_orphans(keep=()):
    """Reap exited children of ours (orphans handed to us as subreaper)
    that no Popen object waits for."""
    me = os.getpid()
    for pid in pids():
        if pid in keep:
            continue
        st = proc_stat(pid)
        if st is not None and st[0] == "Z" and st[1] == me:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


class Procs:
    """Every process started here; end_all() ends them and whatever runs on
    their sockets (children orphaned by 1.6.4 come back to us)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.popens = []
        self.sockets = set()
        self._n = 0

    def start(self, argv, env=None, stdout=None):
        self._n += 1
        log = os.path.join(self.workdir, f"log-{self._n}")
        with open(log, "w") as out:
            p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                 stdout=stdout or out, stderr=out, env=env, close_fds=True)
        p.log = log
        self.popens.append(p)
        return p

    def popen_pids(self):
        return {p.pid for p in self.popens}

    def _targets(self, keep):
        me = os.getpid()
        inodes = {socket_inode(s) for s in self.sockets} - {None}
        found = set()
        for pid in pids():
            if pid == me or pid in keep:
                continue
            st = proc_stat(pid)
            if st is None or st[0] == "Z":
                continue
            if st[1] == me:
                found.add(pid)
                continue
            try:
                link = os.readlink(f"/proc/{pid}/fd/0")
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                found.add(pid)
        return found

    def end_all(self, keep=(), timeout=5.0):
        """Ends every process but those in keep (pids of our own Popen
        objects, e.g. nginx, which then stay in the list)."""
        deadline = time.monotonic() + timeout
        sig = signal.SIGTERM
        while True:
            for p in self.popens:
                p.poll()
            reap_orphans(keep={p.pid for p in self.popens if p.returncode is None})
            pids = self._targets(set(keep))
            if not pids:
                break
            if time.monotonic() > deadline - timeout / 2:
                sig = signal.SIGKILL
            if time.monotonic() > deadline:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        for p in self.popens:
            if p.pid in keep:
                continue
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.popens = [p for p in self.popens if p.returncode is None]


def log_tail(p, n=300):
    try:
        with open(p.log, errors="replace") as f:
            text = f.read().strip()
    except OSError:
        return ""
    return text if len(text) <= n else "..." + text[-n:]


# ---------------------------------------------------------------------------
# the three ways of running N php-cgi on a socket


def php_env():
    """The environment of every spawner: php-cgi's recycling after 500
    requests (PHP_FCGI_MAX_REQUESTS) is switched off, so that the numbers
    show the spawners and not php-cgi ending itself (1.6.4 would never
    replace such a child), and each php-cgi is a single process."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PHP_FCGI_CHILDREN", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                        "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}
    env["PHP_FCGI_MAX_REQUESTS"] = "0"
    return env


class Ours:
    """spawn-fcgi -w -F N -s SOCK -- php-cgi; reload: SIGHUP."""
    label = "ours -w"

    def __init__(self, procs, tool, sock, n, extra=()):
        self.procs, self.tool, self.sock, self.n, self.extra = procs, tool, sock, n, extra
        self.php = os.path.realpath(PHP_CGI)
        self.p = None
        procs.sockets.add(sock)

    def start(self, env=None):
        self.p = self.procs.start([self.tool, "-w", "-F", self.n, *self.extra, "-s", self.sock,
                                   "--", PHP_CGI], env={**php_env(), **(env or {})})
        self.wait_children()

    def wait_children(self, exclude=()):
        def ok():
            if self.p.poll() is not None:
                raise Failure(f"{self.label} exited ({self.p.returncode}): {log_tail(self.p)}")
            kids = children_running(self.p.pid, self.php)
            return kids if len(kids) == self.n and not set(kids) & set(exclude) else None
        return wait_for(ok, 20, f"{self.n} php-cgi children of {self.label}")

    @property
    def supervisor(self):
        return self.p.pid

    def kids(self):
        return children_running(self.p.pid, self.php)

    def reload(self):
        self.p.send_signal(signal.SIGHUP)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                raise Failure(f"{self.label} did not stop on SIGTERM")


class Multiwatch(Ours):
    """spawn-fcgi(1.6.4) -n -s SOCK -- multiwatch -f N -- php-cgi;
    reload: stop it (SIGTERM) and start it again."""
    label = "multiwatch"

    def __init__(self, procs, peer, sock, n, extra=()):
        super().__init__(procs, peer, sock, n, extra)

    def start(self):
        self.p = self.procs.start([self.tool, "-n", "-s", self.sock, "--", MULTIWATCH,
                                   "-f", self.n, *self.extra, "--", PHP_CGI], env=php_env())
        self.wait_children()

    def reload(self):
        self.stop()
        self.start()


class Forked:
    """spawn-fcgi(1.6.4) -F N -s SOCK -P PIDFILE -- php-cgi (the spawner
    exits); reload: SIGTERM the children, wait for them, start again."""
    label = "1.6.4 -F"

    def __init__(self, procs, peer, sock, n):
        self.procs, self.tool, self.sock, self.n = procs, peer, sock, n
        self.pidfile = sock + ".pid"
        self.pids = []
        procs.sockets.add(sock)

    def start(self):
        p = self.procs.start([self.tool, "-F", self.n, "-s", self.sock, "-P", self.pidfile,
                              "--", PHP_CGI], env=php_env())
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.label} did not exit")
        with open(self.pidfile) as f:
            self.pids = [int(x) for x in f.read().split()]
        if rc != 0 or len(self.pids) != self.n:
            raise Failure(f"{self.label}: exit {rc}, {len(self.pids)} PIDs: {log_tail(p)}")

    def kids(self):
        return [p for p in self.pids if alive(p)]

    def reload(self):
        self.stop()
        self.start()

    def stop(self):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

        def gone():
            reap_orphans(keep=self.procs.popen_pids())
            return not any(alive(p) for p in self.pids)
        wait_for(gone, 15, f"{self.label} children to stop")


# ---------------------------------------------------------------------------
# nginx and load


class Nginx:
    def __init__(self, procs, workdir, root, socks):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.ports = {}
        servers = []
        for sock in socks:
            port = free_port()
            self.ports[sock] = port
            servers.append(NGINX_SERVER.format(port=port, root=root, sock=sock))
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, user_line=user, servers="".join(servers)))
        self.p = procs.start([NGINX, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"),
                              "-c", conf, "-g", "daemon off;"])
        for port in self.ports.values():
            wait_for(lambda: self.p.poll() is not None or can_connect(port), 15,
                     f"nginx on port {port}")
            if self.p.poll() is not None:
                raise Failure(f"nginx exited: {log_tail(self.p)}")

    def url(self, sock):
        return f"http://127.0.0.1:{self.ports[sock]}/hello.php"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Load:
    """CONNECTIONS concurrent clients for a bounded time; result():
    {"ok", "bad", "errors", "total", "seconds"}. wrk (with a Lua check of
    every answer) when installed, else Python threads."""

    def __init__(self, procs, workdir, url, seconds, conns=CONNECTIONS):
        # wrk takes whole seconds only.
        self.seconds = seconds = max(1, math.ceil(seconds))
        if WRK:
            script = os.path.join(workdir, "check.lua")
            with open(script, "w") as f:
                f.write(WRK_LUA)
            self.out = os.path.join(workdir, f"wrk-{time.monotonic_ns()}")
            self.fo = open(self.out, "w")
            self.p = procs.start([WRK, "-t", "2", "-c", conns, "-d", f"{seconds}s",
                                  "--timeout", "5s", "-s", script, url], stdout=self.fo)
        else:
            self.p = None
            self.counts = {"ok": 0, "bad": 0, "errors": 0}
            self.lock = threading.Lock()
            self.t0 = time.monotonic()
            self.threads = [threading.Thread(target=self._client, args=(url,), daemon=True)
                            for _ in range(conns)]
            for t in self.threads:
                t.start()

    def _client(self, url):
        host, _, rest = url[len("http://"):].partition("/")
        h, _, port = host.partition(":")
        deadline = self.t0 + self.seconds
        conn = None
        while time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(h, int(port), timeout=5)
                conn.request("GET", "/" + rest)
                r = conn.getresponse()
                body = r.read()
                key = "ok" if r.status == 200 and HELLO_RE.fullmatch(body) else "bad"
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                key = "errors"
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.counts[key] += 1

    def result(self):
        if self.p is None:
            for t in self.threads:
                t.join(timeout=self.seconds + 10)
            c = dict(self.counts)
            c["total"] = c["ok"] + c["bad"] + c["errors"]
            c["seconds"] = time.monotonic() - self.t0
            return c
        try:
            self.p.wait(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Failure("wrk did not finish")
        self.fo.close()
        with open(self.out) as f:
            text = f.read()
        m = re.search(r"^RESULT (.*)$", text, re.M)
        if not m:
            raise Failure(f"no result from wrk (exit {self.p.returncode}): {text[-300:]!r} "
                          f"{log_tail(self.p)}")
        v = {k: int(x) for k, x in (kv.split("=") for kv in m.group(1).split())}
        errors = v["connect"] + v["read"] + v["write"] + v["timeout"]
        return {"ok": v["ok"], "bad": v["bad"], "errors": errors,
                "total": v["ok"] + v["bad"] + errors, "seconds": v["duration_us"] / 1e6}


# ---------------------------------------------------------------------------
# a FastCGI request straight to the socket


def _record(rtype, content):
    return struct.pack("!BBHHBx", 1, rtype, 1, len(content), 0) + content


def _nv(k, v):
    k, v = k.encode(), v.encode()
    return bytes([len(k)]) + bytes([len(v)]) + k + v


def fcgi_hello(sock, script, timeout=10):
    """GET script from the php-cgi on sock; returns the pid that answered,
    or None when the connection broke (e.g. the child was just killed)."""
    params = b"".join(_nv(k, v) for k, v in {
        "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "SCRIPT_FILENAME": script,
        "SCRIPT_NAME": "/hello.php", "REQUEST_URI": "/hello.php", "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1", "REDIRECT_STATUS": "200"}.items())
    msg = (_record(1, struct.pack("!HB5x", 1, 0)) + _record(4, params) + _record(4, b"")
           + _record(5, b""))
    out = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock)
            s.sendall(msg)
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                buf += chunk
                while len(buf) >= 8:
                    _, rtype, _, clen, plen = struct.unpack("!BBHHB", buf[:7])
                    if len(buf) < 8 + clen + plen:
                        break
                    if rtype == 6:
                        out += buf[8:8 + clen]
                    elif rtype == 3:
                        m = HELLO_RE.search(out)
                        return int(m.group(1)) if m else None
                    buf = buf[8 + clen + plen:]
    except OSError:
        return None


# ---------------------------------------------------------------------------
# the benchmarks


def bench_reload(procs, nginx, tools, cfg, workdir):
    """Failed requests during cfg["reloads"] reloads under load, per tool."""
    out = {}
    for name, t in tools:
        t.start()
        before = set(t.kids())
        load = Load(procs, workdir, nginx.url(t.sock),
                    0.5 + cfg["reloads"] * cfg["reload_every"] + 0.5)
        time.sleep(0.5)
        took = []
        for _ in range(cfg["reloads"]):
            t0 = time.monotonic()
            t.reload()
            took.append(time.monotonic() - t0)
            time.sleep(max(0.0, cfg["reload_every"] - took[-1]))
        r = load.result()
        if isinstance(t, Ours):
            t.wait_children(exclude=before)
        after = set(t.kids())
        r["replaced"] = len(after) == t.n and not (after & before)
        t.stop()
        out[name] = r
    return out


def replacement_exec_ns(parent, victim, exe, t0, deadline):
    """Nanoseconds from t0 until a child of parent other than victim runs
    exe (its exec is done): the spawner's own part of a respawn."""
    path = f"/proc/{parent}/task/{parent}/children"
    while True:
        with open(path) as f:
            kids = [int(k) for k in f.read().split()]
        for k in kids:
            if k == victim:
                continue
            try:
                if os.readlink(f"/proc/{k}/exe") == exe:
                    return time.perf_counter_ns() - t0
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise Failure(f"no replacement of {victim} ran {exe} within 10 s")


def bench_respawn(ours, mw, cfg, script):
    """Per tool, (ms until the replacement runs php-cgi, ms until it
    answered) from SIGKILL of the only child; samples of the two tools
    alternate."""
    res = {"ours": [], "multiwatch": []}
    for t in (ours, mw):
        t.start()
        if fcgi_hello(t.sock, script) is None:
            raise Failure(f"{t.label}: php-cgi does not answer")
    order = [("ours", ours), ("multiwatch", mw)]
    for i in range(cfg["respawn_samples"]):
        # Both tools count a death within 1 s of the start as a quick
        # failure; let the children get older than that.
        time.sleep(1.1)
        # The first kill after the pause meets a colder machine than the
        # second: take turns at being first.
        for name, t in (order if i % 2 == 0 else order[::-1]):
            victim = t.kids()[0]
            t0 = time.perf_counter_ns()
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 10
            # The request waits in the socket's backlog until the
            # replacement accepts it, so sending it once the replacement
            # runs php-cgi (about 1 ms, against 13 ms of php-cgi start-up)
            # does not delay the answer.
            exec_ns = replacement_exec_ns(t.supervisor, victim, t.php, t0, deadline)
            while True:
                pid = fcgi_hello(t.sock, script)
                if pid is not None and pid != victim:
                    break
                if time.monotonic() > deadline:
                    raise Failure(f"{t.label}: no replacement answered within 10 s")
            res[name].append((exec_ns / 1e6, (time.perf_counter_ns() - t0) / 1e6))
    for t in (ours, mw):
        t.stop()
    return res


def bench_idle(groups, notify_path, cfg):
    """Context switches and VmRSS of idle supervisors: groups maps a name to
    the instances to start (the one named with NOTIFY_SOCKET gets it, as
    under systemd).  Returns, per name, the worst switch counts and the
    median VmRSS of its instances."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        every = [(name, t) for name, ts in groups.items() for t in ts]
        for name, t in every:
            if "NOTIFY_SOCKET" in name:
                t.start(env={"NOTIFY_SOCKET": notify_path})
            else:
                t.start()
        time.sleep(0.5)

        def switches(t):
            return (status_value(t.supervisor, "voluntary_ctxt_switches"),
                    status_value(t.supervisor, "nonvoluntary_ctxt_switches"))
        before = [switches(t) for _, t in every]
        time.sleep(cfg["idle"])
        per = {name: [] for name in groups}
        for (name, t), b in zip(every, before):
            v, nv = switches(t)
            if None in (v, nv) or None in b:
                raise Failure(f"{name}: the supervisor is gone")
            per[name].append((v - b[0], nv - b[1], status_value(t.supervisor, "VmRSS")))
        for _, t in every:
            t.stop()
    return {name: {"voluntary": max(x[0] for x in rs), "nonvoluntary": max(x[1] for x in rs),
                   "rss_kb": statistics.median(x[2] for x in rs),
                   "rss_all": [x[2] for x in rs]}
            for name, rs in per.items()}


def requests_in_pairs(procs, nginx, tools, cfg, workdir):
    """Requests per second of two running pools, tools = {peer name: tool,
    our name: tool}.  After a warm-up run of each, short runs of the two
    alternate in pairs (ABBA order), and each pair gives a ratio ours/peer:
    the load of the machine drifts, but within a pair it is about the same.
    Returns (requests/s per name, failed requests per name, ratios)."""
    peer, ours = list(tools)
    res = {name: [] for name in tools}
    bad = {name: 0 for name in tools}
    ratios = []
    for t in tools.values():
        Load(procs, workdir, nginx.url(t.sock), 1.0).result()
    for i in range(cfg["pairs"]):
        names = list(tools) if i % 2 == 0 else list(tools)[::-1]
        rps = {}
        for name in names:
            r = Load(procs, workdir, nginx.url(tools[name].sock), cfg["load"]).result()
            rps[name] = r["ok"] / r["seconds"]
            res[name].append(rps[name])
            bad[name] += r["bad"] + r["errors"]
        ratios.append(rps[ours] / rps[peer])
    return res, bad, ratios


def bench_requests(procs, nginx, ours, forked, cfg, workdir):
    """Requests per second, ours against 1.6.4, in pairs."""
    tools = {"1.6.4": forked, "ours": ours}
    for t in tools.values():
        t.start()
    out = requests_in_pairs(procs, nginx, tools, cfg, workdir)
    for t in tools.values():
        t.stop()
    return out


def _ms(v):
    return f"{v:.1f} ms"


def run(peer, ours_bin, quick, workdir):
    """Returns (summary rows, list of failures)."""
    cfg = QUICK if quick else FULL
    rows, failures = [], []
    print(f"== supervise: ours -w vs multiwatch (under 1.6.4 -n) and 1.6.4 -F, php-cgi behind "
          f"nginx, {CONNECTIONS} connections ({'wrk' if WRK else 'python clients'})")
    benchlib.note_load()
    missing = [p for p in (PHP_CGI, MULTIWATCH, NGINX) if not os.access(p, os.X_OK)]
    if missing:
        failures.append(f"supervise: not installed: {', '.join(missing)} "
                        "(packages php8.2-cgi, multiwatch, nginx)")
        return rows, failures
    if not WRK:
        print("  note: wrk not installed (apt-get install wrk): Python clients instead")
    benchlib.become_subreaper()

    d, www = make_site(workdir, "supervise-", {"hello.php": HELLO_PHP})
    script = os.path.join(www, "hello.php")
    procs = Procs(d)
    socks = {k: os.path.join(d, k + ".sock") for k in ("ours", "mw", "peer")}
    return run_sections("supervise", procs, www, socks, lambda nginx: [
        ("reload", lambda: section_reload(procs, nginx, peer, ours_bin, socks, cfg, d)),
        ("respawn", lambda: section_respawn(procs, peer, ours_bin, socks, cfg, script)),
        ("idle", lambda: section_idle(procs, peer, ours_bin, socks, cfg)),
        ("requests", lambda: section_requests(procs, nginx, peer, ours_bin, socks, cfg, d)),
    ])


def make_site(workdir, prefix, pages):
    """A directory for one benchmark and its web root www in it, with the
    pages {name: text}; returns (directory, www)."""
    d = tempfile.mkdtemp(prefix=prefix, dir=workdir)
    os.chmod(d, 0o755)
    www = os.path.join(d, "www")
    os.mkdir(www)
    for name, text in pages.items():
        with open(os.path.join(www, name), "w") as f:
            f.write(text)
    return d, www


def run_sections(bench, procs, www, socks, sections_of):
    """Starts one nginx in front of socks (serving www), runs each (name,
    function) of sections_of(nginx), ends every process of a section and
    removes its sockets after it, and at the end everything and the
    directory of procs.  Returns (summary rows, list of failures)."""
    rows, failures = [], []
    try:
        nginx = Nginx(procs, procs.workdir, www, socks.values())
        for name, fn in sections_of(nginx):
            try:
                rows += fn()
            except (Failure, OSError, subprocess.SubprocessError) as e:
                failures.append(f"{bench}/{name}: {e}")
            finally:
                procs.end_all(keep={nginx.p.pid})
                for s in socks.values():
                    for p in (s, s + ".pid"):
                        try:
                            os.unlink(p)
                        except FileNotFoundError:
                            pass
            sys.stdout.flush()
    finally:
        procs.end_all()
        shutil.rmtree(procs.workdir, ignore_errors=True)
    return rows, failures


def section_reload(procs, nginx, peer, ours_bin, socks, cfg, d):
    tools = [("ours", Ours(procs, ours_bin, socks["ours"], CHILDREN)),
             ("multiwatch", Multiwatch(procs, peer, socks["mw"], CHILDREN)),
             ("1.6.4 -F", Forked(procs, peer, socks["peer"], CHILDREN))]
    how = {"ours": "SIGHUP", "multiwatch": "stop + start", "1.6.4 -F": "kill children + start"}
    print(f"-- reload: {cfg['reloads']} reloads, one every {cfg['reload_every']:g} s, "
          f"{CHILDREN} php-cgi, {CONNECTIONS} connections")
    res = bench_reload(procs, nginx, tools, cfg, d)
    table = []
    for name, _ in tools:
        r = res[name]
        table.append([name, how[name], r["total"], r["ok"], r["bad"], r["errors"],
                      f"{100.0 * (r['bad'] + r['errors']) / max(r['total'], 1):.2f} %",
                      "yes" if r["replaced"] else "NO"])
    print_table(table, ["tool", "reload", "requests", "ok", "bad answers", "socket errors",
                        "failed", "all children new"])
    o = res["ours"]
    ofail = o["bad"] + o["errors"]
    rows = []
    for name in ("multiwatch", "1.6.4 -F"):
        p = res[name]
        rows.append(["supervise", f"reload: failed requests, {cfg['reloads']} reloads "
                     f"(peer: {name} restart)", f"{p['bad'] + p['errors']}/{p['total']}",
                     f"{ofail}/{o['total']}", "-", "ours = 0",
                     "yes" if ofail == 0 and o["total"] > 0 and o["replaced"] else "NO"])
    return rows


def section_respawn(procs, peer, ours_bin, socks, cfg, script):
    ours = Ours(procs, ours_bin, socks["ours"], 1, extra=("--restart-window", "1"))
    mw = Multiwatch(procs, peer, socks["mw"], 1, extra=("-t", "1000"))
    print(f"-- respawn: -F 1, SIGKILL the child; until the replacement runs php-cgi, then "
          f"FastCGI requests until it answers ({cfg['respawn_samples']} samples each, "
          "alternating)")
    res = bench_respawn(ours, mw, cfg, script)
    table = []
    for name, v in res.items():
        execs, answers = [x[0] for x in v], [x[1] for x in v]
        table.append([name, len(v), _ms(statistics.median(execs)),
                      _ms(statistics.median(answers)), _ms(min(answers)), _ms(max(answers))])
    print_table(table, ["tool", "samples", "php-cgi runs (median)", "answered (median)",
                        "answered min", "answered max"])

    def med(name, i):
        return statistics.median(x[i] for x in res[name])
    o, m = med("ours", 1), med("multiwatch", 1)
    oe, me = med("ours", 0), med("multiwatch", 0)
    met = o <= m and o < RESPAWN_TARGET_MS
    return [["supervise", "respawn until answered, median (peer: multiwatch)", _ms(m), _ms(o),
             f"{o / m:.2f}x", f"<= 1.00x, < {RESPAWN_TARGET_MS:g} ms", "yes" if met else "NO"],
            ["supervise", "respawn until the replacement runs php-cgi (the spawner's part)",
             _ms(me), _ms(oe), f"{oe / me:.2f}x", "(info)", "-"]]


def section_idle(procs, peer, ours_bin, socks, cfg):
    def sock(kind, i):
        return f"{socks[kind][:-len('.sock')]}-{i}.sock"
    groups = {
        "ours": [Ours(procs, ours_bin, sock("ours", i), IDLE_CHILDREN)
                 for i in range(IDLE_INSTANCES)],
        "multiwatch": [Multiwatch(procs, peer, sock("mw", i), IDLE_CHILDREN)
                       for i in range(IDLE_INSTANCES)],
        "ours, NOTIFY_SOCKET set": [Ours(procs, ours_bin, socks["peer"], IDLE_CHILDREN)],
    }
    print(f"-- idle: {IDLE_CHILDREN} php-cgi children each, {cfg['idle']:g} s without requests; "
          f"{IDLE_INSTANCES} instances of ours and of multiwatch (median VmRSS)")
    res = bench_idle(groups, os.path.join(procs.workdir, "notify"), cfg)
    table = [[k, v["voluntary"], v["nonvoluntary"], f"{v['rss_kb']:.0f} kB",
              " ".join(f"{x}" for x in v["rss_all"])] for k, v in res.items()]
    print_table(table, ["supervisor", "voluntary ctxt switches (max)", "nonvoluntary (max)",
                        "VmRSS (median)", "VmRSS of each (kB)"])
    o, m, n = res["ours"], res["multiwatch"], res["ours, NOTIFY_SOCKET set"]
    return [["supervise", f"idle wakeups in {cfg['idle']:g} s, {IDLE_CHILDREN} children "
             "(peer: multiwatch)", m["voluntary"], o["voluntary"], "-", "ours = 0",
             "yes" if o["voluntary"] == 0 and n["voluntary"] == 0 else "NO"],
            ["supervise", "supervisor VmRSS, median of instances (peer: multiwatch)",
             f"{m['rss_kb']:.0f} kB", f"{o['rss_kb']:.0f} kB",
             f"{o['rss_kb'] / m['rss_kb']:.2f}x", "<= 1.00x",
             "yes" if o["rss_kb"] <= m["rss_kb"] else "NO"],
            ["supervise", "supervisor VmRSS, ours with NOTIFY_SOCKET (libsystemd loaded)",
             f"{m['rss_kb']:.0f} kB", f"{n['rss_kb']:.0f} kB",
             f"{n['rss_kb'] / m['rss_kb']:.2f}x", "(info)", "-"]]


def section_requests(procs, nginx, peer, ours_bin, socks, cfg, d):
    ours = Ours(procs, ours_bin, socks["ours"], CHILDREN)
    forked = Forked(procs, peer, socks["peer"], CHILDREN)
    print(f"-- requests: nginx -> {CHILDREN} php-cgi, {CONNECTIONS} connections, warm-up, "
          f"then {cfg['pairs']} pairs of {cfg['load']:g} s runs, alternating (ABBA)")
    res, bad, ratios = bench_requests(procs, nginx, ours, forked, cfg, d)
    table = [[k, " ".join(f"{x:.0f}" for x in v), f"{statistics.median(v):.0f}", bad[k]]
             for k, v in res.items()]
    print_table(table, ["children run by", "requests/s per run", "median", "failed"])
    print(f"  ratio ours/1.6.4 per pair: {' '.join(f'{r:.3f}' for r in ratios)}")
    o, p = statistics.median(res["ours"]), statistics.median(res["1.6.4"])
    r = statistics.median(ratios)
    lo, hi = THROUGHPUT_RANGE
    met = lo <= r <= hi and bad["ours"] == 0
    return [["supervise", f"requests/s nginx -> php-cgi -F {CHILDREN} (peer: 1.6.4 -F; "
             "ratio: median of pairs)", f"{p:.0f}", f"{o:.0f}", f"{r:.2f}x", f"{lo}-{hi}x",
             "yes" if met else "NO"]]


if __name__ == "__main__":
    sys.exit(benchlib.standalone_main("supervise", run, sys.argv[1:]))
