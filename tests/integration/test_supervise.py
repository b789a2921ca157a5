"""Supervising mode (-w/--supervise): spawn-fcgi stays as the parent, keeps
N children alive on the socket it holds, restarts them with back-off, gives
up after too many quick failures, stops them gracefully, replaces them one
by one on SIGHUP, forwards SIGUSR1/SIGUSR2 and reports to systemd through
NOTIFY_SOCKET (captured here with a datagram socket of our own).

Signals the children receive are observed with a small recorder program
(written into the temp dir) that logs every signal it gets; requests go
through the state application, php-cgi and nginx."""

import os
import re
import shutil
import signal
import socket
import stat
import threading
import time
import urllib.error
import urllib.request

import pytest

import harness
from harness import (assert_one_error_line, query_state, sigset, state_env,
                     state_fds, wait_until)

ACTIVATE = shutil.which("systemd-socket-activate") or \
    "/usr/bin/systemd-socket-activate"
USAGE = 2
GIVE_UP = 1
# What the recorder runs as (app_children compares real paths).
PYTHON3 = "/usr/bin/python3"
# src/supervisor.h: the first back-off after a quick failure, doubling.
BACKOFF_FIRST_MS = 100


# ---------------------------------------------------------------------------
# helpers: processes


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (index 0 is the
    state), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def app_children(parent, exe):
    """Live children of parent that already run exe (exec done)."""
    want = os.path.realpath(exe)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f is None or f[0] == "Z" or int(f[1]) != parent:
            continue
        try:
            if os.readlink(f"/proc/{name}/exe") == want:
                found.append(int(name))
        except OSError:
            pass
    return sorted(found)


def wait_children(sv, exe, n, exclude=(), timeout=20):
    """Wait until sv (a Started) has exactly n children running exe, none
    of them in exclude; returns their pids."""
    def ready():
        assert sv.poll() is None, f"supervisor exited:\n{sv.describe()}"
        pids = app_children(sv.pid, exe)
        if len(pids) == n and not set(pids) & set(exclude):
            return pids
        return None
    return wait_until(ready, timeout=timeout,
                      what=f"{n} children running {exe}")


def summary(n, restarts, phase=None):
    """A regex for the STATUS= line with n children and restarts: busy
    and idle (from the kernel's load signals) as they happen to be."""
    line = (rf"{n} children: \d+ busy, \d+ idle(, \d+ starting)?(, \d+ retiring)?; "
            rf"queue \d+; {restarts} restarts")
    return line + (f"; {phase}" if phase else "")


def status_field(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name == key:
                return value.strip()
    raise KeyError(key)


def runnable_seconds(pid):
    """How long pid was runnable: on a cpu, or waiting for one
    (/proc/PID/schedstat).  A busy loop is runnable all the time, however
    loaded the machine; a process that sleeps until its next event is
    runnable for a small part of its life."""
    with open(f"/proc/{pid}/schedstat") as f:
        on_cpu, waiting = f.read().split()[:2]
    return (int(on_cpu) + int(waiting)) / 1e9


def wait_exit_keep_zombie(pid, timeout=30):
    """Wait until our child pid has exited, without reaping it (its
    /proc/PID/stat still shows its own cpu time)."""
    deadline = time.monotonic() + timeout
    while True:
        r = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        if r is not None and r.si_pid == pid:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} did not exit")
        time.sleep(0.02)


def terminate(sv, sig=signal.SIGTERM, timeout=30):
    """Send sig to the supervisor and return its exit status."""
    sv.proc.send_signal(sig)
    return sv.wait(timeout=timeout)


def _timerfd_armed(pid):
    """it_value of every timerfd of pid."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if harness.fd_target(pid, int(fd)) != "anon_inode:[timerfd]":
            continue
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("it_value:"):
                    found.append(line.split(":", 1)[1].strip())
    return found


# System calls that wait for events (x86_64 and aarch64 numbers), and how
# each says "no timeout": (argument index, value).
_NO_TIMEOUT = {
    "x86_64": {7: (2, 0xFFFFFFFF), 271: (2, 0), 232: (3, 0xFFFFFFFF),
               281: (3, 0xFFFFFFFF), 441: (3, 0), 23: (4, 0), 270: (4, 0)},
    "aarch64": {73: (2, 0), 22: (3, 0xFFFFFFFF), 441: (3, 0), 72: (4, 0)},
}


def _waits_without_timeout(pid):
    """pid is blocked in poll/epoll/select with no timeout
    (/proc/PID/syscall shows the call it sleeps in)."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    if not fields or not fields[0].lstrip("-").isdigit():
        return False  # "running"
    known = _NO_TIMEOUT.get(os.uname().machine, {})
    nr = int(fields[0])
    if nr not in known:
        return False
    index, value = known[nr]
    return int(fields[1 + index], 16) & 0xFFFFFFFF == value


def asleep_until_an_event(pid):
    """The supervisor waits for an event and for nothing else: blocked
    without a timeout, no timer armed.  Nothing happens in it until a
    signal or a child's exit wakes it; no time window is needed to see
    that it keeps quiet."""
    return (_waits_without_timeout(pid)
            and all(v == "(0, 0)" for v in _timerfd_armed(pid)))


def wait_asleep(sv, what="the supervisor to wait for events only"):
    def asleep():
        assert sv.poll() is None, f"supervisor exited:\n{sv.describe()}"
        return asleep_until_an_event(sv.pid)
    wait_until(asleep, timeout=30, what=what)


def pids_gone(pids):
    return all(not harness.pid_alive(p) for p in pids)


def wait_ignoring_term(pids):
    """Wait until every pid (the state app with --ignore-term) ignores
    SIGTERM: it sets that up after exec, before its first accept."""
    wait_until(lambda: all(signal.SIGTERM in sigset(status_field(p, "SigIgn"))
                           for p in pids), what="SIGTERM ignored")


