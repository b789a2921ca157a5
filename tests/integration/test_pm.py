"""Process manager (--pm=static|dynamic|ondemand, --max-age, --max-rss):
the pool grows while connections wait and never beyond -F, idle children
go away after --idle-timeout down to the minimum, and no child is ever
retired (reload, scale-down, recycling) while it holds an accepted
connection.

A connection is held open by sending only the first record of a FastCGI
request: the child that accepted it waits for the rest, and holds it
until the test sends it.  Tests wait for events (log lines, /proc, READY
messages), never for time."""

import os
import signal
import socket
import struct
import threading
import urllib.error
import urllib.request

import pytest

import harness
from harness import assert_one_error_line, query_state, wait_until
from test_supervise import (Notify, _timerfd_armed, app_children, pids_gone,
                            terminate, wait_children)

USAGE = 2


@pytest.fixture
def notify(tmp):
    n = Notify(tmp / "notify")
    yield n
    n.close()


def pool(spawn, sock, n, app_argv, *opts, notify=None, env=None):
    extra = dict(env or {})
    if notify is not None:
        extra["NOTIFY_SOCKET"] = notify.path
    return spawn.start("-w", "-F", n, "-s", sock, *opts, "--", *app_argv,
                       extra_env=extra)


class HeldRequest:
    """A FastCGI request whose first record only is sent: the child that
    accepts the connection waits for the rest."""

    def __init__(self, addr):
        self.sock = harness.connect(addr, timeout=30)
        self.sock.sendall(harness._fcgi_record(
            harness._FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0)))
        self.inode = os.fstat(self.sock.fileno()).st_ino

    def finish(self):
        """Sends the rest and returns the parsed state of the child."""
        params = harness.request_params()
        body = b"".join(harness._fcgi_len(len(k)) + harness._fcgi_len(len(v))
                        + k.encode() + v.encode() for k, v in params.items())
        rec = harness._fcgi_record
        self.sock.sendall(rec(harness._FCGI_PARAMS, body)
                          + rec(harness._FCGI_PARAMS, b"")
                          + rec(harness._FCGI_STDIN, b""))
        out, buf = b"", b""
        while True:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed before FCGI_END_REQUEST"
            buf += chunk
            while len(buf) >= 8:
                _, rtype, _, clen, plen = struct.unpack("!BBHHB", buf[:7])
                if len(buf) < 8 + clen + plen:
                    break
                content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
                if rtype == harness._FCGI_STDOUT:
                    out += content
                elif rtype == harness._FCGI_END_REQUEST:
                    self.sock.close()
                    return harness.parse_state(
                        harness.parse_cgi_response(out).body)

    def close(self):
        self.sock.close()


def connections_of(pid):
    """Sockets pid holds besides fd 0 (the listening socket)."""
    found = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        if int(fd) == 0:
            continue
        t = harness.fd_target(pid, int(fd))
        if t and t.startswith("socket:"):
            found.append(t)
    return found


def busy_children(sv, app):
    return [p for p in app_children(sv.pid, app) if connections_of(p)]


def markers(d):
    return len(list(d.iterdir())) if d.exists() else 0


# ---------------------------------------------------------------------------
# options


