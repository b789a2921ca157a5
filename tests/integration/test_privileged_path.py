"""The path from spawn-fcgi to the application, as root, against what the
application (another user) could do with what it inherits:

- the caller's controlling terminal (TIOCSTI: typing into root's shell);
- outliving a supervisor that was killed, and grandchildren that escape
  the supervisor with the listening socket;
- supplementary group 0 from a user that is a member of group root;
- the caller's personality (ASLR off) and umask;
- heap allocation between fork and exec (an LD_PRELOAD library makes any
  malloc/free there fatal), and the journal priority of the limits
  warning written on that path.

Every test runs in a private mount namespace with the fixture users of
harness.FakeEtc (webuser 1500:1500).
"""

import ctypes
import fcntl
import os
import resource
import shutil
import signal
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import pytest

import harness
from harness import (app_pids, assert_one_error_line, pid_alive, query_state,
                     wait_for_socket, wait_until)

WEBUSER = 1500
USAGE = 2
SETARCH = shutil.which("setarch") or "/usr/bin/setarch"
STRACE = shutil.which("strace") or "/usr/bin/strace"
MALLOC_GUARD = os.environ.get("MALLOC_GUARD", "")
ADDR_NO_RANDOMIZE = 0x0040000


@pytest.fixture
def outdir(tmp):
    """A directory any uid may write to, for what the scripts report."""
    d = tmp / "out"
    d.mkdir()
    os.chmod(d, 0o1777)
    return d


def script(tmp, name, body):
    """An executable python3 script in tmp that any user may run."""
    p = tmp / name
    p.write_text("#!/usr/bin/python3\n" + textwrap.dedent(body))
    os.chmod(p, 0o755)
    return p


def report(path, text):
    """What a script writes: atomically, so that a reader never sees half."""
    return (f"tmp = {str(path)!r} + '.tmp'\n"
            f"open(tmp, 'w').write({text})\n"
            f"os.rename(tmp, {str(path)!r})\n")


def read_when_there(path, what):
    wait_until(lambda: os.path.exists(path), timeout=20, what=what)
    return Path(path).read_text()


def stop(started):
    if started.poll() is None:
        os.kill(started.pid, signal.SIGTERM)
        started.wait()


# ---------------------------------------------------------------------------
# item 2: the application never has the caller's controlling terminal

# The application: tries to push a character into the input of every tty
# it can reach (fds 1 and 2, /dev/tty) and reports what happened, then
# waits to be stopped.
TIOCSTI_APP = """\
import fcntl, os, signal, sys, termios
out = sys.argv[1]
results = []
for fd in (1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"#")
        results.append(f"fd{fd}:injected")
    except OSError as e:
        results.append(f"fd{fd}:{e.errno}")
try:
    t = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    fcntl.ioctl(t, termios.TIOCSTI, b"#")
    results.append("devtty:injected")
except OSError as e:
    results.append(f"devtty:{e.errno}")
with open("/proc/self/stat") as f:
    tty_nr = f.read().rsplit(")", 1)[1].split()[4]
results.append(f"tty_nr:{tty_nr}")
""" + report("{out}", '" ".join(results)') + """\
signal.pause()
"""

# The caller: a process that owns the pty as its controlling terminal, the
# way an interactive shell does, and starts spawn-fcgi as a plain child
# ("child") or as a foreground job in its own process group ("job"), then
# waits for it; or becomes spawn-fcgi itself, the session leader
# ("leader").
SHELL = """\
import os, signal, sys
mode, argv = sys.argv[1], sys.argv[2:]
if mode == "leader":
    os.execv(argv[0], argv)
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    if mode == "job":
        os.setpgid(0, 0)
        os.tcsetpgrp(0, os.getpgrp())
    os.execv(argv[0], argv)
if mode == "job":
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
os.waitpid(pid, 0)
"""


