"""What the application inherits: only the socket on fd 0 and stdio, no
caller fds, clean signal state, no socket-activation or notify variables."""

import os
import signal
import socket

import pytest

import harness
from harness import (query_state, sigset, spawned_pids, state_env, state_fds,
                     wait_for_socket)

MODES = pytest.mark.parametrize("fork", [False, True],
                                ids=["no-fork", "fork"])


def launch(spawner, sock, app, fork, *opts, **kw):
    """Start spawner on sock in no-fork or fork mode; returns the state
    the app reports (after checking fork mode announced exactly one
    child, or that -n exec'd in place)."""
    args = ([] if fork else ["-n"]) + ["-s", sock, *opts, "--", app]
    if fork:
        r = spawner.run(*args, **kw)
        assert r.returncode == 0, r
        pids = spawned_pids(r.stdout)
        assert len(pids) == 1, r
        st = query_state(sock)
        assert int(st["pid"]) == pids[0]
    else:
        s = spawner.start(*args, **kw)
        wait_for_socket(sock, proc=s)
        st = query_state(sock)
        assert int(st["pid"]) == s.pid
    return st


def shell_with_fds(script):
    """wrap= for Spawner: run the command from a shell that first runs
    script (e.g. opening fds with exec 7<FILE)."""
    return lambda argv: ["/bin/sh", "-c", script + '; exec "$@"', "sh"] + argv


# ---------------------------------------------------------------------------
# file descriptors


@MODES
def test_only_socket_and_stdio_are_open(spawn, app, sock, fork):
    st = launch(spawn, sock, app, fork)
    fds = state_fds(st)
    assert sorted(fds) == [0, 1, 2], fds
    assert harness.socket_inode(fds[0]) is not None
    assert st["startup_fd0_listening"] == "yes"


@MODES
def test_fd_opened_by_caller_shell_is_closed(spawn, app, sock, tmp, fork):
    (tmp / "data").write_text("secret\n")
    wrap = shell_with_fds(f"exec 7<{tmp}/data 9>>{tmp}/log 8</etc/hostname")
    st = launch(spawn, sock, app, fork, wrap=wrap)
    fds = state_fds(st)
    assert sorted(fds) == [0, 1, 2], fds
    assert not any(str(tmp / "data") in t for t in fds.values())


@MODES
def test_inherited_sockets_and_pipes_are_closed(spawn, app, sock, fork):
    """A caller's listening TCP socket, a socket pair and a pipe passed as
    inheritable fds never reach the app (which would be a second accept
    point or a leaked channel)."""
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    a, b = socket.socketpair()
    r, w = os.pipe()
    keep = [lst.fileno(), a.fileno(), r, w]
    try:
        st = launch(spawn, sock, app, fork, pass_fds=keep)
    finally:
        for x in (lst, a, b):
            x.close()
        os.close(r)
        os.close(w)
    fds = state_fds(st)
    assert sorted(fds) == [0, 1, 2], fds
    assert harness.socket_inode(fds[0]) in harness.unix_listener_inodes(sock)


def test_peer_leaks_caller_fd_showing_the_check_works(peer, app, sock, tmp):
    """spawn-fcgi 1.6.4 lets fd 7 through: the check above can see it."""
    wrap = shell_with_fds("exec 7</etc/hostname")
    st = launch(peer, sock, app, False, wrap=wrap)
    assert 7 in state_fds(st)


def test_stdio_kept_with_no_fork(spawn, app, sock):
    s = spawn.start("-n", "-s", sock, "--", app)
    wait_for_socket(sock, proc=s)
    fds = state_fds(query_state(sock))
    assert fds[1] == os.path.realpath(s.stdout_path)
    assert fds[2] == os.path.realpath(s.stderr_path)


def test_stdio_is_dev_null_in_fork_mode(spawn, app, sock):
    st = launch(spawn, sock, app, True)
    fds = state_fds(st)
    assert fds[1] == "/dev/null"
    assert fds[2] == "/dev/null"


