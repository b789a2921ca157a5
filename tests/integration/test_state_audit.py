"""State audit: the whole state the application starts with, for every mode
(no-fork, fork, supervised) and every socket source (own unix socket, own
TCP socket, LISTEN_FDS from systemd-socket-activate, a listening socket on
fd 0 from the parent), asserted exactly.

The caller is made as careless as possible (tests/integration/dirty.py is
written below and execs spawn-fcgi): it ignores SIGPIPE, SIGCHLD and
others, blocks signals, leaves an extra descriptor open, has supplementary
groups of its own, sets a umask and a working directory, and exports
NOTIFY_SOCKET, WATCHDOG_* and (except with socket activation) stale
LISTEN_* variables.  It records what it handed over (environment, rlimits,
priority, groups, session) so that the expected state is computed from
what spawn-fcgi really inherited.

As root in a private mount namespace with the fixture users (fake_etc):
webuser is 1500:1500, also in staff2 (1600) and www-data (33).
"""

import json
import os
import resource
import shutil
import signal
import sys

import pytest

import harness
from harness import (query_state, sigset, state_env, state_fds, state_groups,
                     state_rlimit, wait_for_socket)

ACTIVATE = shutil.which("systemd-socket-activate") \
    or "/usr/bin/systemd-socket-activate"

WEBUSER, STAFF2, WWW_DATA = 1500, 1600, 33
WEBUSER_GROUPS = sorted([WEBUSER, STAFF2, WWW_DATA])
CALLER_GROUPS = [4, 24]
CALLER_UMASK = 0o027

MODES = ("no-fork", "fork", "supervise")
MODE_ARGS = {"no-fork": ["-n"], "fork": [], "supervise": ["-w"]}
SOURCES = ("unix", "tcp", "listen-fds", "fd0")

REMOVED = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
           "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC")
CALLER_ENV = {
    "NOTIFY_SOCKET": "/run/nonexistent/notify",
    "WATCHDOG_USEC": "30000000",
    "WATCHDOG_PID": "1",
    "KEEP_ME": "yes please",
}
STALE_LISTEN = {
    "LISTEN_PID": "1",
    "LISTEN_FDS": "1",
    "LISTEN_FDNAMES": "stale",
    "LISTEN_PIDFDID": "4242",
}

# Limits that lower what the caller has (the processes here cannot raise
# hard limits): nofile soft, fsize soft and hard.
LIMITS_CONF = "webuser soft nofile 100\nwebuser - fsize 1048576\n"
LIMITED = {"nofile": ("soft", 100), "fsize": ("both", 1048576 * 1024)}

# Linux resource numbers (Python's resource module lacks some names).
RLIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5,
    "nproc": 6, "nofile": 7, "memlock": 8, "as": 9, "locks": 10,
    "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
}

# The careless caller.  argv: STATE_JSON WORKDIR FD0_PATH|- KEEP_FILE CMD...
DIRTY = r'''
import json, os, resource, signal, socket, sys

state_path, work, fd0_path, keep = sys.argv[1:5]
cmd = sys.argv[5:]
for sig in (signal.SIGPIPE, signal.SIGCHLD, signal.SIGHUP, signal.SIGINT,
            signal.SIGQUIT, signal.SIGUSR2):
    signal.signal(sig, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM,
                                          signal.SIGALRM, signal.SIGCHLD})
os.umask(0o027)
os.chdir(work)
os.setgroups([4, 24])
fd = os.open(keep, os.O_RDONLY)
os.dup2(fd, 9, inheritable=True)
os.close(fd)
if fd0_path != "-":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(fd0_path)
    s.listen(16)
    os.dup2(s.fileno(), 0, inheritable=True)
    s.close()
limits = {n: list(resource.getrlimit(n)) for n in range(16)}
with open(state_path, "w") as f:
    json.dump({"env": dict(os.environ), "rlimits": limits,
               "priority": os.getpriority(os.PRIO_PROCESS, 0),
               "sid": os.getsid(0), "pid": os.getpid(),
               "groups": sorted(os.getgroups())}, f)
os.execv(cmd[0], cmd)
'''


@pytest.fixture
def audit(tmp, fake_etc, procs, app):
    return Audit(tmp, fake_etc, procs, app)


