"""Live status of a supervised pool (--status-socket, --status-listen,
spawn-fcgi --status): the socket's creation and removal, the HTTP answers,
the three formats checked by real consumers (Python's strict JSON and UTF-8
decoders, promtool, a real Prometheus scraping through nginx), the client's
exit statuses, and that status clients never hold up the supervisor."""

import grp
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import harness
from harness import assert_one_error_line, wait_until

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
USAGE, NOT_RUNNING, SOCKET_FAILED = 2, 3, 4


# ---------------------------------------------------------------------------
# helpers


def http(status_socket, target, method="GET", raw=None):
    """One request over the status socket; (code, headers, body bytes)."""
    with harness.connect(str(status_socket), timeout=15) as s:
        s.sendall(raw if raw is not None else
                  f"{method} {target} HTTP/1.0\r\n\r\n".encode())
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            # The server closed with part of an over-long request unread.
            if not data:
                raise
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def status_json(status_socket):
    code, _, body = http(status_socket, "/status?json")
    assert code == 200, body
    return json.loads(body.decode("utf-8"))


class Pool:
    """A supervisor with a status socket, started and waited for."""

    def __init__(self, spawn, tmp, app, n=2, extra=(), status=None, port=None):
        self.app = app
        self.n = n
        self.sock = tmp / "app.sock"
        self.addr = f"127.0.0.1:{port}" if port else str(self.sock)
        listen = ["-a", "127.0.0.1", "-p", port] if port else ["-s", self.sock]
        self.status = Path(status) if status else tmp / "php.status"
        self.sv = spawn.start("-w", "-F", n, *listen,
                              f"--status-socket={self.status}", *extra,
                              "--", app)
        harness.wait_for_socket(str(self.status), proc=self.sv)
        self.pids = self.wait_children(n)

    def wait_children(self, n, exclude=()):
        def ready():
            assert self.sv.poll() is None, self.sv.describe()
            pids = [c["pid"] for c in status_json(self.status)["children"]]
            running = harness.app_pids(self.app)
            if len(pids) == n and sorted(pids) == running and \
                    not set(pids) & set(exclude):
                return pids
            return None
        return wait_until(ready, timeout=20, what=f"{n} children")

    def stop(self):
        self.sv.proc.send_signal(signal.SIGTERM)
        return self.sv.wait(timeout=30)


def stdout_bytes(started):
    return Path(started.stdout_path).read_bytes()


# ---------------------------------------------------------------------------
# the socket


def test_status_socket_is_root_only_and_removed_at_exit(spawn, tmp, app):
    pool = Pool(spawn, tmp, app)
    st = os.lstat(pool.status)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert pool.stop() == 0, pool.sv.describe()
    assert not os.path.lexists(pool.status)


def test_status_group_gets_0660(spawn, tmp, app, root_only):
    group = grp.getgrnam("daemon")
    pool = Pool(spawn, tmp, app, extra=["--status-group=daemon"])
    st = os.lstat(pool.status)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == group.gr_gid
    assert pool.stop() == 0


@pytest.mark.parametrize("kind", ["file", "symlink", "directory"])
def test_non_socket_at_status_path_is_refused_and_kept(spawn, tmp, app, kind):
    path = tmp / "php.status"
    target = tmp / "target"
    target.write_text("keep me\n")
    if kind == "file":
        path.write_text("not a socket\n")
    elif kind == "symlink":
        path.symlink_to(target)
    else:
        path.mkdir()
    before = harness.file_snapshot(path)
    r = spawn.run_error("-w", "-s", tmp / "app.sock",
                        f"--status-socket={path}", "--", app)
    assert r.returncode == SOCKET_FAILED, r
    assert_one_error_line(r, str(path), "not a socket")
    assert harness.file_snapshot(path) == before
    assert target.read_text() == "keep me\n"
    # Nothing started, nothing left behind.
    assert harness.app_pids(app) == []
    assert not os.path.lexists(tmp / "app.sock")