class Terminal:
    """A pty whose slave is the controlling terminal of a shell-like
    process that runs one command (see SHELL)."""

    def __init__(self, argv, mode, env):
        self.master, slave = os.openpty()

        def take_terminal():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SHELL, mode] + [str(a) for a in argv],
            stdin=slave, stdout=slave, stderr=slave, env=env,
            start_new_session=True, preexec_fn=take_terminal)
        os.close(slave)
        os.set_blocking(self.master, False)

    def typed(self):
        """Everything that was written to the terminal so far."""
        out = b""
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except (BlockingIOError, OSError):
                return out
            if not chunk:
                return out
            out += chunk

    def close(self):
        harness.kill_tree(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal():
    made = []

    def make(argv, mode, env):
        t = Terminal(argv, mode, env)
        made.append(t)
        return t
    yield make
    for t in made:
        t.close()


def tiocsti_results(text):
    return dict(item.split(":", 1) for item in text.split())


@pytest.mark.parametrize("mode,how", [
    ("-n", "child"),       # setsid() is allowed
    ("-n", "job"),         # a process group leader: setsid() is not
    ("-n", "leader"),      # the session leader: TIOCNOTTY hangs up
    ("-w", "child"),
    ("-w", "job"),
])
def test_application_cannot_type_into_the_callers_terminal(
        spawn_fcgi_bin, fake_etc, tmp, outdir, sock, terminal, mode, how):
    out = outdir / "tiocsti"
    app = script(tmp, "tiocsti-app", TIOCSTI_APP.replace("{out}", str(out)))
    argv = fake_etc.wrap([spawn_fcgi_bin, mode, "-s", sock, "-u", "webuser",
                          "--", app, out])
    t = terminal(argv, how, harness.base_env())
    res = tiocsti_results(read_when_there(out, "the application's report"))
    # EPERM: the tty is not the application's controlling terminal.
    assert res["fd1"] == "1", res
    assert res["fd2"] == "1", res
    assert res["devtty"] != "injected", res
    assert res["tty_nr"] == "0", res
    assert b"#" not in t.typed().replace(b"spawn-fcgi", b"")


def test_no_fork_keeps_its_pid_when_leaving_the_terminal(
        spawn_fcgi_bin, fake_etc, tmp, outdir, sock, terminal):
    """daemontools and runit watch the pid they started: --no-fork still
    execs the application in place."""
    out = outdir / "tiocsti"
    app = script(tmp, "tiocsti-app", TIOCSTI_APP.replace("{out}", str(out)))
    argv = fake_etc.wrap([spawn_fcgi_bin, "-n", "-s", sock, "-u", "webuser",
                          "--", app, out])
    t = terminal(argv, "job", harness.base_env())
    read_when_there(out, "the application's report")
    children = harness.descendants(t.proc.pid)
    apps = [p for p in children
            if Path(f"/proc/{p}/cmdline").read_bytes().find(
                str(app).encode()) >= 0]
    assert len(apps) == 1, children
    # The application is the shell's own child: the pid the shell started.
    assert harness._proc_stat(apps[0])[0] == t.proc.pid


# ---------------------------------------------------------------------------
# item 6: children die with the supervisor; grandchildren do not escape


def test_children_die_with_a_killed_supervisor(spawn, app, sock, fake_etc):
    s = spawn.start("-w", "-F", "2", "-s", sock, "-u", "webuser", "--", app,
                    wrap=fake_etc.wrap)
    wait_for_socket(sock, proc=s)
    pids = wait_until(lambda: len(app_pids(app)) == 2 and app_pids(app),
                      what="2 supervised children")
    os.kill(s.pid, signal.SIGKILL)
    s.wait()
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=20,
               what="the children to die with their supervisor")
    harness.reap_zombies()
    # The socket is stale now: the next start takes it over.
    s2 = spawn.start("-w", "-s", sock, "-u", "webuser", "--", app,
                     wrap=fake_etc.wrap)
    wait_until(lambda: len(app_pids(app)) == 1, what="the new child")
    st = query_state(sock)
    assert int(st["pid"]) in app_pids(app)
    assert int(st["ppid"]) == s2.pid
    stop(s2)