class Audit:
    def __init__(self, tmp, fake_etc, procs, app):
        self.tmp = tmp
        self.fake_etc = fake_etc
        self.procs = procs
        self.app = app
        self.dirty = tmp / "dirty.py"
        self.dirty.write_text(DIRTY)
        self.caller_json = tmp / "caller.json"
        self.work = tmp / "work"
        self.work.mkdir()
        self.keep = tmp / "keep"
        self.keep.write_text("a file the caller left open\n")
        self.sock = tmp / "app.sock"
        self.limits = tmp / "limits.conf"
        self.limits.write_text(LIMITS_CONF)
        self.started = None

    def argv(self, spawn_fcgi, mode, source, opts, port):
        """The command line: [activator] dirty.py spawn-fcgi ..."""
        args = list(MODE_ARGS[mode])
        if source == "unix":
            args += ["-s", self.sock]
        elif source == "tcp":
            args += ["-a", "127.0.0.1", "-p", str(port)]
        args += list(opts) + ["--", self.app]
        fd0 = str(self.sock) if source == "fd0" else "-"
        cmd = [sys.executable, self.dirty, self.caller_json, self.work, fd0,
               self.keep, spawn_fcgi] + args
        if source == "listen-fds":
            # The activator passes on only what -E names (and LISTEN_*).
            cmd = [ACTIVATE, "-l", self.sock] + \
                [f"--setenv={k}={v}" for k, v in CALLER_ENV.items()] + \
                ["--"] + cmd
        return self.fake_etc.wrap(cmd)

    def env(self, source):
        env = harness.base_env(**CALLER_ENV)
        if source != "listen-fds":
            env.update(STALE_LISTEN)
        return env

    def launch(self, spawn_fcgi, mode, source, opts=()):
        """Starts spawn-fcgi; returns (state of the app, what the caller
        handed over, address)."""
        if source == "listen-fds" and not os.access(ACTIVATE, os.X_OK):
            pytest.skip("systemd-socket-activate not installed")
        port = harness.free_port()
        addr = f"127.0.0.1:{port}" if source == "tcp" else str(self.sock)
        argv = self.argv(spawn_fcgi, mode, source, opts, port)
        env = self.env(source)
        if mode == "fork" and source != "listen-fds":
            r = self.procs.run(argv, env=env)
            assert r.returncode == 0, r
            assert len(harness.spawned_pids(r.stdout)) == 1, r
            self.result = r
        else:
            self.started = self.procs.start(argv, env=env)
            if source != "listen-fds":
                wait_for_socket(addr, proc=self.started)
            else:
                # No probe connection: it would be the one that makes
                # the activator start spawn-fcgi.
                harness.wait_for_listener(self.sock, proc=self.started)
        st = query_state(addr)
        if mode == "fork" and source == "listen-fds":
            # spawn-fcgi (exec'd by the activator) has returned by now
            r = self.started.result()
            assert r.returncode == 0, r
            assert int(st["pid"]) in harness.spawned_pids(r.stdout), r
        caller = json.loads(self.caller_json.read_text())
        return st, caller, addr

    def stop(self):
        """Stops a supervisor with SIGTERM; it must exit 0."""
        s = self.started
        os.kill(s.pid, signal.SIGTERM)
        r = s.result()
        assert r.returncode == 0, r
        return r


def expected_rlimits(caller, limited):
    out = {}
    for name in RLIMITS:
        soft, hard = caller["rlimits"][str(RLIMITS[name])]
        if limited and name in LIMITED:
            which, value = LIMITED[name]
            soft = value
            if which == "both":
                hard = value
        conv = lambda v: None if v == resource.RLIM_INFINITY else v  # noqa
        out[name] = (conv(soft), conv(hard))
    return out