def test_stale_status_socket_is_replaced(spawn, tmp, app):
    harness.make_stale_socket(tmp / "php.status")
    pool = Pool(spawn, tmp, app)
    assert status_json(pool.status)["total"] == 2
    assert pool.stop() == 0


def test_a_file_put_in_place_is_not_removed_at_exit(spawn, tmp, app):
    pool = Pool(spawn, tmp, app)
    os.unlink(pool.status)
    pool.status.write_text("someone else's\n")
    assert pool.stop() == 0
    assert pool.status.read_text() == "someone else's\n"


def test_listen_socket_failure_removes_the_status_socket(spawn, tmp, app):
    (tmp / "app.sock").write_text("in the way\n")
    r = spawn.run_error("-w", "-s", tmp / "app.sock",
                        f"--status-socket={tmp / 'php.status'}", "--", app)
    assert r.returncode == SOCKET_FAILED, r
    assert not os.path.lexists(tmp / "php.status")


@pytest.mark.parametrize("args,needle", [
    (["--status-socket=/tmp/x.status"], "needs --supervise"),
    (["-w", "--status-group=daemon"], "needs --status-socket"),
    (["-w", "--status-listen=10.1.2.3:9100"], "not a loopback address"),
    (["-w", "--status-listen=127.0.0.1"], "ADDRESS:PORT"),
])
def test_bad_status_options(spawn, tmp, app, args, needle):
    r = spawn.run_error("-s", tmp / "app.sock", *args, "--", app)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, needle)
    assert harness.app_pids(app) == []


def test_status_listen_on_loopback(spawn, tmp, app):
    port = harness.free_port()
    pool = Pool(spawn, tmp, app, extra=[f"--status-listen=127.0.0.1:{port}"])
    code, body = harness.curl(f"http://127.0.0.1:{port}/status.json")
    assert code == 200
    assert json.loads(body)["total"] == 2
    r = spawn.run("--status=json", f"--status-listen=127.0.0.1:{port}")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["total"] == 2
    assert pool.stop() == 0


# ---------------------------------------------------------------------------
# HTTP


def test_routes_and_errors(spawn, tmp, app):
    pool = Pool(spawn, tmp, app)
    code, h, body = http(pool.status, "/status")
    assert code == 200 and h["content-type"] == "text/plain; charset=utf-8"
    assert int(h["content-length"]) == len(body)
    for target in ("/status?json", "/status.json"):
        code, h, body = http(pool.status, target)
        assert code == 200 and h["content-type"] == "application/json"
        json.loads(body)
    code, h, body = http(pool.status, "/metrics")
    assert code == 200
    assert h["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    code, h, body = http(pool.status, "/metrics", method="HEAD")
    assert code == 200 and body == b""
    assert http(pool.status, "/nothing")[0] == 404
    code, h, _ = http(pool.status, "/status", method="POST")
    assert code == 405 and h["allow"] == "GET, HEAD"
    assert http(pool.status, None, raw=b"\x00\x01garbage\r\n\r\n")[0] == 400
    assert http(pool.status, None, raw=b"G" * 5000)[0] == 400
    # Standard tools work.
    p = subprocess.run([harness.CURL, "-sS", "--unix-socket", str(pool.status),
                        "http://localhost/metrics"], capture_output=True,
                       timeout=30)
    assert p.returncode == 0 and b"spawn_fcgi_info{" in p.stdout
    assert pool.stop() == 0


def test_promtool_accepts_the_metrics(spawn, tmp, app):
    pool = Pool(spawn, tmp, app, n=3)
    os.kill(pool.pids[0], signal.SIGKILL)
    pool.wait_children(3, exclude=[pool.pids[0]])
    code, _, body = http(pool.status, "/metrics")
    assert code == 200
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == b"" and p.stderr.strip() == b"", p
    assert pool.stop() == 0


# ---------------------------------------------------------------------------
# content


def test_restarts_and_reloads_are_counted(spawn, tmp, app):
    pool = Pool(spawn, tmp, app, n=2)
    s = status_json(pool.status)
    assert (s["restarts"], s["reloads"], s["last_reload_result"]) == (0, 0, "none")
    assert s["pm"] == "static" and s["max_children"] == 2
    assert s["listen"] == str(pool.sock) and s["listen_source"] == "own"

    victim = pool.pids[1]
    os.kill(victim, signal.SIGKILL)
    pool.wait_children(2, exclude=[victim])
    s = status_json(pool.status)
    assert s["restarts"] == 1
    slot1 = [c for c in s["children"] if c["slot"] == 1][0]
    assert slot1["slot_restarts"] == 1 and slot1["last_exit_code"] == 128 + 9
    assert [c["slot_restarts"] for c in s["children"] if c["slot"] == 0] == [0]

    old = pool.wait_children(2)
    pool.sv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: status_json(pool.status)["last_reload_result"] == "done",
               timeout=30, what="the reload to finish")
    new = pool.wait_children(2, exclude=old)
    s = status_json(pool.status)
    assert s["reloads"] == 1 and s["last_reload"] is not None
    assert s["restarts"] == 1, "a reload is no restart"
    assert sorted(c["pid"] for c in s["children"]) == sorted(new)

    metrics = http(pool.status, "/metrics")[2].decode()
    assert "spawn_fcgi_restarts_total 1\n" in metrics
    assert "spawn_fcgi_reloads_total 1\n" in metrics
    assert 'spawn_fcgi_last_reload_result{result="done"} 1\n' in metrics
    assert pool.stop() == 0


