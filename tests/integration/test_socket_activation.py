"""Sockets that come from outside: systemd socket activation (LISTEN_FDS,
through the real systemd-socket-activate) and a listening socket inherited
on fd 0.  Whatever the source, the application must see the same clean
state."""

import os
import shutil
import socket
import stat

import pytest

import harness
from harness import query_state, state_env, state_fds, wait_until

ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"

pytestmark = pytest.mark.skipif(not os.access(ACTIVATE, os.X_OK),
                                reason="systemd-socket-activate not installed")

LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID")


def activate(procs, listen, command, fdnames=None, accept=False, env=None):
    """systemd-socket-activate listening on each path in listen, running
    command once the first connection arrives (this version has no --now)."""
    args = [ACTIVATE]
    for path in listen:
        args += ["-l", str(path)]
    if fdnames:
        args.append("--fdname=" + ":".join(fdnames))
    if accept:
        args.append("--accept")
    proc = procs.start(args + ["--"] + [str(c) for c in command],
                       env=env or harness.base_env())
    for path in listen:
        harness.wait_for_listener(path, proc=proc)
    return proc


def assert_clean_state(state):
    env = state_env(state)
    for var in LISTEN_VARS + ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        assert var not in env, f"{var} leaked into the application: {env}"
    fds = state_fds(state)
    assert sorted(fds) == [0, 1, 2], fds
    assert fds[0].startswith("socket:["), fds
    assert state["startup_fd0_listening"] == "yes", state
    assert state["startup_fd0_nonblock"] == "no", state


def test_one_passed_socket(spawn_fcgi_bin, app, procs, sock):
    proc = activate(procs, [sock], [spawn_fcgi_bin, "-n", "--", app])
    state = query_state(sock)
    assert_clean_state(state)
    assert state_env(state).get("PATH"), "the environment was emptied"
    # the application replaced spawn-fcgi in the same process
    assert int(state["pid"]) == proc.pid


def test_passed_socket_wins_over_socket_option(spawn_fcgi_bin, app, procs, sock, tmp):
    other = tmp / "ignored.sock"
    proc = activate(procs, [sock], [spawn_fcgi_bin, "-n", "-s", other, "--", app])
    assert_clean_state(query_state(sock))
    assert not other.exists(), "--socket was used although a socket was passed"
    proc.proc.terminate()
    proc.wait()
    assert "is ignored: systemd passed socket" in proc.stderr


def test_several_sockets_chosen_by_name(spawn_fcgi_bin, app, procs, tmp):
    a, b = tmp / "a.sock", tmp / "b.sock"
    activate(procs, [a, b], [spawn_fcgi_bin, "-n", "--fd-name", "second", "--", app],
             fdnames=["first", "second"])
    # The first connection (on a) makes systemd-socket-activate exec us; it
    # is then never accepted, since a is closed before the application runs.
    probe = harness.connect(a)
    state = query_state(b)
    assert_clean_state(state)
    fd0 = harness.socket_inode(state_fds(state)[0])
    probe.close()
    assert fd0 is not None


def test_several_sockets_without_name_refused(spawn_fcgi_bin, app, procs, tmp, marker):
    a, b = tmp / "a.sock", tmp / "b.sock"
    proc = activate(procs, [a, b], [spawn_fcgi_bin, "-n", "--", app, "--marker", marker],
                    fdnames=["web", "admin"])
    harness.connect(a).close()
    rc = proc.wait()
    assert rc == 2, proc.describe()
    assert "2 sockets were passed (web, admin): choose one with --fd-name" in proc.stderr
    assert not marker.exists()


def test_unknown_fd_name_refused(spawn_fcgi_bin, app, procs, sock, marker):
    proc = activate(procs, [sock], [spawn_fcgi_bin, "-n", "--fd-name", "nope", "--",
                                    app, "--marker", marker], fdnames=["php"])
    harness.connect(sock).close()
    assert proc.wait() == 2, proc.describe()
    assert "no passed socket is named 'nope' (passed: php)" in proc.stderr
    assert not marker.exists()


def test_accept_yes_connection_refused(spawn_fcgi_bin, app, procs, sock, marker):
    proc = activate(procs, [sock], [spawn_fcgi_bin, "-n", "--", app, "--marker", marker],
                    accept=True)
    c = harness.connect(sock)
    # The per-connection child fails; its stderr is the activator's.
    wait_until(lambda: "connected socket" in proc.stderr, what="the refusal message")
    c.close()
    assert "not a listening one (is the socket unit Accept=yes? use Accept=no)" in proc.stderr
    assert not marker.exists()