# The application forks a grandchild that keeps fd 0 (the listening
# socket) and exits; later instances just wait.
FORKING_APP = """\
import os, signal, sys
out = sys.argv[1]
if os.path.exists(out):
    signal.pause()
pid = os.fork()
if pid == 0:
    signal.pause()
    os._exit(0)
""" + report("{out}", "str(pid)") + """\
os._exit(0)
"""


def test_grandchildren_are_reaped_by_the_supervisor(
        spawn, sock, fake_etc, tmp, outdir):
    out = outdir / "grandchild"
    app = script(tmp, "forking-app", FORKING_APP.replace("{out}", str(out)))
    s = spawn.start("-w", "-s", sock, "-u", "webuser", "--", app, out,
                    wrap=fake_etc.wrap)
    gc = int(read_when_there(out, "the grandchild's pid"))
    # Its parent exited: the supervisor adopts it and, since it belonged
    # to an application that is gone, stops it and reaps it.  It never
    # ends up elsewhere with the listening socket.
    wait_until(lambda: harness._proc_stat(gc) is None, timeout=20,
               what="the grandchild to be stopped and reaped")
    assert s.poll() is None
    stop(s)


# ---------------------------------------------------------------------------
# item 11: no supplementary group 0


@pytest.fixture
def root_member(fake_etc):
    """A user 'rootmember' (1510:1510) listed as a member of group root."""
    fake_etc.add_user("rootmember", 1510, 1510)
    fake_etc.add_group("rootmember", 1510)
    lines = []
    for line in fake_etc.group.read_text().splitlines():
        f = line.split(":")
        if len(f) == 4 and f[2] == "0":
            f[3] = ",".join([m for m in f[3].split(",") if m] + ["rootmember"])
            line = ":".join(f)
        lines.append(line)
    fake_etc.group.write_text("\n".join(lines) + "\n")
    return "rootmember"


@pytest.mark.parametrize("extra", [(), ("-g", "webuser")])
def test_member_of_group_root_is_refused(spawn, app, sock, fake_etc, marker,
                                          root_member, extra):
    r = spawn.run_error("-n", "-s", sock, "-u", root_member, *extra, "--",
                        app, "--marker", marker, wrap=fake_etc.wrap)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, root_member, "group", "gid 0")
    assert not marker.exists()
    assert not os.path.lexists(sock)


def test_member_of_group_root_is_refused_by_check(spawn, app, sock, fake_etc,
                                                   root_member):
    r = spawn.run_error("--check", "-s", sock, "-u", root_member, "--", app,
                        wrap=fake_etc.wrap)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, root_member, "gid 0")


# ---------------------------------------------------------------------------
# item 12: personality and umask


def no_aslr():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.personality(ADDR_NO_RANDOMIZE)


@pytest.mark.parametrize("mode", [("-n",), ("-w",), ("-F", "1")])
def test_personality_does_not_reach_the_application(spawn, app, sock,
                                                     fake_etc, mode):
    s = spawn.start(*mode, "-s", sock, "-u", "webuser", "--", app,
                    wrap=fake_etc.wrap, preexec=no_aslr)
    wait_for_socket(sock, proc=s)
    st = query_state(sock)
    with open(f"/proc/{st['pid']}/personality") as f:
        assert int(f.read(), 16) == 0
    if mode == ("-w",):
        # The supervisor itself keeps what it was given.
        with open(f"/proc/{s.pid}/personality") as f:
            assert int(f.read(), 16) == ADDR_NO_RANDOMIZE
    stop(s)