def test_child_memory_and_cpu(spawn, tmp, app):
    pool = Pool(spawn, tmp, app, n=1)
    c = status_json(pool.status)["children"][0]
    with open(f"/proc/{c['pid']}/smaps_rollup") as f:
        rss_kb = int([line.split()[1] for line in f if line.startswith("Rss:")][0])
    assert c["rss_bytes"] > 0 and 0 < c["pss_bytes"] <= c["rss_bytes"]
    # Same order of magnitude as what /proc says right now.
    assert rss_kb * 1024 / 2 <= c["rss_bytes"] <= rss_kb * 1024 * 2
    assert c["cpu_seconds"] >= 0 and c["state"] == "idle"
    assert pool.stop() == 0


def test_text_fits_80_columns_for_8_children(spawn, tmp, app):
    pool = Pool(spawn, tmp, app, n=8)
    r = spawn.run("--status", f"--status-socket={pool.status}")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), r.stdout
    rows = [line.split() for line in lines
            if line.split() and line.split()[0].isdigit()]
    assert sorted(int(f[1]) for f in rows) == sorted(pool.pids)
    assert sorted(int(f[0]) for f in rows) == list(range(8))
    assert pool.stop() == 0


def test_json_is_valid_utf8_with_odd_names(spawn, tmp, app):
    odd = os.fsdecode(b"d\xff\xfe\"\\\x1b[2J")
    d = tmp / odd
    d.mkdir()
    config = tmp / os.fsdecode(b"caf\xc3\xa9 \xff\x01.conf")
    config.write_text(f"[spawn-fcgi]\nsupervise=true\nfork=2\nexec={app}\n")
    status = d / "s"
    sv = spawn.start(f"--config={config}", "-s", d / "a.sock",
                     f"--status-socket={status}")
    harness.wait_for_socket(str(status), proc=sv)
    for fmt in ("json", "text", "prometheus"):
        c = spawn.start(f"--status={fmt}", f"--status-socket={status}")
        assert c.wait() == 0, c.describe()
        out = stdout_bytes(c)
        text = out.decode("utf-8")          # strict: raises on a bad byte
        assert "\x1b" not in text and "\x01" not in text
        if fmt == "json":
            s = json.loads(text)
            assert s["instance"] == "caf\u00e9 \ufffd\x01"
            assert s["listen"] == str(tmp) + "/d\ufffd\ufffd\"\\\x1b[2J/a.sock"
        if fmt == "text":
            assert "pool caf\u00e9 \\xff\\x01:" in text
    sv.proc.send_signal(signal.SIGTERM)
    assert sv.wait(timeout=30) == 0


# ---------------------------------------------------------------------------
# load signals from the kernel