@MODES
def test_socket_is_blocking_and_survives_exec(spawn, app, sock, fork):
    st = launch(spawn, sock, app, fork)
    assert st["startup_fd0_nonblock"] == "no"
    assert st["startup_fd0_cloexec"] == "no"
    assert st["startup_fd0_type"] == "stream"


# ---------------------------------------------------------------------------
# signals


def dirty_signals():
    """preexec: the caller ignores and blocks signals, as a careless shell
    or supervisor might (nohup, a Python parent, ...)."""
    for sig in (signal.SIGPIPE, signal.SIGHUP, signal.SIGCHLD, signal.SIGINT,
                signal.SIGQUIT, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {
        signal.SIGUSR1, signal.SIGTERM, signal.SIGALRM, signal.SIGCHLD})


@MODES
def test_signal_mask_and_dispositions_are_reset(spawn, app, sock, fork):
    st = launch(spawn, sock, app, fork, preexec=dirty_signals)
    assert sigset(st["startup_sigblk"]) == set(), st["startup_sigblk"]
    assert sigset(st["startup_sigign"]) == set(), st["startup_sigign"]
    assert sigset(st["startup_sigcgt"]) == set(), st["startup_sigcgt"]


def test_peer_keeps_ignored_sigpipe_showing_the_check_works(peer, app, sock):
    st = launch(peer, sock, app, False, preexec=dirty_signals)
    assert signal.SIGPIPE in sigset(st["startup_sigign"])
    assert signal.SIGUSR1 in sigset(st["startup_sigblk"])


# ---------------------------------------------------------------------------
# environment

FOREIGN = {
    "LISTEN_PID": "1",
    "LISTEN_FDS": "1",
    "LISTEN_FDNAMES": "foreign",
    "LISTEN_PIDFDID": "4242",
    "NOTIFY_SOCKET": "/run/nonexistent/notify",
    "WATCHDOG_USEC": "30000000",
    "WATCHDOG_PID": "1",
}


@MODES
def test_activation_and_notify_variables_do_not_reach_app(spawn, app, sock,
                                                           fork):
    extra = dict(FOREIGN, KEEP_ME="yes please", ANOTHER="x=y")
    st = launch(spawn, sock, app, fork, extra_env=extra)
    env = state_env(st)
    leaked = sorted(k for k in env if k.startswith(
        ("LISTEN_", "NOTIFY_SOCKET", "WATCHDOG_")))
    assert leaked == [], leaked
    # Everything else passes through untouched.
    assert env.get("KEEP_ME") == "yes please"
    assert env.get("ANOTHER") == "x=y"
    assert env.get("PATH") == harness.base_env()["PATH"]


def test_peer_passes_listen_variables_showing_the_check_works(peer, app,
                                                              sock):
    st = launch(peer, sock, app, False, extra_env=FOREIGN)
    assert "LISTEN_FDS" in state_env(st)


# ---------------------------------------------------------------------------
# process state the caller chose


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_umask_is_the_callers(spawn, app, sock, mask):
    st = launch(spawn, sock, app, False, umask=mask)
    assert int(st["umask"], 8) == mask


@MODES
def test_cwd_is_the_callers(spawn, app, sock, tmp, fork):
    work = tmp / "work"
    work.mkdir()
    st = launch(spawn, sock, app, fork, cwd=work)
    assert st["cwd"] == str(work)
    assert st["root"] == "/"


def test_fork_mode_child_is_its_own_session(spawn, app, sock):
    st = launch(spawn, sock, app, True)
    assert st["sid"] == st["pid"]
    assert st["pgid"] == st["pid"]


def test_no_fork_leaves_the_callers_session(spawn, app, sock):
    """Not the caller's session, so never its controlling terminal (see
    test_privileged_path.py for the terminal itself)."""
    st = launch(spawn, sock, app, False)
    assert int(st["sid"]) != os.getsid(0)
    assert st["sid"] == st["pid"]