def test_caller_umask_is_kept_with_a_warning_when_it_lets_others_write(
        spawn, app, sock, fake_etc):
    s = spawn.start("-n", "-s", sock, "-u", "webuser", "--", app,
                    wrap=fake_etc.wrap, umask=0o002)
    wait_for_socket(sock, proc=s)
    assert query_state(sock)["umask"] == "0002"
    warnings = [line for line in s.stderr.splitlines()
                if line.startswith("spawn-fcgi: warning: ") and "umask" in line]
    assert len(warnings) == 1, s.stderr
    assert "0002" in warnings[0] and "--umask" in warnings[0]


def test_caller_umask_0022_is_kept_silently(spawn, app, sock, fake_etc):
    s = spawn.start("-n", "-s", sock, "-u", "webuser", "--", app,
                    wrap=fake_etc.wrap, umask=0o022)
    wait_for_socket(sock, proc=s)
    assert query_state(sock)["umask"] == "0022"
    assert "umask" not in s.stderr


@pytest.mark.parametrize("mode", [("-n",), ("-w",), ("-F", "1")])
def test_umask_option_sets_the_applications_umask(spawn, app, sock, fake_etc,
                                                   mode):
    s = spawn.start(*mode, "--umask=027", "-s", sock, "-u", "webuser", "--",
                    app, wrap=fake_etc.wrap, umask=0)
    wait_for_socket(sock, proc=s)
    assert query_state(sock)["umask"] == "0027"
    assert "warning" not in s.stderr
    stop(s)


def test_umask_config_key(spawn, app, sock, fake_etc, tmp):
    conf = tmp / "app.conf"
    conf.write_text(f"[spawn-fcgi]\nexec={app}\nsocket={sock}\n"
                    "user=webuser\numask=0077\nno-fork=true\n")
    s = spawn.start("--config", conf, wrap=fake_etc.wrap)
    wait_for_socket(sock, proc=s)
    assert query_state(sock)["umask"] == "0077"


@pytest.mark.parametrize("bad", ["0999", "1000", "abc", "", "-1"])
def test_bad_umask_is_a_usage_error(spawn, app, sock, bad):
    r = spawn.run_error(f"--umask={bad}", "-n", "-s", sock, "--", app)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, "umask")
    assert not os.path.lexists(sock)


# ---------------------------------------------------------------------------
# item 14: no allocation between fork and exec


@pytest.fixture
def guard(tmp):
    """Environment that loads the malloc guard into spawn-fcgi; the guard
    writes what it caught to the returned report path and aborts."""
    if not MALLOC_GUARD or not os.path.exists(MALLOC_GUARD):
        pytest.fail("MALLOC_GUARD is not set (run the tests through meson "
                    "test)", pytrace=False)
    rep = tmp / "malloc-guard.report"
    env = {"LD_PRELOAD": MALLOC_GUARD, "MALLOC_GUARD_REPORT": rep,
           # sanitizer builds: our library comes before their runtime
           "ASAN_OPTIONS": "verify_asan_link_order=0:detect_leaks=0"}
    return env, rep


@pytest.fixture
def limits_file(tmp):
    """A limits file with one line that works (lower nofile) and one that
    cannot (raise the hard core limit without CAP_SYS_RESOURCE, once
    low_core_limit lowered it), for the path that reports and goes on
    (--limits-ignore-errors)."""
    cur_soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    f = tmp / "limits.conf"
    f.write_text(f"webuser soft nofile {min(cur_soft, 512)}\n"
                 "webuser hard core unlimited\n")
    return f