# ---------------------------------------------------------------------------
# helpers: sd_notify


class Notify:
    """A NOTIFY_SOCKET of our own. A thread reads every datagram as it
    arrives (a full queue would block the sender); messages: list of dicts
    (KEY -> VALUE), in arrival order."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._syncs = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = {}
            for line in data.decode("utf-8", "replace").splitlines():
                k, _, v = line.partition("=")
                msg[k] = v
            with self._lock:
                self.messages.append(msg)

    def collect(self):
        """A copy of the messages received so far."""
        with self._lock:
            return list(self.messages)

    def having(self, key, value=None):
        """Messages so far that carry key (with value, if given)."""
        return [m for m in self.collect()
                if key in m and (value is None or m[key] == value)]

    def statuses(self):
        return [m["STATUS"] for m in self.collect() if "STATUS" in m]

    def wait_for(self, key, value=None, count=1, timeout=20, proc=None):
        """Wait until at least count messages carry key[=value]."""
        def seen():
            if proc is not None:
                assert proc.poll() is None or len(self.having(key, value)) \
                    >= count, f"exited first:\n{proc.describe()}"
            found = self.having(key, value)
            return found if len(found) >= count else None
        return wait_until(seen, timeout=timeout,
                          what=f"{count} x {key}={value} in {self.collect()}")

    def wait_status(self, pattern, timeout=20):
        rx = re.compile(pattern)
        return wait_until(
            lambda: [s for s in self.statuses() if rx.fullmatch(s)],
            timeout=timeout, what=f"STATUS matching {pattern!r} in "
                                  f"{self.statuses()}")

    def sync(self):
        """Returns once every message sent before this call has been read:
        a marker of ours goes through the same queue, behind them."""
        self._syncs += 1
        token = f"{os.getpid()}.{self._syncs}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.sendto(f"TEST_SYNC={token}".encode(), self.path)
        self.wait_for("TEST_SYNC", token)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def notify(tmp):
    n = Notify(tmp / "notify")
    yield n
    n.close()


# ---------------------------------------------------------------------------
# helpers: a program that records the signals it receives

RECORDER = r'''#!/usr/bin/python3
# recorder LOG [SIG[:COUNT] ...]: appends "PID ready", then "PID SIGNAME" for
# each signal received; exits 0 on the COUNT-th (default 1st) of any SIG
# listed, and never on the others.
import os, signal, sys
log = sys.argv[1]
exit_on = {}
for spec in sys.argv[2:]:
    name, _, count = spec.partition(":")
    exit_on[getattr(signal, "SIG" + name)] = int(count or 1)
seen = {}
def note(text):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{os.getpid()} {text}\n".encode())
    os.close(fd)
def handler(sig, frame):
    note(signal.Signals(sig).name[3:])
    seen[sig] = seen.get(sig, 0) + 1
    if sig in exit_on and seen[sig] >= exit_on[sig]:
        os._exit(0)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
          signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, handler)
note("ready")
while True:
    signal.pause()
'''


class Recorder:
    def __init__(self, tmp):
        self.path = tmp / "recorder"
        self.path.write_text(RECORDER)
        self.path.chmod(0o755)
        self.log = tmp / "signals.log"

    def argv(self, *exit_on):
        return [self.path, self.log, *exit_on]

    def events(self):
        """[(pid, what)] in order."""
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            pid, _, what = line.partition(" ")
            out.append((int(pid), what))
        return out

    def of(self, pid):
        return [w for p, w in self.events() if p == pid]

    def wait_ready(self, sv, n, exclude=()):
        """The n children of sv (a Started) run the recorder and have their
        handlers installed; returns their pids."""
        def ready():
            assert sv.poll() is None, f"supervisor exited:\n{sv.describe()}"
            pids = [p for p in app_children(sv.pid, PYTHON3)
                    if p not in exclude]
            if len(pids) == n and all("ready" in self.of(p) for p in pids):
                return sorted(pids)
            return None
        return wait_until(ready, timeout=20, what=f"{n} recorders ready")


@pytest.fixture
def recorder(tmp):
    return Recorder(tmp)


def release_when_asked(sv, recorder, done, what):
    """For recorders that note the stop signal (TERM) and stay: each child
    of sv that was asked to stop is let go (SIGUSR2 ends it), until done().
    The test decides when an old child leaves, so nothing it looks at
    lasts only for a window of time."""
    def step():
        asked = {pid for pid, event in recorder.events() if event == "TERM"}
        for pid in asked & set(app_children(sv.pid, PYTHON3)):
            if "USR2" not in recorder.of(pid):
                os.kill(pid, signal.SIGUSR2)
        return done()
    return wait_until(step, timeout=60, what=what)


def stop_releasing(sv, recorder):
    """SIGTERM to the supervisor, letting its recorders go as they are
    asked to stop; returns its exit status."""
    sv.proc.send_signal(signal.SIGTERM)
    release_when_asked(sv, recorder, lambda: sv.poll() is not None,
                       "the supervisor to stop")
    return sv.wait()


def supervise(spawn, sock, n, app_argv, *opts, notify=None, env=None,
              **kw):
    """spawn-fcgi -w -F n -s sock [opts] -- app_argv, in the background."""
    extra = dict(env or {})
    if notify is not None:
        extra["NOTIFY_SOCKET"] = notify.path
    return spawn.start("-w", "-F", n, "-s", sock, *opts, "--", *app_argv,
                       extra_env=extra, **kw)


# ---------------------------------------------------------------------------
# restarts


def test_killed_child_is_replaced_and_counted(spawn, app, sock, notify):
    sv = supervise(spawn, sock, 3, [app], notify=notify)
    ready = notify.wait_for("READY", "1", proc=sv)
    assert ready[0].get("MAINPID") == str(sv.pid), notify.collect()
    notify.wait_status(summary(3, 0))
    before = wait_children(sv, app, 3)
    assert {int(query_state(sock)["pid"]) for _ in range(6)} <= set(before)

    victim = before[1]
    os.kill(victim, signal.SIGKILL)
    after = wait_children(sv, app, 3, exclude=[victim])
    assert set(after) & set(before) == set(before) - {victim}
    notify.wait_status(summary(3, 1))
    # The replacement answers on the same socket, the others still do.
    served = {int(query_state(sock)["pid"]) for _ in range(9)}
    assert served <= set(after), (served, after)
    assert f"child {victim} was killed by signal 9" in sv.stderr
    assert sv.poll() is None, sv.describe()

    # A second death is counted too.
    os.kill(after[0], signal.SIGTERM)
    wait_children(sv, app, 3, exclude=[after[0]])
    notify.wait_status(summary(3, 2))
    assert terminate(sv) == 0, sv.describe()


def test_children_see_a_clean_process_state(spawn, app, sock, notify):
    def dirty():
        for s in (signal.SIGPIPE, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(s, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1,
                                                  signal.SIGTERM})
    sv = supervise(spawn, sock, 2, [app], notify=notify,
                   env={"WATCHDOG_USEC": "30000000", "KEEP": "me"},
                   preexec=dirty)
    notify.wait_for("READY", "1", proc=sv)
    kids = wait_children(sv, app, 2)
    st = query_state(sock)
    assert int(st["pid"]) in kids
    assert int(st["ppid"]) == sv.pid
    env = state_env(st)
    leaked = sorted(k for k in env if k.startswith(
        ("LISTEN_", "NOTIFY_SOCKET", "WATCHDOG_")))
    assert leaked == [], leaked
    assert env.get("KEEP") == "me"
    fds = state_fds(st)
    assert sorted(fds) == [0, 1, 2], fds
    # fd 0 is the very socket the supervisor holds.
    held = {harness.socket_inode(harness.fd_target(sv.pid, int(fd)))
            for fd in os.listdir(f"/proc/{sv.pid}/fd")}
    assert harness.socket_inode(fds[0]) in held
    assert harness.unix_listener_inodes(sock) == \
        [harness.socket_inode(fds[0])]
    assert sigset(st["startup_sigblk"]) == set(), st["startup_sigblk"]
    assert sigset(st["startup_sigign"]) == set(), st["startup_sigign"]
    # SIGCHLD ignored by the caller does not hide the children's deaths
    # from the supervisor.
    victim = int(st["pid"])
    os.kill(victim, signal.SIGKILL)
    wait_children(sv, app, 2, exclude=[victim])
    notify.wait_status(summary(2, 1))


def test_pid_file_holds_the_supervisor(spawn, app, sock, tmp):
    pidfile = tmp / "sv.pid"
    sv = supervise(spawn, sock, 2, [app], "-P", pidfile)
    wait_children(sv, app, 2)
    assert pidfile.read_text().split() == [str(sv.pid)]
    assert terminate(sv) == 0, sv.describe()


def test_crash_loop_backs_off_then_gives_up(spawn, app, sock, tmp):
    starts = tmp / "starts"
    starts.mkdir()
    retries = 5
    sv = supervise(spawn, sock, 1,
                   [app, "--marker-dir", starts, "--exit", "3"],
                   "--restart-retries", retries)
    wait_exit_keep_zombie(sv.pid)
    runnable = runnable_seconds(sv.pid)
    rc = sv.wait()
    assert rc == GIVE_UP, sv.describe()
    assert re.search(r"failed \d+ times in a row .*giving up", sv.stderr), \
        sv.describe()
    assert "exited with status 3" in sv.stderr
    # The first start, then one per allowed retry: no more, no less.
    times = sorted(p.stat().st_mtime_ns for p in starts.iterdir())
    assert len(times) == retries + 1, sv.describe()
    gaps_ms = [(b - a) / 1e6 for a, b in zip(times, times[1:])]
    # At once after the first failure, then 100 ms doubling.  A child
    # writes its marker and exits at once, so each start comes at least its
    # back-off after the marker before it: a floor that holds however slow
    # the machine is (less the clock tick of file times and the
    # supervisor's whole milliseconds).
    backoffs = [0] + [BACKOFF_FIRST_MS * 2 ** i for i in range(retries - 1)]
    slack_ms = 15
    for gap, backoff in zip(gaps_ms, backoffs):
        assert gap >= backoff - slack_ms, (gaps_ms, backoffs)
    # Waiting is sleeping: over the back-off (1.5 s) the supervisor was
    # runnable for a small part of the time, where a busy loop would have
    # been runnable all the time.
    assert runnable < sum(backoffs) / 1000 / 2, \
        f"supervisor runnable for {runnable:.3f} s of {sum(backoffs)} ms"
    assert not os.path.lexists(sock), "own socket left behind"
    assert harness.app_pids(app) == []


def test_no_retries_gives_up_at_the_first_quick_failure(spawn, app, sock,
                                                       tmp):
    starts = tmp / "starts"
    starts.mkdir()
    sv = supervise(spawn, sock, 1,
                   [app, "--marker-dir", starts, "--exit", "3"],
                   "--restart-retries", 0)
    assert sv.wait() == GIVE_UP, sv.describe()
    assert len(list(starts.iterdir())) == 1
    assert "giving up" in sv.stderr


def test_give_up_stops_the_other_children(spawn, app, sock, tmp, recorder):
    crash = tmp / "crash"
    wrapper = tmp / "app-or-crash"
    wrapper.write_text(f"#!/bin/sh\n[ -e {crash} ] && exit 3\n"
                       f'exec "$@"\n')
    wrapper.chmod(0o755)
    sv = supervise(spawn, sock, 3, [wrapper, *recorder.argv("TERM")],
                   "--restart-retries", 2)
    kids = recorder.wait_ready(sv, 3)
    crash.write_text("")
    os.kill(kids[0], signal.SIGKILL)
    assert sv.wait(timeout=30) == GIVE_UP, sv.describe()
    assert "giving up" in sv.stderr
    # The two healthy children were asked to stop, with the stop signal.
    for pid in kids[1:]:
        assert recorder.of(pid) == ["ready", "TERM"], recorder.events()
    assert pids_gone(kids)
    assert not os.path.lexists(sock)


def test_child_that_lived_long_enough_is_no_quick_failure(spawn, app, sock,
                                                          tmp, notify):
    starts = tmp / "starts"
    starts.mkdir()
    # Each child lives 2 s, longer than the 1 s window (by more than any
    # delay in the supervisor noticing its start): the retries are never
    # used up, however often it dies.
    sv = supervise(spawn, sock, 1,
                   [app, "--marker-dir", starts, "--exit-after-ms", "2000",
                    "--exit-status", "3"],
                   "--restart-window", 1, "--restart-retries", 1,
                   notify=notify)
    notify.wait_status(summary(1, 3), timeout=40)
    assert sv.poll() is None, sv.describe()
    assert "giving up" not in sv.stderr
    # The status is sent once the 4th child reached exec; its marker is
    # written a moment later, by the application itself.
    wait_until(lambda: len(list(starts.iterdir())) >= 4, what="4 starts")
    assert terminate(sv) == 0, sv.describe()


def test_sigterm_during_back_off_stops_cleanly(spawn, app, sock, tmp):
    starts = tmp / "starts"
    starts.mkdir()
    sv = supervise(spawn, sock, 1,
                   [app, "--marker-dir", starts, "--exit", "3"],
                   "--restart-retries", 50)
    # After the 6th quick failure the back-off is 1.6 s (100 ms doubling):
    # the supervisor waits with no child, long enough to be found so.
    wait_until(lambda: sv.stderr.count("exited with status 3") >= 6,
               timeout=30, what="6 failed starts")
    assert app_children(sv.pid, app) == [], sv.describe()
    n = len(list(starts.iterdir()))
    assert terminate(sv) == 0, sv.describe()
    assert "giving up" not in sv.stderr
    assert not os.path.lexists(sock)
    # No child started after the stop, and none can start later: the
    # supervisor is gone and no application process is left.
    assert harness.app_pids(app) == []
    assert len(list(starts.iterdir())) == n, "a child started after the stop"


# ---------------------------------------------------------------------------
# stopping


def test_sigterm_sends_the_stop_signal_and_removes_own_socket(
        spawn, sock, tmp, recorder, notify):
    pidfile = tmp / "sv.pid"
    # The children exit on USR1 only: a TERM would not end them.
    sv = supervise(spawn, sock, 3, recorder.argv("USR1"),
                   "--stop-signal", "USR1", "--stop-timeout", 60,
                   "-P", pidfile, notify=notify)
    kids = recorder.wait_ready(sv, 3)
    notify.wait_for("READY", "1")
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    assert pidfile.read_text().split() == [str(sv.pid)]
    assert terminate(sv) == 0, sv.describe()
    for pid in kids:
        assert recorder.of(pid) == ["ready", "USR1"], recorder.events()
    assert pids_gone(kids)
    assert "killing them" not in sv.stderr
    assert not os.path.lexists(sock), "own socket left behind"
    notify.wait_for("STOPPING", "1")
    notify.wait_status(summary(3, 0, 'stopping'))


def test_sigint_stops_like_sigterm(spawn, sock, recorder):
    sv = supervise(spawn, sock, 2, recorder.argv("TERM"))
    kids = recorder.wait_ready(sv, 2)
    assert terminate(sv, signal.SIGINT) == 0, sv.describe()
    for pid in kids:
        assert recorder.of(pid) == ["ready", "TERM"], recorder.events()
    assert not os.path.lexists(sock)


def test_children_ignoring_term_are_killed_after_stop_timeout(spawn, app,
                                                              sock):
    sv = supervise(spawn, sock, 2, [app, "--ignore-term"],
                   "--stop-timeout", 1)
    kids = wait_children(sv, app, 2)
    wait_ignoring_term(kids)
    assert terminate(sv) == 0, sv.describe()
    assert "did not stop within 1000 ms: killing them" in sv.stderr
    assert pids_gone(kids)
    assert not os.path.lexists(sock)


def test_second_sigterm_is_forwarded_at_once(spawn, sock, recorder):
    # Children end on their second TERM only; the stop timeout is long.
    sv = supervise(spawn, sock, 2, recorder.argv("TERM:2"),
                   "--stop-timeout", 600)
    kids = recorder.wait_ready(sv, 2)
    sv.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: all(recorder.of(p).count("TERM") == 1 for p in kids),
               what="the first TERM in every child")
    assert sv.poll() is None
    assert terminate(sv) == 0, sv.describe()
    for pid in kids:
        assert recorder.of(pid) == ["ready", "TERM", "TERM"], \
            recorder.events()
    assert "killing them" not in sv.stderr


@pytest.mark.skipif(not os.access(ACTIVATE, os.X_OK),
                    reason="systemd-socket-activate not installed")
def test_passed_socket_is_left_alone(spawn_fcgi_bin, app, procs, sock):
    # systemd-socket-activate (without --now in this version) execs us on
    # the first connection, which the children then answer.
    sv = procs.start([ACTIVATE, "-l", sock, "--", spawn_fcgi_bin, "-w",
                      "-F", "2", "--", app], env=harness.base_env())
    harness.wait_for_listener(sock, proc=sv)
    before = os.lstat(sock)
    st = query_state(sock)
    assert int(st["ppid"]) == sv.pid
    kids = wait_children(sv, app, 2)
    assert int(st["pid"]) in kids
    assert terminate(sv) == 0, sv.describe()
    assert pids_gone(kids)
    after = os.lstat(sock)
    assert stat.S_ISSOCK(after.st_mode)
    assert (after.st_ino, after.st_dev) == (before.st_ino, before.st_dev)


# ---------------------------------------------------------------------------
# signals passed on


def test_usr1_and_usr2_are_forwarded(spawn, sock, recorder):
    sv = supervise(spawn, sock, 2, recorder.argv("TERM"))
    kids = recorder.wait_ready(sv, 2)
    sv.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: all("USR1" in recorder.of(p) for p in kids),
               what="USR1 in every child")
    sv.proc.send_signal(signal.SIGUSR2)
    wait_until(lambda: all("USR2" in recorder.of(p) for p in kids),
               what="USR2 in every child")
    assert sv.poll() is None
    # Forwarded, not a reason to restart anyone.
    assert sorted(app_children(sv.pid, PYTHON3)) == kids
    assert terminate(sv) == 0, sv.describe()
    for pid in kids:
        assert recorder.of(pid) == ["ready", "USR1", "USR2", "TERM"]


# ---------------------------------------------------------------------------
# reload


def test_sighup_replaces_every_child(spawn, app, sock, notify):
    sv = supervise(spawn, sock, 3, [app], notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    old = wait_children(sv, app, 3)
    t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    sv.proc.send_signal(signal.SIGHUP)
    rel = notify.wait_for("RELOADING", "1")
    t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert t0 <= int(rel[0]["MONOTONIC_USEC"]) <= t1, rel
    notify.wait_for("READY", "1", count=2)
    new = wait_children(sv, app, 3, exclude=old)
    assert pids_gone(old)
    # Order of the reports: RELOADING, then a "reloading" STATUS, then READY.
    keys = [m for m in notify.collect()]
    i_rel = next(i for i, m in enumerate(keys) if "RELOADING" in m)
    i_ready = max(i for i, m in enumerate(keys) if m.get("READY") == "1")
    assert i_rel < i_ready
    assert any(m.get("STATUS", "").endswith("; reloading")
               for m in keys[i_rel:i_ready]), keys
    assert re.fullmatch(summary(3, 0), keys[-1].get("STATUS", "")), keys
    served = {int(query_state(sock)["pid"]) for _ in range(9)}
    assert served <= set(new)
    assert sv.poll() is None
    assert terminate(sv) == 0, sv.describe()


@pytest.mark.parametrize("batch", [2, 5])
def test_reload_batches(spawn, app, sock, notify, batch):
    sv = supervise(spawn, sock, 4, [app], "--reload-batch", batch,
                   notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    old = wait_children(sv, app, 4)
    sv.proc.send_signal(signal.SIGHUP)
    notify.wait_for("READY", "1", count=2)
    wait_children(sv, app, 4, exclude=old)
    assert pids_gone(old)
    assert terminate(sv) == 0, sv.describe()


def test_reload_starts_new_child_before_old_one_stops(spawn, sock, recorder,
                                                      notify):
    # The children note the stop signal and stay until the test lets them
    # go: an old child asked to stop lingers, and its replacement already
    # runs next to it.
    sv = supervise(spawn, sock, 2, recorder.argv("USR2"),
                   "--stop-timeout", 600, notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    old = recorder.wait_ready(sv, 2)
    sv.proc.send_signal(signal.SIGHUP)
    # One batch: a new child next to both old ones, one of them asked to
    # stop.
    wait_until(lambda: any("TERM" in recorder.of(p) for p in old),
               what="an old child asked to stop")
    three = recorder.wait_ready(sv, 3)
    assert set(old) < set(three)
    assert len(notify.having("READY", "1")) == 1, "the reload ended early"
    release_when_asked(sv, recorder,
                       lambda: len(notify.having("READY", "1")) == 2,
                       "the end of the reload")
    recorder.wait_ready(sv, 2, exclude=old)
    assert pids_gone(old)
    assert stop_releasing(sv, recorder) == 0, sv.describe()


def test_reload_with_broken_application_keeps_old_children(spawn, app, sock,
                                                           tmp, notify):
    copy = tmp / "app-copy"
    shutil.copy(app, copy)
    sv = supervise(spawn, sock, 2, [copy], notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    old = wait_children(sv, copy, 2)
    os.rename(copy, tmp / "app-moved")
    sv.proc.send_signal(signal.SIGHUP)
    notify.wait_for("READY", "1", count=2)
    # The first failed start stops the reload: no second attempt.
    assert sv.stderr.count("cannot execute") == 1, sv.describe()
    assert "reload stopped: a new child could not be started" in sv.stderr
    assert sorted(app_children(sv.pid, tmp / "app-moved")) == old
    assert {int(query_state(sock)["pid"]) for _ in range(6)} <= set(old)
    assert sv.poll() is None
    # Once the application is back, the next reload replaces them.
    os.rename(tmp / "app-moved", copy)
    sv.proc.send_signal(signal.SIGHUP)
    notify.wait_for("READY", "1", count=3)
    wait_children(sv, copy, 2, exclude=old)
    assert terminate(sv) == 0, sv.describe()


def test_reload_during_back_off_keeps_restarting(spawn, app, sock, tmp,
                                                 notify):
    copy = tmp / "app-copy"
    shutil.copy(app, copy)
    sv = supervise(spawn, sock, 2, [copy], "--restart-retries", 50,
                   notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    old = wait_children(sv, copy, 2)
    os.rename(copy, tmp / "app-moved")
    os.kill(old[0], signal.SIGKILL)
    # The restart fails (no application) and backs off.
    wait_until(lambda: sv.stderr.count("cannot execute") >= 2,
               what="failed restarts")
    sv.proc.send_signal(signal.SIGHUP)
    notify.wait_for("READY", "1", count=2)
    os.rename(tmp / "app-moved", copy)
    # The back-off (at most 5 s) ends with the slot filled again; the other
    # slot kept its old child.
    now = wait_children(sv, copy, 2, exclude=[old[0]], timeout=20)
    assert old[1] in now
    assert terminate(sv) == 0, sv.describe()


def test_reload_stops_when_new_children_die_at_once(spawn, sock, tmp,
                                                    recorder, notify):
    crash = tmp / "crash"
    wrapper = tmp / "app-or-crash"
    wrapper.write_text(f"#!/bin/sh\n[ -e {crash} ] && exit 3\n"
                       f'exec "$@"\n')
    wrapper.chmod(0o755)
    sv = supervise(spawn, sock, 2, [wrapper, *recorder.argv("TERM")],
                   notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    old = recorder.wait_ready(sv, 2)
    # The new start is broken (a bad configuration, say).
    crash.write_text("")
    sv.proc.send_signal(signal.SIGHUP)
    notify.wait_for("READY", "1", count=2)
    assert "reload stopped" in sv.stderr, sv.describe()
    # The old children keep serving, untouched.
    assert sorted(app_children(sv.pid, PYTHON3)) == old
    for pid in old:
        assert recorder.of(pid) == ["ready"], recorder.events()
    assert "giving up" not in sv.stderr
    # Repaired, the next reload goes through.
    crash.unlink()
    sv.proc.send_signal(signal.SIGHUP)
    notify.wait_for("READY", "1", count=3)
    new = recorder.wait_ready(sv, 2, exclude=old)
    assert set(new).isdisjoint(old)
    for pid in old:
        assert recorder.of(pid) == ["ready", "TERM"], recorder.events()
    assert terminate(sv) == 0, sv.describe()


def test_sighup_during_reload_replaces_every_child_once_more(spawn, sock,
                                                             recorder,
                                                             notify):
    # The children note the stop signal and stay until the test lets them
    # go (see release_when_asked): the first reload waits for that.
    sv = supervise(spawn, sock, 3, recorder.argv("USR2"),
                   "--stop-timeout", 600, notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    old = recorder.wait_ready(sv, 3)
    sv.proc.send_signal(signal.SIGHUP)
    # The first batch's new child runs next to the old ones, the one it
    # replaces is asked to stop: a second reload now.
    wait_until(lambda: any("TERM" in recorder.of(p) for p in old),
               what="an old child asked to stop")
    recorder.wait_ready(sv, 4)
    sv.proc.send_signal(signal.SIGHUP)
    notify.wait_for("RELOADING", "1", count=2)
    release_when_asked(sv, recorder,
                       lambda: len(notify.having("READY", "1")) == 2,
                       "the end of the reloads")
    wait_until(lambda: re.fullmatch(summary(3, 0),
                                    notify.collect()[-1].get("STATUS", "")),
               what="the status after the reloads")
    new = recorder.wait_ready(sv, 3, exclude=old)
    assert pids_gone(old)
    # Nothing else is left running, supervised or not, and nothing is
    # about to start: the supervisor waits for events only.
    assert sorted(harness.app_pids(PYTHON3)) == new
    wait_asleep(sv)
    assert sorted(app_children(sv.pid, PYTHON3)) == new
    assert stop_releasing(sv, recorder) == 0, sv.describe()


def _hello_php(tmp):
    www = tmp / "www"
    www.mkdir()
    (www / "hello.php").write_text('<?php echo "hello ", getmypid(), "\\n";')
    return www


HELLO_RE = re.compile(rb"hello (\d+)\n")


def test_rolling_reload_under_load_loses_no_request(spawn, sock, tmp, nginx,
                                                    php_cgi, notify):
    www = _hello_php(tmp)
    # php-cgi's own recycling (PHP_FCGI_MAX_REQUESTS, 500 by default) is
    # switched off here: this test is about reloads only.
    sv = supervise(spawn, sock, 4, [php_cgi], notify=notify,
                   env={"PHP_FCGI_MAX_REQUESTS": "0"})
    notify.wait_for("READY", "1", proc=sv)
    old = wait_children(sv, php_cgi, 4)
    web = nginx(f"unix:{sock}", root=www)
    url = f"{web.url}/hello.php"

    stop = threading.Event()
    lock = threading.Lock()
    results = {"ok": 0, "pids": set(), "bad": []}

    def client():
        for _ in range(5000):
            if stop.is_set():
                return
            try:
                with urllib.request.urlopen(url, timeout=15) as r:
                    code, body = r.status, r.read()
            except (urllib.error.URLError, OSError) as e:
                code, body = getattr(e, "code", None), repr(e).encode()
            m = HELLO_RE.fullmatch(body)
            with lock:
                if code == 200 and m:
                    results["ok"] += 1
                    results["pids"].add(int(m.group(1)))
                else:
                    results["bad"].append((code, body[:200]))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: results["ok"] >= 50, timeout=30,
                   what="requests before the reload")
        readies = 1
        for _ in range(3):
            sv.proc.send_signal(signal.SIGHUP)
            readies += 1
            notify.wait_for("READY", "1", count=readies, timeout=30)
            n = results["ok"]
            wait_until(lambda: results["ok"] >= n + 30, timeout=30,
                       what="requests after the reload")
        # Two more, back to back.
        sv.proc.send_signal(signal.SIGHUP)
        sv.proc.send_signal(signal.SIGHUP)
        notify.wait_for("READY", "1", count=readies + 1, timeout=30)
        new = wait_children(sv, php_cgi, 4, exclude=old)
        n = results["ok"]
        wait_until(lambda: results["ok"] >= n + 30, timeout=30,
                   what="requests after the last reload")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert results["bad"] == [], (len(results["bad"]), results["bad"][:5],
                                  web.error_log()[-2000:])
    assert results["ok"] > 0
    # Old and new children answered; no old child is left.
    assert results["pids"] & set(old), "no request reached the old children"
    final = wait_children(sv, php_cgi, 4, exclude=old)
    assert set(final).isdisjoint(old)
    assert pids_gone(old)
    assert "restarting" not in sv.stderr, sv.describe()
    assert terminate(sv) == 0, sv.describe()
    assert new  # the set after the reloads was complete


# ---------------------------------------------------------------------------
# sd_notify


def test_watchdog_pings_when_asked(spawn, app, sock, notify):
    sv = supervise(spawn, sock, 1, [app], notify=notify,
                   env={"WATCHDOG_USEC": "200000"})
    notify.wait_for("READY", "1", proc=sv)
    # Every WatchdogSec/2 = 100 ms.
    notify.wait_for("WATCHDOG", "1", count=5)
    assert terminate(sv) == 0, sv.describe()


def test_watchdog_pid_of_the_supervisor_is_accepted(spawn, app, sock, notify):
    # The shell's pid becomes spawn-fcgi's when it execs.
    sv = supervise(spawn, sock, 1, [app], notify=notify,
                   env={"WATCHDOG_USEC": "200000"},
                   wrap=lambda argv: ["/bin/sh", "-c",
                                      'WATCHDOG_PID=$$ exec "$@"', "sh"]
                   + argv)
    notify.wait_for("READY", "1", proc=sv)
    assert notify.having("READY")[0]["MAINPID"] == str(sv.pid)
    notify.wait_for("WATCHDOG", "1", count=3)
    assert terminate(sv) == 0, sv.describe()


@pytest.mark.parametrize("env", [{"WATCHDOG_USEC": "200000",
                                  "WATCHDOG_PID": "1"}, {}],
                         ids=["other-pid", "not-asked"])
def test_no_watchdog_unless_meant_for_us(spawn, app, sock, notify, env):
    sv = supervise(spawn, sock, 1, [app], notify=notify, env=env)
    notify.wait_for("READY", "1", proc=sv)
    # A watchdog would keep a timer armed: the supervisor waits for events
    # only, and everything it sent so far has been read.
    wait_asleep(sv)
    notify.sync()
    assert notify.having("WATCHDOG") == []
    assert terminate(sv) == 0, sv.describe()


def test_no_notify_socket_still_supervises(spawn, app, sock):
    sv = supervise(spawn, sock, 2, [app])
    old = wait_children(sv, app, 2)
    os.kill(old[0], signal.SIGKILL)
    wait_children(sv, app, 2, exclude=[old[0]])
    assert terminate(sv) == 0, sv.describe()


# ---------------------------------------------------------------------------
# idle


def test_idle_supervisor_sleeps(spawn, app, sock, notify):
    sv = supervise(spawn, sock, 4, [app], notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    wait_children(sv, app, 4)
    # No timer is armed: it sleeps in poll() until a signal arrives.
    wait_asleep(sv)
    assert _timerfd_armed(sv.pid) == ["(0, 0)"]
    before = int(status_field(sv.pid, "voluntary_ctxt_switches"))
    # Requests are the children's business: the supervisor sleeps through
    # them.
    for _ in range(4):
        query_state(sock)
    assert asleep_until_an_event(sv.pid)
    after = int(status_field(sv.pid, "voluntary_ctxt_switches"))
    assert after == before, f"woke up {after - before} times while idle"
    assert status_field(sv.pid, "State").startswith("S")
    assert terminate(sv) == 0, sv.describe()


# ---------------------------------------------------------------------------
# bad input


def _refused(spawn, app, sock, marker, args, *needles):
    r = spawn.run_error(*args, "--", app, "--marker", marker)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, *needles)
    assert not marker.exists(), "the application was started"
    assert not os.path.lexists(sock), "a socket file was created"
    assert harness.app_pids(app) == []
    return r


def test_supervise_and_no_fork_exclude_each_other(spawn, app, sock, marker):
    for args in (["-w", "-n"], ["--no-fork", "--supervise"]):
        _refused(spawn, app, sock, marker, ["-s", sock, *args],
                 "exclude each other")


@pytest.mark.parametrize("opt", [
    ["--restart-retries", "2"], ["--restart-window", "5"],
    ["--stop-signal", "USR1"], ["--stop-timeout", "3"],
    ["--reload-batch", "2"]])
def test_supervisor_options_need_supervise(spawn, app, sock, marker, opt):
    _refused(spawn, app, sock, marker, ["-s", sock, "-F", "2", *opt],
             opt[0], "needs --supervise")


@pytest.mark.parametrize("value", ["FOO", "SIGFOO", "15", "", "TERMS"])
def test_stop_signal_must_be_a_signal_name(spawn, app, sock, marker, value):
    _refused(spawn, app, sock, marker,
             ["-w", "-s", sock, "--stop-signal", value], "--stop-signal")


@pytest.mark.parametrize("opt,value", [
    ("--restart-retries", "-1"), ("--restart-retries", "x"),
    ("--restart-window", "0"), ("--stop-timeout", "0"),
    ("--reload-batch", "0"), ("-F", "0")])
def test_supervisor_numbers_out_of_range(spawn, app, sock, marker, opt,
                                         value):
    _refused(spawn, app, sock, marker, ["-w", "-s", sock, opt, value], opt)


@pytest.mark.parametrize("name", ["term", "SIGUSR1", "sigint", "KILL"])
def test_stop_signal_names_accepted(spawn, app, sock, name):
    r = spawn.run("-w", "-s", sock, "--stop-signal", name, "--check", "--",
                  app)
    assert r.returncode == 0, r
    assert not os.path.lexists(sock)


# ---------------------------------------------------------------------------
# edge cases


def test_short_watchdog_interval_does_not_spin(spawn, app, sock, notify):
    started = time.monotonic()
    sv = supervise(spawn, sock, 1, [app], notify=notify,
                   env={"WATCHDOG_USEC": "1000"})
    notify.wait_for("READY", "1", proc=sv)
    notify.wait_for("WATCHDOG", "1", count=100, timeout=60)
    assert terminate(sv) == 0, sv.describe()
    lived_ms = (time.monotonic() - started) * 1000
    notify.sync()
    pings = len(notify.having("WATCHDOG"))
    # WatchdogSec/2 is 0.5 ms here: at most one ping per 0.5 ms of the
    # supervisor's life (a loaded machine only makes them fewer), where a
    # busy loop sends one every few microseconds.
    assert pings <= 2 * lived_ms + 2, \
        f"{pings} WATCHDOG=1 in {lived_ms:.0f} ms"


def test_php_cgi_recycling_itself_is_not_a_failure(spawn, sock, tmp,
                                                   php_cgi):
    www = _hello_php(tmp)
    sv = supervise(spawn, sock, 1, [php_cgi],
                   env={"PHP_FCGI_MAX_REQUESTS": "2"})
    wait_children(sv, php_cgi, 1)
    served = set()
    for i in range(12):
        try:
            r = harness.fcgi_request(sock, script=www / "hello.php")
        except AssertionError as e:
            raise AssertionError(f"request {i}: {e}\n{sv.describe()}")
        m = HELLO_RE.fullmatch(r.body)
        assert r.status == 200 and m, (i, r, sv.describe())
        served.add(int(m.group(1)))
    assert len(served) >= 5, served
    assert sv.poll() is None, sv.describe()
    assert terminate(sv) == 0, sv.describe()


def test_failed_start_during_reload_never_touches_the_old_child(spawn, sock, tmp,
                                                                recorder):
    """Even with --restart-retries 0, a reload whose new child cannot start
    is no failure of the running service: the old child is neither
    signalled nor replaced, and a later stop is graceful."""
    copy = tmp / "recorder-copy"
    shutil.copy(recorder.path, copy)
    sv = supervise(spawn, sock, 1, [copy, recorder.log, "TERM"],
                   "--restart-retries", 0, "--stop-timeout", 2)
    old = recorder.wait_ready(sv, 1)
    os.unlink(copy)
    sv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload stopped" in sv.stderr, what="the reload to stop")
    assert sv.poll() is None, sv.describe()
    assert recorder.of(old[0]) == ["ready"], recorder.events()
    assert terminate(sv) == 0, sv.describe()
    assert recorder.of(old[0]) == ["ready", "TERM"], recorder.events()
    assert "killing them" not in sv.stderr, sv.describe()


# ---------------------------------------------------------------------------
# libsystemd, loaded only when systemd talks to the supervisor


def libsystemd_mapped(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "/libsystemd.so" in f.read()


def test_libsystemd_is_loaded_only_for_notify(spawn, app, sock, notify):
    sv = supervise(spawn, sock, 1, [app])
    wait_children(sv, app, 1)
    assert not libsystemd_mapped(sv.pid), "libsystemd mapped without NOTIFY_SOCKET"
    assert terminate(sv) == 0
    sv = supervise(spawn, sock, 1, [app], notify=notify)
    notify.wait_for("READY", "1", proc=sv)
    assert libsystemd_mapped(sv.pid), "NOTIFY_SOCKET set, but libsystemd not mapped"
    assert terminate(sv) == 0


@pytest.mark.parametrize("var", ["NOTIFY_SOCKET", "WATCHDOG_USEC"])
def test_notify_without_loadable_libsystemd_starts_nothing(spawn, app, sock, tmp,
                                                          marker, notify, var):
    pid_file = tmp / "sv.pid"
    value = notify.path if var == "NOTIFY_SOCKET" else "1000000"
    r = spawn.run_error("-w", "-F", 2, "-s", sock, "-P", pid_file, "--", app,
                        "--marker", marker,
                        extra_env={var: value, "LD_LIBRARY_PATH": harness.broken_libsystemd(tmp)})
    assert r.returncode == 5, r
    errors = [line for line in r.stderr_lines if "warning" not in line]
    assert len(errors) == 1, r
    assert errors[0].startswith(
        f"spawn-fcgi: {var} is set, but cannot load libsystemd.so.0: "), r
    assert not marker.exists(), r
    assert not sock.exists() and not pid_file.exists(), r
    assert notify.collect() == [], r


def test_chroot_with_notify_socket_path_refused(spawn, app, sock, tmp, marker,
                                                notify):
    """libsystemd sends every notification to the NOTIFY_SOCKET path, which
    is not reachable inside the chroot: refused before anything starts,
    instead of systemd waiting for READY=1 in vain."""
    if os.geteuid() != 0:
        pytest.skip("--chroot needs root")
    root = tmp / "root"
    root.mkdir()
    r = spawn.run_error("-w", "-c", root, "-s", "/app.sock", "--", app,
                        "--marker", marker,
                        extra_env={"NOTIFY_SOCKET": notify.path})
    assert r.returncode == 2, r
    errors = [line for line in r.stderr_lines if "warning" not in line]
    assert errors == [f"spawn-fcgi: --supervise with --chroot cannot notify systemd: "
                      f"NOTIFY_SOCKET {notify.path} is not reachable inside the chroot"], r
    assert not marker.exists()
    assert os.listdir(root) == [], r
    assert notify.collect() == [], r