def stopped(pid):
    return harness._proc_stat(pid)[1] == "T"


@pytest.mark.parametrize("family", ["unix", "tcp"])
def test_accept_queue_is_the_connections_really_waiting(spawn, tmp, app, family):
    port = harness.free_port() if family == "tcp" else None
    pool = Pool(spawn, tmp, app, n=2, port=port)
    s = status_json(pool.status)
    assert s["accept_queue"] == 0 and s["busy"] == 0, s
    # Nobody accepts while every child is stopped: what connects waits.
    for pid in pool.pids:
        os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: all(stopped(p) for p in pool.pids), what="stopped children")
    waiting = [harness.connect(pool.addr) for _ in range(5)]
    s = status_json(pool.status)
    assert s["accept_queue"] == 5, s
    assert s["max_accept_queue"] >= 5
    metrics = http(pool.status, "/metrics")[2].decode()
    assert "spawn_fcgi_accept_queue 5\n" in metrics
    text = spawn.run("--status", f"--status-socket={pool.status}").stdout
    assert "Queue: 5 waiting" in text, text
    for pid in pool.pids:
        os.kill(pid, signal.SIGCONT)
    for c in waiting:
        c.close()
    wait_until(lambda: status_json(pool.status)["accept_queue"] == 0,
               what="the queue to drain")
    assert pool.stop() == 0


def test_busy_while_a_connection_is_held_open(spawn, tmp, app):
    pool = Pool(spawn, tmp, app, n=2)
    held = harness.connect(pool.addr)   # accepted by a child, no request yet

    def one_busy():
        s = status_json(pool.status)
        busy = [c["pid"] for c in s["children"] if c["state"] == "busy"]
        return busy if (s["busy"], s["idle"], len(busy)) == (1, 1, 1) else None
    busy = wait_until(one_busy, what="one busy child")
    assert busy[0] in pool.pids
    held.close()
    wait_until(lambda: status_json(pool.status)["busy"] == 0, what="no busy child")
    assert pool.stop() == 0


# ---------------------------------------------------------------------------
# the client


def test_client_exit_status_when_not_running(spawn, tmp, app):
    r = spawn.run_error("--status", f"--status-socket={tmp / 'none.status'}")
    assert r.returncode == NOT_RUNNING, r
    assert_one_error_line(r, "not running", "none.status")
    assert r.stdout == ""
    harness.make_stale_socket(tmp / "stale.status")
    r = spawn.run_error("--status", f"--status-socket={tmp / 'stale.status'}")
    assert r.returncode == NOT_RUNNING, r
    assert_one_error_line(r, "not running")
    # A pool that has stopped.
    pool = Pool(spawn, tmp, app, n=1)
    assert pool.stop() == 0
    r = spawn.run_error("--status=prometheus", f"--status-socket={pool.status}")
    assert r.returncode == NOT_RUNNING, r


def test_client_reads_the_config_file(spawn, tmp, app):
    config = tmp / "php.conf"
    config.write_text(f"[spawn-fcgi]\nsupervise=true\nfork=2\nexec={app}\n"
                      f"socket={tmp / 'app.sock'}\n"
                      f"status-socket={tmp / 'php.status'}\n")
    sv = spawn.start(f"--config={config}")
    harness.wait_for_socket(str(tmp / "php.status"), proc=sv)
    r = spawn.run("--status=json", f"--config={config}")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["instance"] == "php"
    sv.proc.send_signal(signal.SIGTERM)
    assert sv.wait(timeout=30) == 0
    r = spawn.run_error("--status", f"--config={config}")
    assert r.returncode == NOT_RUNNING, r


# ---------------------------------------------------------------------------
# the supervisor never waits for a status client


def restart_one(pool):
    """Kill a child and wait for its replacement; returns the new pids."""
    victim = pool.pids[0]
    os.kill(victim, signal.SIGKILL)
    new = wait_until(lambda: (lambda p: p if len(p) == pool.n and
                              victim not in p else None)(
                                  harness.app_pids(pool.app)),
                     timeout=20, what="the replacement child")
    pool.pids = new
    return new