def test_listen_pid_of_another_process_ignored(spawn, app, sock):
    """Variables meant for another process (a parent that forked) mean "no
    sockets passed": our own socket is used and the variables are gone."""
    env = harness.base_env(LISTEN_PID=1, LISTEN_FDS=1, LISTEN_FDNAMES="x",
                           LISTEN_PIDFDID=12345)
    started = spawn.start("-n", "-s", sock, "--", app, env=env)
    harness.wait_for_socket(sock, proc=started)
    state = query_state(sock)
    assert_clean_state(state)
    assert harness.socket_inode(state_fds(state)[0]) is not None


@pytest.mark.parametrize("variables, message", [
    ({"LISTEN_FDS": "abc"}, "invalid socket activation variables"),
    ({"LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"}, "invalid socket activation variables"),
])
def test_garbage_listen_variables(spawn_fcgi_bin, app, procs, sock, marker, variables,
                                  message):
    # LISTEN_PID must be the pid of spawn-fcgi itself: the shell execs it.
    assigns = " ".join(f"{k}={v}" for k, v in variables.items())
    cmd = ["/bin/sh", "-c", f'LISTEN_PID=$$ {assigns} exec "$@"', "sh",
           spawn_fcgi_bin, "-n", "-s", sock, "--", app, "--marker", marker]
    r = procs.run(cmd, env=harness.base_env(), timeout=harness.ERROR_TIMEOUT, pass_fds=())
    assert r.returncode == 4, r
    assert message in r.stderr
    assert not marker.exists()
    assert not sock.exists()


def inherited_listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(16)
    return s


def test_listening_socket_on_fd0(spawn, app, sock):
    listener = inherited_listener(sock)
    started = spawn.start("-n", "--", app, stdin=listener.fileno())
    listener.close()
    state = query_state(sock)
    assert_clean_state(state)
    assert started.poll() is None


def test_socket_on_stdout_and_stderr_is_replaced(spawn_fcgi_bin, app, procs, sock):
    """systemd's StandardInput=socket leaves stdout/stderr on the socket
    unless told otherwise: the application must never get it there."""
    listener = inherited_listener(sock)
    procs.start(["/bin/sh", "-c", 'exec "$@" >&0 2>&0', "sh", spawn_fcgi_bin, "-n",
                 "--", app], env=harness.base_env(), stdin=listener.fileno())
    listener.close()
    fds = state_fds(query_state(sock))
    assert fds[1] == "/dev/null" and fds[2] == "/dev/null", fds


def test_fd0_not_a_socket_and_no_socket_given(spawn, app, marker):
    r = spawn.run_error("-n", "--", app, "--marker", marker)
    assert r.returncode == 2, r
    assert "no socket: give --socket or --port" in r.stderr
    assert not marker.exists()


def test_fd0_connected_socket_not_used(spawn, app, marker, tmp):
    a, b = socket.socketpair()
    r = spawn.run_error("-n", "--", app, "--marker", marker, stdin=a.fileno())
    a.close()
    b.close()
    assert r.returncode == 2, r
    assert "no socket" in r.stderr
    assert not marker.exists()


def test_owner_and_mode_of_passed_socket_when_asked(spawn_fcgi_bin, app, procs, sock,
                                                    fake_etc):
    uid, _ = harness.user_in(fake_etc, "sockowner")
    cmd = fake_etc.wrap([ACTIVATE, "-l", sock, "--", spawn_fcgi_bin, "-n", "-u",
                         "webuser", "-U", "sockowner", "-G", "sockgrp", "-M", "0600",
                         "--", app])
    activator = procs.start(cmd, env=harness.base_env())
    harness.wait_for_listener(sock, proc=activator)
    state = query_state(sock)
    st = os.lstat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == uid and st.st_gid == 1700
    assert state["uid"].split()[0] == "1500"


def test_passed_socket_left_alone_without_options(spawn_fcgi_bin, app, procs, sock,
                                                  fake_etc):
    cmd = fake_etc.wrap([ACTIVATE, "-l", sock, "--", spawn_fcgi_bin, "-n", "-u",
                         "webuser", "--", app])
    activator = procs.start(cmd, env=harness.base_env())
    harness.wait_for_listener(sock, proc=activator)
    before = os.lstat(sock)
    query_state(sock)
    after = os.lstat(sock)
    assert (after.st_uid, after.st_gid, after.st_mode) == \
           (before.st_uid, before.st_gid, before.st_mode) == (0, 0, before.st_mode)