def assert_state(st, caller, audit, mode, source, addr, *, user=True,
                 limited=False, no_new_privs=False):
    """Everything the application may see, exactly."""
    pid = int(st["pid"])

    # -- descriptors: the socket on 0 and stdio, nothing else
    fds = state_fds(st)
    assert sorted(fds) == [0, 1, 2], fds
    assert fds[0].startswith("socket:["), fds
    assert st["startup_fd0_listening"] == "yes", st
    assert st["startup_fd0_type"] == "stream", st
    assert st["startup_fd0_nonblock"] == "no", st
    assert st["startup_fd0_cloexec"] == "no", st
    if source == "tcp":
        assert st["startup_fd0_family"] == "inet", st
        assert st["startup_fd0_address"] == addr, st
    else:
        assert st["startup_fd0_family"] == "unix", st
        assert st["startup_fd0_address"] == str(audit.sock), st
        assert harness.socket_inode(fds[0]) in \
            harness.unix_listener_inodes(audit.sock), fds
    out = audit.started.stdout_path if audit.started else None
    err = audit.started.stderr_path if audit.started else None
    if mode == "fork":
        assert fds[1] == "/dev/null" and fds[2] == "/dev/null", fds
    else:
        assert fds[1] == os.path.realpath(out), fds
        assert fds[2] == os.path.realpath(err), fds

    # -- signals: empty mask, nothing ignored, nothing caught
    assert sigset(st["startup_sigblk"]) == set(), st["startup_sigblk"]
    assert sigset(st["startup_sigign"]) == set(), st["startup_sigign"]
    assert sigset(st["startup_sigcgt"]) == set(), st["startup_sigcgt"]

    # -- environment: the caller's, minus activation and notify variables
    want_env = {k: v for k, v in caller["env"].items() if k not in REMOVED}
    assert state_env(st) == want_env
    assert want_env.get("KEEP_ME") == "yes please"

    # -- identity
    if user:
        ids, groups = (str(WEBUSER),) * 3, WEBUSER_GROUPS
        gids = (str(WEBUSER),) * 3
        assert st["setuid0"] == "fails" and st["setgid0"] == "fails", st
        assert int(st["capprm"], 16) == 0 and int(st["capeff"], 16) == 0, st
    else:
        ids, gids, groups = ("0",) * 3, ("0",) * 3, caller["groups"]
        assert st["setuid0"] == "succeeds", st
    assert (st["uid"], st["euid"], st["suid"]) == ids, st
    assert (st["gid"], st["egid"], st["sgid"]) == gids, st
    assert state_groups(st) == sorted(groups), st["groups"]
    assert int(st["capamb"], 16) == 0, st

    # -- process state the caller chose
    assert st["cwd"] == str(audit.work), st
    assert st["root"] == "/", st
    assert int(st["umask"], 8) == CALLER_UMASK, st
    assert int(st["priority"]) == caller["priority"], st
    assert int(st["no_new_privs"]) == int(no_new_privs), st
    got = {name: state_rlimit(st, name) for name in RLIMITS}
    assert got == expected_rlimits(caller, limited)

    # -- sessions: every application leads a session of its own, so that
    #    it never has the caller's controlling terminal
    assert int(st["sid"]) == pid, st
    if mode == "no-fork":
        assert pid == caller["pid"], "the application is not exec'd in place"
    elif mode == "supervise":
        assert int(st["ppid"]) == caller["pid"], st


MATRIX = [pytest.param(m, s, id=f"{m}-{s}") for m in MODES for s in SOURCES]


@pytest.mark.parametrize("mode,source", MATRIX)
def test_state_as_user_with_limits(spawn_fcgi_bin, audit, mode, source):
    st, caller, addr = audit.launch(
        spawn_fcgi_bin, mode, source,
        ["-u", "webuser", "-l", "--limits-file", audit.limits])
    assert_state(st, caller, audit, mode, source, addr, limited=True)
    if mode == "supervise":
        audit.stop()


@pytest.mark.parametrize("mode", MODES)
def test_state_with_no_new_privs_and_inherited_limits(spawn_fcgi_bin, audit,
                                                      mode):
    st, caller, addr = audit.launch(spawn_fcgi_bin, mode, "unix",
                                    ["-u", "webuser", "--no-new-privs"])
    assert_state(st, caller, audit, mode, "unix", addr, no_new_privs=True)
    if mode == "supervise":
        audit.stop()


@pytest.mark.parametrize("mode", MODES)
def test_state_as_root_when_no_user_is_asked(spawn_fcgi_bin, audit, mode):
    """Without -u and -g nothing about the identity changes: root with the
    caller's own supplementary groups (spawn-fcgi warns about it)."""
    st, caller, addr = audit.launch(spawn_fcgi_bin, mode, "unix")
    assert_state(st, caller, audit, mode, "unix", addr, user=False)
    if mode == "supervise":
        audit.stop()


def test_the_dirty_caller_is_dirty(audit, procs):
    """The careless caller really hands over what the audit says is
    cleaned: without spawn-fcgi in between the application sees it all."""
    argv = audit.fake_etc.wrap(
        [sys.executable, audit.dirty, audit.caller_json, audit.work,
         str(audit.sock), audit.keep, audit.app])
    s = procs.start(argv, env=audit.env("unix"))
    wait_for_socket(audit.sock, proc=s)
    st = query_state(audit.sock)
    assert 9 in state_fds(st)
    assert signal.SIGPIPE in sigset(st["startup_sigign"])
    assert signal.SIGCHLD in sigset(st["startup_sigign"])
    assert signal.SIGUSR1 in sigset(st["startup_sigblk"])
    assert "NOTIFY_SOCKET" in state_env(st)
    assert "LISTEN_FDS" in state_env(st)
    assert state_groups(st) == CALLER_GROUPS
    assert int(st["umask"], 8) == CALLER_UMASK