@pytest.mark.parametrize("args,needles", [
    (["-w", "--pm=bogus"], ["--pm", "bogus", "static, dynamic or ondemand"]),
    (["--pm=dynamic"], ["--pm", "needs --supervise"]),
    (["--pm=ondemand", "-F", "4"], ["--pm", "needs --supervise"]),
    (["-w", "--pm=dynamic", "--min-children=5", "-F", "4"],
     ["--min-children", "more than the maximum"]),
    (["-w", "--min-children=2", "-F", "4"], ["--min-children", "--pm=dynamic"]),
    (["-w", "--pm=ondemand", "--min-children=1"], ["--min-children", "--pm=dynamic"]),
    (["-w", "--idle-timeout=5"], ["--idle-timeout", "--pm=dynamic or --pm=ondemand"]),
    (["-w", "--pm=dynamic", "--idle-timeout=0"], ["--idle-timeout", "'0'"]),
    (["-w", "--max-age=0"], ["--max-age", "'0'"]),
    (["-w", "--max-age=-5"], ["--max-age", "'-5'"]),
    (["-w", "--max-rss=12X"], ["--max-rss", "'12X'", "size"]),
    (["-w", "--max-rss=0"], ["--max-rss", "'0'"]),
    (["-w", "--max-rss="], ["--max-rss"]),
    (["--max-rss=1G"], ["--max-rss", "needs --supervise"]),
])
def test_bad_values_and_conflicts_are_refused(spawn, app, sock, marker, args,
                                              needles):
    r = spawn.run_error("-s", sock, *args, "--", app, "--marker", marker)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, *needles)
    assert not marker.exists(), "the application was started"
    assert not os.path.lexists(sock), "the socket was created"


def test_bad_value_in_config_file_is_refused(spawn, app, sock, marker, tmp):
    conf = tmp / "pool.conf"
    conf.write_text(f"[spawn-fcgi]\nsocket={sock}\nsupervise=true\n"
                    "pm=dynamic\nfork=4\nmin-children=8\n")
    r = spawn.run_error("--config", conf, "--", app, "--marker", marker)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, "min-children", "more than the maximum")
    assert not marker.exists()


def test_check_shows_mode_and_bounds(spawn, app, sock, tmp):
    import json
    r = spawn.run("--check=json", "-w", "--pm=dynamic", "--min-children=2",
                  "-F", "8", "--idle-timeout=3", "--max-age=600",
                  "--max-rss=256M", "-s", sock, "--", app)
    assert r.returncode == 0, r
    children = json.loads(r.stdout)["children"]
    assert children["pm"] == "dynamic"
    assert children["min_children"] == 2
    assert children["max_children"] == 8
    assert children["idle_timeout_s"] == 3
    assert children["max_age_s"] == 600
    assert children["max_rss_bytes"] == 256 * 1024 * 1024
    r = spawn.run("--check", "-w", "--pm=ondemand", "-F", "4", "-s", sock,
                  "--", app)
    assert r.returncode == 0, r
    assert "ondemand" in r.stdout
    assert not os.path.lexists(sock)


# ---------------------------------------------------------------------------
# growing and shrinking