def test_journal_priorities_when_stderr_is_the_journal(spawn_fcgi_bin, app, procs, tmp):
    """With JOURNAL_STREAM naming stderr, lines carry <N> priorities."""
    # The shell computes dev:ino of the file it points stderr at.
    err = tmp / "journal"
    script = ('exec 2>"$0"; JOURNAL_STREAM=$(stat -L -c "%d:%i" /proc/self/fd/2) '
              'exec "$@"')
    r = procs.run(["/bin/sh", "-c", script, err, spawn_fcgi_bin, "-s", tmp / "x.sock",
                   "-a", "127.0.0.1", "-u", "nosuchuser-xyz", "--", app],
                  env=harness.base_env())
    lines = err.read_text().splitlines()
    assert r.returncode == 3, (r, lines)
    assert "<4>spawn-fcgi: warning: -a is ignored with a unix socket" in lines, lines
    assert any(l.startswith("<3>spawn-fcgi: ") for l in lines), lines


def test_no_priorities_when_stderr_is_not_the_journal(spawn, app, tmp):
    env = harness.base_env(JOURNAL_STREAM="1:1")
    r = spawn.run_error("-s", tmp / "x.sock", "-a", "127.0.0.1", "--", "/nonexistent/app",
                        env=env)
    assert r.returncode == 127
    assert r.stderr.startswith("spawn-fcgi: "), r.stderr


def test_config_socket_is_the_fallback_without_a_warning(spawn_fcgi_bin, app, procs,
                                                         sock, tmp):
    """One config file serves with and without socket activation: its
    socket= is used only when nothing is passed, and silently."""
    conf = tmp / "app.conf"
    fallback = tmp / "fallback.sock"
    conf.write_text(f"[spawn-fcgi]\nsocket={fallback}\nno-fork=true\nexec={app}\n")
    proc = activate(procs, [sock], [spawn_fcgi_bin, "--config", conf])
    assert_clean_state(query_state(sock))
    assert not fallback.exists()
    proc.proc.terminate()
    proc.wait()
    assert "ignored" not in proc.stderr, proc.stderr


def test_listen_fds_without_loadable_libsystemd_refused(spawn_fcgi_bin, app, procs,
                                                        sock, marker, tmp):
    """Passed sockets need libsystemd (loaded on demand): if it cannot be
    loaded, the start fails with the reason, and nothing is started."""
    lib = harness.broken_libsystemd(tmp)
    cmd = ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh",
           spawn_fcgi_bin, "-n", "-s", sock, "--", app, "--marker", marker]
    r = procs.run(cmd, env=harness.base_env(LD_LIBRARY_PATH=lib),
                  timeout=harness.ERROR_TIMEOUT, pass_fds=())
    assert r.returncode == 4, r
    assert r.stderr.startswith(
        "spawn-fcgi: LISTEN_FDS is set, but cannot load libsystemd.so.0: "), r
    assert len(r.stderr.splitlines()) == 1, r
    assert not marker.exists()
    assert not sock.exists()


def test_no_libsystemd_needed_for_an_own_socket(spawn, app, sock, tmp):
    """Without LISTEN_* an own socket works even if libsystemd cannot be
    loaded: it is never opened."""
    lib = harness.broken_libsystemd(tmp)
    started = spawn.start("-n", "-s", sock, "--", app,
                          extra_env={"LD_LIBRARY_PATH": lib})
    harness.wait_for_socket(sock, proc=started)
    state = query_state(sock)
    assert_clean_state(state)
    assert started.poll() is None


def test_no_socket_is_a_usage_error_even_without_libsystemd(spawn, app, marker, tmp):
    """fd 0 that is no socket needs no libsystemd: forgetting the socket
    is the usage error it always is."""
    lib = harness.broken_libsystemd(tmp)
    r = spawn.run_error("-n", "--", app, "--marker", marker,
                        extra_env={"LD_LIBRARY_PATH": lib})
    assert r.returncode == 2, r
    assert "no socket: give --socket or --port" in r.stderr, r
    assert not marker.exists()


def test_listening_socket_on_fd0_without_libsystemd_refused(spawn, app, sock, marker,
                                                            tmp):
    lib = harness.broken_libsystemd(tmp)
    listener = inherited_listener(sock)
    r = spawn.run_error("-n", "--", app, "--marker", marker, stdin=listener.fileno(),
                        extra_env={"LD_LIBRARY_PATH": lib})
    listener.close()
    assert r.returncode == 4, r
    assert r.stderr.startswith(
        "spawn-fcgi: fd 0 is a socket, but cannot load libsystemd.so.0: "), r
    assert not marker.exists()
