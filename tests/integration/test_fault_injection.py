"""Fault injection: each system call of the privileged phase is made to fail
(strace -e inject=...), and spawn-fcgi must fail closed:

- it exits with the documented status (src/exit-status.h, README.md);
- it says what failed in one line naming the step;
- the application never ran (its marker file is absent, no process of it
  is alive);
- nothing that was not its own was removed: the socket's directory holds
  what it held before (its own socket is gone), and a PID file it created
  is gone again.

Every test runs as root in a private mount namespace with the fixture
users (fake_etc), so that the privilege drop to webuser really happens.

strace counts injections per system call and per process (tracee).  When
the failing call is not the first of its kind in that process (the C
library and NSS make some of the same calls earlier), a calibration run
traces the same command without injection and finds the position of the
call we mean ("when=N").  strace does not inject into calls it does not
trace, so every injection also traces the call (-e trace=SYSCALL).
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest

import harness
from harness import app_pids

STRACE = shutil.which("strace") or "/usr/bin/strace"

# src/exit-status.h
CHILD_FAILED, USAGE, LOOKUP, SOCKET, PRIVILEGE = 1, 2, 3, 4, 5
NOT_EXECUTABLE, NOT_FOUND = 126, 127

MODES = ("no-fork", "fork", "supervise")
MODE_ARGS = {"no-fork": ["-n"], "fork": [], "supervise": ["-w"]}

# LeakSanitizer cannot work under ptrace, nor in a chroot without /proc: in
# a build with -Db_sanitize=address it would turn those exit statuses into 1.
NO_LSAN = {"ASAN_OPTIONS": "detect_leaks=0"}

# Guard against a hang (strace follows the application too, so a fault
# that was not injected leaves strace waiting for it); not a speed check.
RUN_TIMEOUT = 90

@pytest.fixture(scope="module")
def strace_works():
    """strace must be able to trace and inject here (ptrace allowed)."""
    if not os.access(STRACE, os.X_OK):
        pytest.skip("strace not installed (apt-get install strace)")
    p = subprocess.run([STRACE, "-f", "-qq", "-o", "/dev/null", "/bin/true"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        pytest.skip(f"strace cannot trace here (ptrace denied?): {p.stderr}")
    p = subprocess.run([STRACE, "-f", "-qq", "-o", "/dev/null",
                        "-e", "trace=chdir", "-e", "inject=chdir:error=EPERM",
                        "/bin/sh", "-c", "cd /"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        pytest.fail("strace ran but did not inject a failure: the tests "
                    f"below would prove nothing\n{p.stderr}")
    return STRACE


@pytest.fixture
def world(tmp, fake_etc, strace_works):
    """The files a failed start must leave alone."""
    return World(tmp, fake_etc)


class World:
    def __init__(self, tmp, fake_etc):
        self.tmp = tmp
        self.fake_etc = fake_etc
        self.run_dir = tmp / "run"
        self.run_dir.mkdir()
        self.keep = self.run_dir / "keep-me"
        self.keep.write_text("not spawn-fcgi's\n")
        os.symlink("keep-me", self.run_dir / "link-me")
        (self.run_dir / "dir-me").mkdir()
        self.sock = self.run_dir / "app.sock"
        self.pid_file = self.run_dir / "app.pid"
        mdir = tmp / "m"
        mdir.mkdir()
        os.chmod(mdir, 0o1777)  # webuser must be able to write the marker
        self.marker = mdir / "marker"
        self.work = tmp / "work"
        self.work.mkdir()
        self.chroot = tmp / "chroot"
        self.chroot.mkdir()
        self.limits = tmp / "limits.conf"
        self.snapshot = None

    def take_snapshot(self):
        self.snapshot = {p: harness.file_snapshot(self.run_dir / p)
                         for p in os.listdir(self.run_dir)}

    def leftovers(self, result):
        """Names in the run dir that were not there before.  Everything
        that was there must be there, unchanged."""
        now = set(os.listdir(self.run_dir))
        for p, snap in self.snapshot.items():
            assert p in now, f"{p} was removed\n{result}"
            assert harness.file_snapshot(self.run_dir / p) == snap, \
                f"{p} changed\n{result}"
        return now - set(self.snapshot)


@dataclass
class Case:
    id: str
    syscall: str                 # as strace names it
    needle: str                  # in the error line
    status: dict                 # mode -> exit status
    opts: tuple = ()             # extra spawn-fcgi options ({work}...)
    error: str = "EPERM"
    retval: int = None           # inject a fake success instead
    pattern: str = None          # calibrate: first call matching this
    after: tuple = None          # calibrate: (syscall, regex) to pass first
    process: str = "app"         # where the call is: "app" or "main"
    path: str = None             # "app": -P filter on the application
    modes: tuple = MODES
    source: str = "unix"         # unix, tcp
    covers: str = None           # name in the coverage report
    limits: str = None           # limits.conf text (with -l)
    repeat: bool = True          # also fail the later calls (False: the
                                 # call is write and the message needs one)
    stale: bool = False          # a stale socket is at the path before


def child_side(no_fork=PRIVILEGE):
    """A failure in the process that becomes the application: in place it
    is the step's status, in fork and supervised mode the child's failure
    makes the start fail (1)."""
    return {"no-fork": no_fork, "fork": CHILD_FAILED,
            "supervise": CHILD_FAILED}


def all_modes(status):
    return {m: status for m in MODES}


LIMITS_NOFILE = "webuser soft nofile 256\n"
LIMITS_PRIORITY = "webuser - priority 7\n"

CASES = [
    # -- the socket (main process, before any mode differs)
    Case("socket-unix", "socket", "cannot create a unix socket",
         all_modes(SOCKET), process="main",
         pattern=r"socket\(AF_UNIX, SOCK_STREAM\|SOCK_CLOEXEC, 0\)"),
    Case("socket-tcp", "socket", "cannot create a TCP socket",
         all_modes(SOCKET), process="main", source="tcp",
         pattern=r"socket\(AF_INET, SOCK_STREAM\|SOCK_CLOEXEC"),
    Case("bind-unix", "bind", "cannot bind to", all_modes(SOCKET),
         process="main"),
    Case("bind-tcp", "bind", "cannot bind to 127.0.0.1:",
         all_modes(SOCKET), process="main", source="tcp"),
    Case("fchownat", "fchownat", "owner", all_modes(SOCKET),
         process="main"),
    Case("socket-dir", "openat", "directory of socket", all_modes(SOCKET),
         process="main", error="EMFILE",
         pattern=r'openat\(AT_FDCWD, "{RUN}", [^)]*O_PATH',
         after=("openat", r'openat\(\d+, "app\.pid"')),
    Case("socket-file", "openat", "app.sock", all_modes(SOCKET),
         process="main", error="EMFILE",
         pattern=r'openat\(\d+, "app\.sock", [^)]*O_PATH', repeat=False),
    # -- -M on a passed socket: only on its own file, through an O_PATH fd
    Case("passed-open", "openat", "cannot open socket", all_modes(SOCKET),
         process="main", source="passed", error="EMFILE",
         pattern=r'openat\(AT_FDCWD, "{RUN}/app\.sock", [^)]*O_PATH'),
    Case("passed-chmod", "chmod", "cannot change mode", all_modes(SOCKET),
         process="main", source="passed", covers="chmod"),
    # -- which file the socket is bound to (sock_diag)
    Case("socket-netlink", "socket", "which file socket", all_modes(SOCKET),
         process="main", error="EMFILE", pattern=r"socket\(AF_NETLINK"),
    Case("sendto-diag", "sendto", "which file socket", all_modes(SOCKET),
         process="main", pattern=r"sa_family=AF_NETLINK"),
    Case("recvfrom-diag", "recvfrom", "which file socket", all_modes(SOCKET),
         process="main", error="EIO"),
    # -- a stale socket at the path, replaced by identity
    Case("probe-connect", "connect", "whether socket", all_modes(SOCKET),
         process="main", stale=True, pattern=r"app\.sock"),
    Case("stash-mkdirat", "mkdirat", "private directory", all_modes(SOCKET),
         process="main", stale=True, error="EACCES"),
    Case("stash-open", "openat", "private directory", all_modes(SOCKET),
         process="main", stale=True, error="EMFILE",
         pattern=r'openat\(\d+, "\.spawn-fcgi-', repeat=False),
    Case("stash-rename", "renameat2", "move stale socket", all_modes(SOCKET),
         process="main", stale=True, error="EINVAL", repeat=False),
    Case("stash-fchdir", "fchdir", "cannot check socket", all_modes(SOCKET),
         process="main", stale=True),
    Case("stash-unlinkat", "unlinkat", "cannot remove stale socket",
         all_modes(SOCKET), process="main", stale=True,
         pattern=r'unlinkat\(\d+, "socket", 0\)', repeat=False),
    Case("listen-unix", "listen", "cannot listen on", all_modes(SOCKET),
         process="main"),
    Case("listen-tcp", "listen", "cannot listen on 127.0.0.1:",
         all_modes(SOCKET), process="main", source="tcp"),
    # -- chroot (main process)
    Case("chroot", "chroot", "cannot chroot to", all_modes(PRIVILEGE),
         opts=("-c", "{chroot}"), process="main"),
    Case("chroot-socket-before", "chroot", "cannot chroot to",
         all_modes(PRIVILEGE), opts=("-c", "{chroot}", "-S"),
         process="main"),
    Case("chdir-chroot", "chdir", "cannot chdir to / in chroot",
         all_modes(PRIVILEGE), opts=("-c", "{chroot}"), process="main"),
    Case("pid-file-dir", "openat", "cannot open PID file", all_modes(USAGE),
         error="EMFILE", process="main",
         pattern=r'openat\(AT_FDCWD, "{RUN}", [^)]*O_PATH'),
    Case("pid-file", "openat", "cannot open PID file", all_modes(USAGE),
         error="EACCES", process="main", pattern=r'openat\(\d+, "app\.pid"'),
    # -- fork and supervised mode: the fork itself
    Case("clone", "clone,clone3", "cannot start child",
         {"fork": CHILD_FAILED, "supervise": CHILD_FAILED},
         modes=("fork", "supervise"), process="main", error="EAGAIN",
         covers="clone"),
    Case("pipe2", "pipe2", "cannot start child",
         {"fork": CHILD_FAILED, "supervise": CHILD_FAILED},
         modes=("fork", "supervise"), process="main", error="EMFILE"),
    Case("gate-write", "write", "cannot start children: write to their start pipe",
         {"fork": CHILD_FAILED}, modes=("fork",), process="main", error="EIO",
         pattern=r'write\(\d+, "g+", \d+\)', repeat=False),
    Case("setsid", "setsid", "setsid failed", {"fork": CHILD_FAILED},
         modes=("fork",)),
    Case("signalfd", "signalfd4", "event sources", {"supervise": PRIVILEGE},
         modes=("supervise",), process="main"),
    Case("timerfd", "timerfd_create", "event sources",
         {"supervise": PRIVILEGE}, modes=("supervise",), process="main"),
    # -- the launch steps, in the process that becomes the application
    # setrlimit, prctl and rt_sigprocmask: spawn-fcgi itself makes such
    # calls before it forks (reading the limits, the C library's start-up,
    # NSS), and strace counts per process, so these run in place only; the
    # launch code is the same in every mode.
    Case("setrlimit", "prlimit64", "cannot set nofile", child_side(),
         opts=("-l", "--limits-file", "{limits}"), limits=LIMITS_NOFILE,
         pattern=r"prlimit64\(0, RLIMIT_NOFILE, \{", covers="setrlimit",
         modes=("no-fork",)),
    Case("setpriority", "setpriority", "cannot set priority", child_side(),
         opts=("-l", "--limits-file", "{limits}"), limits=LIMITS_PRIORITY),
    Case("chdir", "chdir", "cannot chdir to", child_side(),
         opts=("-d", "{work}")),
    Case("setgroups", "setgroups", "setgroups", child_side()),
    Case("setresgid", "setresgid", "setresgid", child_side()),
    Case("setresuid", "setresuid", "setresuid", child_side()),
    # EPERM is how systemd's LockPersonality=yes answers (accepted, see
    # launch.c): any other failure must stop the start.
    Case("personality", "personality", "cannot reset the personality",
         child_side(), error="EINVAL"),
    Case("prctl", "prctl", "no_new_privs", child_side(),
         opts=("--no-new-privs",), pattern=r"PR_SET_NO_NEW_PRIVS",
         modes=("no-fork",)),
    Case("dup2-socket", "dup2", "cannot put the socket on fd 0",
         child_side(), pattern=r"dup2\(\d+, 0\)"),
    Case("dup2-stdio", "dup2", "cannot redirect stdout/stderr",
         {"fork": CHILD_FAILED}, modes=("fork",), pattern=r"dup2\(\d+, 1\)"),
    Case("close_range", "close_range", "cannot close inherited",
         child_side()),
    Case("sigaction", "rt_sigaction", "cannot reset signals (sigaction)",
         child_side(), pattern=r"rt_sigaction\(SIGPIPE, \{sa_handler=SIG_DFL",
         after=("close_range", r"close_range\(3,"), covers="sigaction"),
    Case("sigprocmask", "rt_sigprocmask", "cannot reset signals (sigprocmask)",
         child_side(), pattern=r"rt_sigprocmask\(SIG_SETMASK, \[\]",
         after=("close_range", r"close_range\(3,"), covers="sigprocmask",
         modes=("no-fork",)),
    Case("execve-eperm", "execve", "cannot execute",
         child_side(NOT_EXECUTABLE), path="app"),
    Case("execve-enoent", "execve", "cannot execute",
         child_side(NOT_FOUND), path="app", error="ENOENT"),
    # -- calls that lie: they report success and change nothing; the
    #    verification after the drop must notice
    Case("setgroups-lies", "setgroups", "supplementary groups differ",
         child_side(), retval=0),
    Case("setresgid-lies", "setresgid", "did not take effect: gids are",
         child_side(), retval=0),
    Case("setresuid-lies", "setresuid", "did not take effect: uids are",
         child_side(), retval=0),
    Case("setuid0-succeeds", "setuid", "uid 0 could be regained",
         child_side(), retval=0),
    Case("setgid0-succeeds", "setgid", "gid 0 could be regained",
         child_side(), retval=0),
    # the supervisor died before its child set the parent-death signal:
    # the child finds another parent and starts nothing
    Case("parent-gone", "getppid", "cannot tie the child to its supervisor",
         {"supervise": CHILD_FAILED}, modes=("supervise",), retval=1),
]

PARAMS = [pytest.param(c, m, id=f"{c.id}-{m}") for c in CASES
          for m in c.modes]


# ---------------------------------------------------------------------------
# running spawn-fcgi under strace


def base_args(world, case, mode, port):
    fmt = {"work": world.work, "chroot": world.chroot,
           "limits": world.limits}
    args = list(MODE_ARGS[mode])
    if case.source == "tcp":
        args += ["-a", "127.0.0.1", "-p", str(port)]
    elif case.source == "passed":
        args += ["-M", "0640"]
    else:
        args += ["-s", world.sock]
    args += ["-P", world.pid_file, "-u", "webuser"]
    args += [str(o).format(**fmt) for o in case.opts]
    return args


def strace_wrap(world, prefix, passed=False):
    """argv under strace with the fixture users; passed: with the socket
    on stdin passed on fd 3 through LISTEN_FDS."""
    if passed:
        return lambda argv: world.fake_etc.wrap(
            prefix + harness.passing_on_fd3(argv))
    return lambda argv: world.fake_etc.wrap(prefix + list(argv))


def passed_socket(world, case):
    """For a case with a passed socket: a listening socket at world.sock,
    mode 0600 (the case asks for 0640); None for the other cases."""
    if case.source != "passed":
        return None
    if os.path.lexists(world.sock):
        os.unlink(world.sock)
    listener = harness.listening_unix_socket(world.sock)
    os.chmod(world.sock, 0o600)
    return listener


def calibrate(spawn, world, case, args, app, listener=None):
    """when= for the call of case.syscall matching case.pattern (any call
    without a pattern), after case.after, in case.process, from a run of
    the same command without injection.

    strace counts calls per process, so when=N also fails the N-th call of
    every other traced process: the calibration refuses a case where a
    process other than the intended one makes that many calls before it
    could become the application."""
    log = world.tmp / f"calibrate-{case.id}.log"
    names = set(case.syscall.split(","))
    traced = names | {"execve"}
    if case.after:
        traced.add(case.after[0])
    prefix = [STRACE, "-f", "-qq", "-s", "256", "-o", str(log),
              "-e", "trace=" + ",".join(sorted(traced)), "--"]
    # The application fails at once and leaves no marker (a failure, so
    # that the supervisor gives up; it restarts clean exits).
    r = spawn.run(*args, "--", app, "--exit", "3", extra_env=NO_LSAN,
                  wrap=strace_wrap(world, prefix, listener is not None),
                  stdin=listener and listener.fileno(), timeout=RUN_TIMEOUT)
    lines = log.read_text(errors="replace").splitlines()
    trace = "\n".join(lines)
    app_exec = (f'execve("{app}"', f'execve("{os.path.realpath(app)}"')

    # Per process: its calls up to the exec of the application.
    calls, order = {}, []
    execd = set()
    for line in lines:
        m = re.match(r"^(\d+)\s+(.*)$", line)
        if not m or m.group(2).startswith(("<...", "+++", "---")):
            continue
        pid, entry = int(m.group(1)), m.group(2)
        if pid not in calls:
            calls[pid] = []
            order.append(pid)
        if pid in execd:
            continue
        if entry.startswith(app_exec):
            execd.add(pid)
            continue
        calls[pid].append(entry)
    if not order:
        pytest.fail(f"calibration traced nothing\n{r}")
    if case.process == "main":
        pid = order[0]
    else:
        apps = [p for p in order if p in execd]
        if not apps:
            pytest.fail(f"calibration: the application was not started\n"
                        f"{r}\n{trace}")
        pid = apps[0]

    pattern = case.pattern and case.pattern.replace(
        "{RUN}", re.escape(str(world.run_dir)))
    when, n = None, 0
    passed_anchor = case.after is None
    for entry in calls[pid]:
        if not passed_anchor and re.match(case.after[1], entry):
            passed_anchor = True
        if entry.split("(", 1)[0] in names:
            n += 1
            if passed_anchor and (pattern is None
                                  or re.search(pattern, entry)):
                when = n
                break
    if when is None:
        pytest.fail(f"calibration: no {case.syscall} call matching "
                    f"{case.pattern!r} in process {pid}\n{r}\n{trace}")

    # Processes that would be hit too: every other process that is not
    # meant to become the application (the application processes of
    # fork and supervised mode are each meant to fail the same way).
    for other in order:
        if other == pid or (case.process == "app" and other in execd):
            continue
        hit = [e for e in calls[other] if e.split("(", 1)[0] in names]
        if len(hit) >= when:
            pytest.fail(f"cannot inject into process {pid} only: process "
                        f"{other} makes its own call {when} first: "
                        f"{hit[when - 1]}\n{trace}")
    return when


def inject(spawn, world, case, mode, app, port):
    args = base_args(world, case, mode, port)
    when = None
    if case.stale:
        harness.make_stale_socket(world.sock)
    listener = passed_socket(world, case)
    if case.path is None:
        saved = world.pid_file.read_bytes() if world.pid_file.exists() \
            else None
        when = calibrate(spawn, world, case, args, app, listener)
        # Undo what the calibration run did.
        harness.kill_tree()
        for p in (world.sock, world.pid_file, world.marker):
            if os.path.lexists(p):
                os.unlink(p)
        if saved is not None:
            world.pid_file.write_bytes(saved)
        if case.stale:
            harness.make_stale_socket(world.sock)
        if listener is not None:
            listener.close()
            listener = passed_socket(world, case)
    world.take_snapshot()

    spec = f"inject={case.syscall}:"
    spec += f"retval={case.retval}" if case.retval is not None \
        else f"error={case.error}"
    if when is not None:
        # and every later call of that process (the supervisor retries)
        spec += f":when={when}" + ("+" if case.repeat else "")
    prefix = [STRACE, "-f", "-qq", "-o", "/dev/null",
              "-e", f"trace={case.syscall}", "-e", spec]
    if case.path == "app":
        prefix += ["-P", str(app)]
    prefix.append("--")
    s = spawn.start(*args, "--", app, "--marker", world.marker,
                    extra_env=NO_LSAN,
                    wrap=strace_wrap(world, prefix, listener is not None),
                    stdin=listener and listener.fileno())
    if listener is not None:
        listener.close()
    return finish(s, world, spec), spec


def finish(started, world, spec):
    """Waits for the command to end.  If the application starts instead
    (its marker appears), the injection did not stop it: fail at once
    rather than wait for a timeout (strace would wait for it forever)."""
    harness.wait_until(
        lambda: started.poll() is not None or world.marker.exists(),
        timeout=RUN_TIMEOUT, what=f"spawn-fcgi to end ({spec})")
    if started.poll() is None:
        harness.kill_tree()
        started.wait()
        pytest.fail(f"{spec}: the application was started\n"
                    f"{started.describe()}")
    return started.result()


# ---------------------------------------------------------------------------
# what a failed start must look like

# Lines that may accompany the one naming the step: the summary of fork
# mode and the supervisor's giving up (each child's failure names the step).
SUMMARY_LINES = (
    r"^spawn-fcgi: \d+ of \d+ children failed to start; stopped the others$",
    r"^spawn-fcgi: a child failed \d+ times in a row .*: giving up$",
    r"^spawn-fcgi: supervising \d+ children \(0 running\)$",
    r"^spawn-fcgi: stopping \d+ children$",
)


def assert_failure_message(result, mode, needle):
    lines = result.stderr_lines
    for line in lines:
        assert line.startswith("spawn-fcgi: "), \
            f"stray output on stderr: {line!r}\n{result}"
    errors = [line for line in lines
              if not line.lower().startswith("spawn-fcgi: warning")]
    step = [line for line in errors if needle.lower() in line.lower()]
    others = [line for line in errors if line not in step]
    assert step, f"no line names the step ({needle!r})\n{result}"
    if mode == "no-fork":
        assert len(errors) == 1, f"expected one error line\n{result}"
    elif mode == "fork":
        assert len(step) == 1, f"expected one line for the step\n{result}"
    for line in others:
        assert any(re.match(p, line) for p in SUMMARY_LINES), \
            f"unexpected error line {line!r}\n{result}"
    # The step's line is a single line: no continuation, no help text.
    for line in step:
        assert "\n" not in line and len(line) < 400, result


def assert_not_started(result, world, app):
    assert not world.marker.exists(), f"the application ran\n{result}"
    assert app_pids(app) == [], f"an application process is alive\n{result}"


# Steps after the privilege drop (the drop is the last step before exec),
# whose failure in no-fork mode leaves what known_leftovers() says.
AFTER_DROP = {"execve-eperm", "execve-enoent", "setgroups-lies",
              "setresgid-lies", "setuid0-succeeds", "setgid0-succeeds"}


def known_leftovers(case, mode):
    """What a failed start may leave, as documented: in no-fork mode a
    failure after the privilege drop (the exec itself, or a drop that did
    not take) happens in a process that may no longer unlink in root's
    directory.  The socket stays (the next start replaces it as stale); the
    PID file it created stays, emptied."""
    if mode == "no-fork" and case.id in AFTER_DROP:
        return {"app.sock", "app.pid"}
    return None


@pytest.mark.parametrize("case,mode", PARAMS)
def test_injected_failure_fails_closed(spawn, app, world, case, mode):
    port = harness.free_port()
    if case.limits:
        world.limits.write_text(case.limits)
    r, spec = inject(spawn, world, case, mode, app, port)
    assert r.returncode == case.status[mode], \
        f"{spec}: expected status {case.status[mode]}\n{r}"
    assert_failure_message(r, mode, case.needle)
    assert_not_started(r, world, app)
    if case.source == "tcp":
        assert not harness.can_connect(f"127.0.0.1:{port}"), r
    # Our socket and a PID file we created are gone; the rest is there.
    left = world.leftovers(r)
    expected = known_leftovers(case, mode) or set()
    assert left == expected, f"left behind: {sorted(left)}\n{r}"
    if "app.pid" in left:
        assert world.pid_file.read_text() == "", r


# ---------------------------------------------------------------------------
# a PID file that existed before a failed start


PRE_EXISTING_PID = "4242\n"

# The same failures as above, with a PID file already there.  A failed
# start must leave it as it was.
PID_FILE_CASES = {c.id: c for c in CASES
                  if c.id in ("bind-unix", "setresuid", "signalfd")}


# ---------------------------------------------------------------------------
# a failure after chroot


@pytest.mark.parametrize("mode", MODES)
def test_failure_after_chroot_removes_only_own_pid_file(spawn, app, world,
                                                        mode):
    """The application is not inside the chroot: the start fails after
    chroot().  The PID file spawn-fcgi created must be removed, and a file
    inside the chroot at the same path must not."""
    victim = world.chroot / str(world.pid_file).lstrip("/")
    victim.parent.mkdir(parents=True)
    victim.write_text("not spawn-fcgi's\n")
    world.take_snapshot()
    r = spawn.run(*MODE_ARGS[mode], "-c", world.chroot, "-s", "/app.sock",
                  "-P", world.pid_file, "-u", "webuser", "--", app,
                  "--marker", world.marker, wrap=world.fake_etc.wrap,
                  extra_env=NO_LSAN, timeout=RUN_TIMEOUT)
    assert r.returncode == NOT_FOUND, r
    assert_not_started(r, world, app)
    assert victim.exists(), f"a file inside the chroot was removed\n{r}"
    assert world.leftovers(r) == set(), r


@pytest.mark.parametrize("case,mode", [
    pytest.param(case, mode, id=f"{cid}-{mode}")
    for cid, case in PID_FILE_CASES.items() for mode in case.modes])
def test_pre_existing_pid_file_is_left_alone(spawn, app, world, case, mode):
    world.pid_file.write_text(PRE_EXISTING_PID)
    r, spec = inject(spawn, world, case, mode, app, harness.free_port())
    assert r.returncode == case.status[mode], r
    assert_not_started(r, world, app)
    assert world.pid_file.exists(), f"the PID file was removed\n{r}"
    assert world.pid_file.read_text() == PRE_EXISTING_PID, \
        f"the PID file was rewritten\n{r}"
    left = world.leftovers(r)
    assert left == ((known_leftovers(case, mode) or set()) - {"app.pid"}), r


# ---------------------------------------------------------------------------
# a fork that fails after others succeeded


def test_fork_failing_midway_starts_nothing(spawn, app, world):
    """-F 4 and the third fork fails.  The two children forked before it
    wait at the start gate, so no application process ever runs, and the
    socket and PID file are gone."""
    case = Case("clone-third", "clone,clone3", "cannot start child 3 of 4",
                {"fork": CHILD_FAILED}, opts=("-F", "4"), modes=("fork",),
                process="main", error="EAGAIN")
    args = base_args(world, case, "fork", None)
    first = calibrate(spawn, world, case, args, app)
    harness.kill_tree()
    for p in (world.sock, world.pid_file, world.marker):
        if os.path.lexists(p):
            os.unlink(p)
    world.take_snapshot()
    # The main process makes no other clone between its forks.
    spec = f"inject=clone,clone3:error=EAGAIN:when={first + 2}"
    prefix = [STRACE, "-f", "-qq", "-o", "/dev/null",
              "-e", "trace=clone,clone3", "-e", spec, "--"]
    s = spawn.start(*args, "--", app, "--marker", world.marker,
                    extra_env=NO_LSAN, wrap=strace_wrap(world, prefix))
    r = finish(s, world, spec)
    assert r.returncode == CHILD_FAILED, r
    assert [line for line in r.stderr_lines if "warning" not in line] == [
        "spawn-fcgi: cannot start child 3 of 4: Resource temporarily "
        "unavailable; no child was started"], r
    assert_not_started(r, world, app)
    assert world.leftovers(r) == set(), r


# ---------------------------------------------------------------------------
# a fallback that must still close everything


@pytest.mark.parametrize("mode", ["no-fork", "fork"])
def test_close_range_enosys_falls_back_and_closes_all(spawn, app, world,
                                                      procs, mode):
    """On a kernel without close_range the fds are closed by walking
    /proc/self/fd: the application still sees only 0, 1 and 2 (a caller's
    fd 7 included)."""
    prefix = [STRACE, "-f", "-qq", "-o", "/dev/null",
              "-e", "trace=close_range",
              "-e", "inject=close_range:error=ENOSYS",
              "/bin/sh", "-c", f'exec 7<{world.keep}; exec "$@"', "sh"]
    args = MODE_ARGS[mode] + ["-s", world.sock, "-u", "webuser", "--", app]
    s = spawn.start(*args, extra_env=NO_LSAN,
                    wrap=strace_wrap(world, prefix))
    try:
        harness.wait_for_socket(world.sock, proc=s if mode == "no-fork"
                                else None)
        st = harness.query_state(world.sock)
    finally:
        harness.kill_tree()
    fds = harness.state_fds(st)
    assert sorted(fds) == [0, 1, 2], fds
    assert harness.socket_inode(fds[0]) is not None, fds


def test_every_listed_syscall_is_injected_in_some_mode():
    """Each system call named in CASES gets at least one injection test
    above (a case without a mode would test nothing, silently); whether
    it fails closed is what those tests check."""
    injected = {case.covers or case.syscall for case, _ in
                (p.values for p in PARAMS)}
    listed = {c.covers or c.syscall for c in CASES}
    assert injected == listed, f"never injected: {sorted(listed - injected)}"