def connection_closed(s):
    """True once the server has closed s (EOF or reset)."""
    s.setblocking(False)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_silent_and_crowding_clients_do_not_delay_a_restart(spawn, tmp, app):
    pool = Pool(spawn, tmp, app, n=2)
    # Without clients: the restart happens.
    restart_one(pool)

    # Clients that connect and say nothing, fill every place...
    silent = [harness.connect(str(pool.status)) for _ in range(8)]
    # ...and 100 more at once: half send a request and never read the
    # answer, half say nothing.
    crowd = []
    for i in range(100):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(pool.status))
        if i % 2:
            try:
                s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass            # refused at once with 503
        crowd.append(s)

    # The restart is not held up: the replacement is there while the
    # silent clients are still connected (not yet dropped for their
    # timeout).
    restart_one(pool)
    assert not any(connection_closed(s) for s in silent), \
        "silent clients were dropped before the restart was seen"

    # Every silent client is dropped in the end; the crowd got 503 or was
    # served or dropped; the supervisor answers again.
    wait_until(lambda: all(connection_closed(s) for s in silent + crowd),
               timeout=30, what="every status client to be let go")
    for s in silent + crowd:
        s.close()
    s = status_json(pool.status)
    assert s["restarts"] == 2
    assert pool.sv.poll() is None
    assert pool.stop() == 0


# ---------------------------------------------------------------------------
# a real Prometheus scrapes the pool through nginx


# The recipe of spawn-fcgi(1), STATUS.
METRICS_LOCATION = """\
        location = /metrics {{
            allow 127.0.0.1;
            deny all;
            proxy_pass http://unix:{status}:/metrics;
        }}
        location / {{
            return 404;
        }}"""

PROMETHEUS_CONF = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: spawn-fcgi
    static_configs:
      - targets: ['127.0.0.1:{port}']
"""


def prometheus_query(port, query):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + \
        urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as r:
        answer = json.load(r)
    assert answer["status"] == "success", answer
    return [(s["metric"], float(s["value"][1]))
            for s in answer["data"]["result"]]


def test_prometheus_scrapes_through_nginx(spawn, tmp, app, procs, root_only):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    pool = Pool(spawn, tmp, app, n=3)

    nginx = harness.Nginx(procs, tmp / "nginx", None, locations=METRICS_LOCATION.format(
        status=pool.status))
    nport = nginx.port
    code, body = harness.curl(f"http://127.0.0.1:{nport}/metrics")
    assert code == 200 and b"spawn_fcgi_children{" in body

    pdir = tmp / "prometheus"
    pdir.mkdir()
    pport = harness.free_port()
    (pdir / "prometheus.yml").write_text(PROMETHEUS_CONF.format(port=nport))
    prom = procs.start([PROMETHEUS, f"--config.file={pdir / 'prometheus.yml'}",
                        f"--storage.tsdb.path={pdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{pport}",
                        "--storage.tsdb.retention.time=1h"],
                       env=harness.base_env(), cwd=pdir)
    harness.wait_for_socket(f"127.0.0.1:{pport}", timeout=60, proc=prom)

    def scraped():
        try:
            up = prometheus_query(pport, 'up{job="spawn-fcgi"}')
        except OSError:
            return None         # not ready yet
        return up if up and up[0][1] == 1 else None
    wait_until(scraped, timeout=90, interval=0.2,
               what=f"a successful scrape\n{prom.describe()}")

    children = prometheus_query(pport, 'sum(spawn_fcgi_children{job="spawn-fcgi"})')
    assert children[0][1] == 3, children
    per_child = prometheus_query(pport, 'spawn_fcgi_child_state{state="idle"} == 1')
    assert sorted(int(m["pid"]) for m, _ in per_child) == sorted(pool.pids)
    info = prometheus_query(pport, "spawn_fcgi_info")
    assert info[0][0]["listen"] == str(pool.sock), info
    prom.proc.terminate()
    prom.wait(timeout=60)
    assert pool.stop() == 0