def low_core_limit():
    """preexec: a finite hard core limit, which limits_file raises."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 1024))


def assert_nothing_caught(rep):
    assert not rep.exists(), rep.read_text()


@pytest.mark.parametrize("mode", [("-n",), ("-F", "2"), ("-w", "-F", "2")])
def test_no_allocation_between_fork_and_exec(spawn, app, sock, fake_etc,
                                             guard, limits_file, tmp, mode):
    env, rep = guard
    args = [*mode, "-s", sock, "-u", "webuser", "-d", tmp, "--no-new-privs",
            "-l", "--limits-file", limits_file, "--limits-ignore-errors",
            "--", app]
    if mode[0] == "-F":
        r = spawn.run(*args, wrap=fake_etc.wrap, extra_env=env,
                      preexec=low_core_limit)
        assert r.returncode == 0, (r, rep.exists() and rep.read_text())
        assert "cannot set core" in r.stderr
    else:
        s = spawn.start(*args, wrap=fake_etc.wrap, extra_env=env,
                        preexec=low_core_limit)
        wait_for_socket(sock, proc=s)
    st = query_state(sock)
    assert st["uid"] == str(WEBUSER)
    assert_nothing_caught(rep)
    if mode[0] == "-w":
        stop(s)
        assert_nothing_caught(rep)


def test_no_allocation_without_close_range(spawn, app, sock, fake_etc, guard,
                                           tmp):
    """Kernels before 5.11: the fds are walked without opendir()."""
    if not os.access(STRACE, os.X_OK):
        pytest.fail("strace not installed (apt-get install strace)")
    env, rep = guard

    def wrap(argv):
        return fake_etc.wrap([STRACE, "-f", "-qq", "-o", "/dev/null",
                              "-e", "trace=close_range",
                              "-e", "inject=close_range:error=ENOSYS"]
                             + list(argv))
    # strace follows the application too: it stays until the cleanup.
    s = spawn.start("-F", "1", "-s", sock, "-u", "webuser", "--", app,
                    wrap=wrap, extra_env=env)
    wait_until(lambda: "child spawned successfully" in s.stdout
               or s.poll() is not None, timeout=20, what="the fork-mode start")
    assert "child spawned successfully" in s.stdout, \
        (s.describe(), rep.exists() and rep.read_text())
    st = query_state(sock)
    assert sorted(harness.state_fds(st)) == [0, 1, 2], st
    assert_nothing_caught(rep)


def test_guard_catches_an_allocation(tmp):
    """The guard itself works: a program named spawn-fcgi that allocates
    in a forked child is caught."""
    if not MALLOC_GUARD:
        pytest.fail("MALLOC_GUARD is not set", pytrace=False)
    rep = tmp / "report"
    prog = tmp / "spawn-fcgi"
    shutil.copy(sys.executable, prog)
    code = ("import os\npid = os.fork()\nif pid == 0:\n"
            "    x = [bytearray(100000) for _ in range(10)]\n    os._exit(0)\n"
            "print(os.waitpid(pid, 0)[1])\n")
    r = subprocess.run([prog, "-c", code], capture_output=True, text=True,
                       env={"LD_PRELOAD": MALLOC_GUARD,
                            "MALLOC_GUARD_REPORT": str(rep), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r
    assert os.WIFSIGNALED(int(r.stdout)) and \
        os.WTERMSIG(int(r.stdout)) == signal.SIGABRT, r
    assert "between fork and exec" in rep.read_text()


def test_limits_warning_keeps_its_journal_priority(spawn, app, sock,
                                                   fake_etc, limits_file):
    """The warning written on the child path carries the sd-daemon
    priority when stderr is the journal, like every other line."""
    def wrap(argv):
        inner = fake_etc.wrap(argv)
        return ["/bin/sh", "-c",
                'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) '
                'exec "$@"', "sh"] + inner
    s = spawn.start("-n", "-s", sock, "-u", "webuser", "-l", "--limits-file",
                    limits_file, "--limits-ignore-errors", "--", app,
                    wrap=wrap, preexec=low_core_limit)
    wait_for_socket(sock, proc=s)
    query_state(sock)  # the application runs: the warning was written
    lines = [line for line in s.stderr.splitlines() if "core" in line]
    assert len(lines) == 1, s.stderr
    assert lines[0].startswith("<4>spawn-fcgi: warning: cannot set core"), \
        s.stderr