def test_ondemand_starts_nothing_until_the_first_connection(
        spawn, app, sock, tmp, notify):
    starts = tmp / "starts"
    starts.mkdir()
    sv = pool(spawn, sock, 4, [app, "--marker-dir", starts], "--pm=ondemand",
              "--idle-timeout=1", notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    # Ready, listening, and no child at all.
    assert app_children(sv.pid, app) == []
    assert markers(starts) == 0
    st = query_state(sock)
    assert int(st["ppid"]) == sv.pid
    assert markers(starts) == 1
    # Idle for the timeout: retired, down to 0.
    wait_until(lambda: app_children(sv.pid, app) == [], timeout=30,
               what="the idle child to go")
    assert "idle for" in sv.stderr
    assert pids_gone([int(st["pid"])])
    # At its minimum the pool arms no timer: it waits for a connection.
    wait_until(lambda: _timerfd_armed(sv.pid) == ["(0, 0)"], timeout=30,
               what="the timer disarmed")
    # And started again for the next connection.
    st2 = query_state(sock)
    assert int(st2["pid"]) != int(st["pid"])
    assert terminate(sv) == 0, sv.describe()


def test_burst_grows_to_the_maximum_and_shrinks_to_the_minimum(
        spawn, app, sock, tmp, notify):
    starts = tmp / "starts"
    starts.mkdir()
    sv = pool(spawn, sock, 4, [app, "--marker-dir", starts], "--pm=dynamic",
              "--min-children=1", "--idle-timeout=1", notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    wait_children(sv, app, 1)
    held = [HeldRequest(str(sock)) for _ in range(8)]
    try:
        wait_until(lambda: len(busy_children(sv, app)) == 4, timeout=30,
                   what="4 busy children")
        # Connections still wait, yet no fifth child.
        assert len(app_children(sv.pid, app)) == 4
        # Serve them all: each child takes the next waiting one.
        for h in held:
            st = h.finish()
            assert int(st["ppid"]) == sv.pid
    finally:
        for h in held:
            h.close()
    assert markers(starts) == 4, "more children than -F were started"
    # Idle: down to the minimum, one by one, never below.
    wait_until(lambda: sv.stderr.count("idle for") >= 3, timeout=30,
               what="3 idle children retired")
    wait_children(sv, app, 1)
    assert markers(starts) == 4
    wait_until(lambda: _timerfd_armed(sv.pid) == ["(0, 0)"], timeout=30,
               what="the timer disarmed at the minimum")
    query_state(sock)
    assert terminate(sv) == 0, sv.describe()


# ---------------------------------------------------------------------------
# a busy child is never retired


@pytest.mark.parametrize("cause", ["reload", "max-age"])
def test_busy_child_is_not_retired(spawn, app, sock, tmp, notify, cause):
    opts = {
        "reload": ["-F", "2"],
        "max-age": ["-F", "1", "--max-age=1"],
    }[cause]
    sv = spawn.start("-w", *opts, "-s", sock, "--", app,
                     extra_env={"NOTIFY_SOCKET": notify.path})
    notify.wait_for("READY", "1", proc=sv)
    held = HeldRequest(str(sock))
    try:
        busy = wait_until(lambda: busy_children(sv, app), timeout=30,
                          what="a child holding the connection")[0]
        if cause == "reload":
            sv.proc.send_signal(signal.SIGHUP)
        # Its retirement was tried, found it busy and resumed it.
        wait_until(lambda: f"child {busy} is busy" in sv.stderr, timeout=30,
                   what="an idle check of the busy child")
        assert harness.pid_alive(busy) and not _is_zombie(busy)
        st = held.finish()
        assert int(st["pid"]) == busy
    finally:
        held.close()
    # Now idle: it goes.
    wait_until(lambda: _is_zombie(busy), timeout=30,
               what="the busy child to go")
    assert terminate(sv) == 0, sv.describe()


def test_busy_child_is_not_retired_for_idleness(spawn, app, sock, tmp,
                                                notify):
    sv = pool(spawn, sock, 2, [app], "--pm=ondemand", "--idle-timeout=1",
              notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    held = [HeldRequest(str(sock)) for _ in range(2)]
    try:
        wait_until(lambda: len(busy_children(sv, app)) == 2, timeout=30,
                   what="2 busy children")
        # One of them finishes; the other keeps its connection.
        held[0].finish()
        idle = wait_until(lambda: [p for p in app_children(sv.pid, app)
                                   if not connections_of(p)], timeout=30,
                          what="an idle child")[0]
        busy = [p for p in app_children(sv.pid, app) if p != idle][0]
        wait_until(lambda: f"child {idle} idle for" in sv.stderr, timeout=30,
                   what="the idle child retired")
        wait_until(lambda: _is_zombie(idle), timeout=30,
                   what="the idle child to go")
        assert f"child {busy} idle for" not in sv.stderr
        assert harness.pid_alive(busy) and not _is_zombie(busy)
        st = held[1].finish()
        assert int(st["pid"]) == busy
    finally:
        for h in held:
            h.close()
    wait_until(lambda: app_children(sv.pid, app) == [], timeout=30,
               what="down to 0 children")
    assert terminate(sv) == 0, sv.describe()


def _is_zombie(pid):
    st = harness._proc_stat(pid)
    return st is None or st[0] == "Z"


# ---------------------------------------------------------------------------
# recycling without a failed request


def _load(url_or_sock, stop, results, lock):
    while not stop.is_set():
        try:
            st = query_state(url_or_sock)
            with lock:
                results["ok"] += 1
                results["pids"].add(int(st["pid"]))
        except (AssertionError, OSError) as e:
            with lock:
                results["bad"].append(repr(e)[:200])


@pytest.mark.parametrize("opt,line", [
    ("--max-age=1", "maximum age"),
    ("--max-rss=1K", "more than the maximum RSS"),
])
def test_recycling_loses_no_request(spawn, app, sock, notify, opt, line):
    sv = pool(spawn, sock, 2, [app], opt, notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    first = wait_children(sv, app, 2)
    stop = threading.Event()
    lock = threading.Lock()
    results = {"ok": 0, "pids": set(), "bad": []}
    threads = [threading.Thread(target=_load, args=(str(sock), stop, results,
                                                    lock), daemon=True)
               for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: sv.stderr.count(line) >= 3, timeout=60,
                   what=f"3 x {line!r}")
        wait_until(lambda: pids_gone(first), timeout=30,
                   what="the first children replaced")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert results["bad"] == [], results["bad"][:5]
    assert results["ok"] > 0
    # Never all at once: at most one replacement beside the pool.
    assert 2 <= len(app_children(sv.pid, app)) <= 3
    assert terminate(sv) == 0, sv.describe()


# ---------------------------------------------------------------------------
# fcgiwrap: reload under load loses no request


FCGIWRAP = "/usr/sbin/fcgiwrap"
SLEEPY_CGI = """#!/bin/sh
sleep 1
printf 'Content-Type: text/plain\\r\\n\\r\\nslept %s\\n' "$$"
"""


def test_fcgiwrap_reloads_under_load_lose_no_request(spawn, sock, tmp,
                                                     nginx, notify):
    if not os.access(FCGIWRAP, os.X_OK):
        pytest.fail(f"{FCGIWRAP} not installed (fcgiwrap)")
    www = tmp / "www"
    www.mkdir()
    cgi = www / "sleepy.cgi"
    cgi.write_text(SLEEPY_CGI)
    cgi.chmod(0o755)
    sv = pool(spawn, sock, 16, [FCGIWRAP], notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    wait_children(sv, FCGIWRAP, 16)
    web = nginx(f"unix:{sock}", root=www)
    url = f"{web.url}/sleepy.cgi"

    stop = threading.Event()
    lock = threading.Lock()
    results = {"ok": 0, "bad": []}

    def client():
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=60) as r:
                    code, body = r.status, r.read()
            except (urllib.error.URLError, OSError) as e:
                code, body = getattr(e, "code", None), repr(e).encode()
            with lock:
                if code == 200 and body.startswith(b"slept "):
                    results["ok"] += 1
                else:
                    results["bad"].append((code, body[:200]))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: results["ok"] >= 16, timeout=60,
                   what="requests before the reloads")
        readies = 1
        for _ in range(3):
            sv.proc.send_signal(signal.SIGHUP)
            readies += 1
            notify.wait_for("READY", "1", count=readies, timeout=120)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert results["bad"] == [], (len(results["bad"]), results["bad"][:5],
                                  web.error_log()[-2000:])
    assert results["ok"] >= 16
    assert terminate(sv) == 0, sv.describe()


# ---------------------------------------------------------------------------
# an application that exits 0 at once (issue 11, item 7)


def test_clean_exits_at_once_back_off_and_are_counted(spawn, app, sock, tmp):
    starts = tmp / "starts"
    starts.mkdir()
    sv = pool(spawn, sock, 2, [app, "--marker-dir", starts, "--exit", "0"])
    # The sixth line about a slot within 10 s is left out and counted; the
    # count comes with the next line after the 10 s.
    wait_until(lambda: "more times" in sv.stderr, timeout=90,
               what="a count of left-out lines")
    assert sv.poll() is None, sv.describe()
    assert "giving up" not in sv.stderr
    # Backing off up to 5 s: 2 slots made a few dozen starts in the more
    # than 10 s this took, not the hundreds of a 100 ms floor.
    assert markers(starts) < 60, markers(starts)
    lines = [ln for ln in sv.stderr.splitlines() if "exited after" in ln]
    assert len(lines) <= 2 * 5 * 3, len(lines)
    assert terminate(sv) == 0, sv.describe()
