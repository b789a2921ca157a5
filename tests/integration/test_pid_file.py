"""The PID file (-P): what spawn-fcgi refuses to open, and what it does
when it cannot write it.

Refused (exit 2, one error line, nothing started, nothing at the path
changed): a FIFO (which would block a writer forever), a hard link to
another file (which would be overwritten), a file owned by another user,
a symbolic link.  A PID file that cannot be written completely (a full
file system) fails the start: the children are stopped, the file gets
back what it held (or is removed if this run created it) and the exit
status is 1.
"""

import os
import shutil

import pytest

import harness
from harness import app_pids, assert_one_error_line, spawned_pids

CHILD_FAILED, USAGE = 1, 2
STRACE = shutil.which("strace") or "/usr/bin/strace"
MODES = {"no-fork": ["-n"], "fork": ["-F", "2"], "supervise": ["-w"]}
NO_LSAN = {"ASAN_OPTIONS": "detect_leaks=0"}


def assert_refused(spawn, app, sock, marker, pid_path, *needles, **kw):
    r = spawn.run_error("-n", "-s", sock, "-P", pid_path, "--", app,
                        "--marker", marker, **kw)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, str(pid_path), *needles)
    assert not marker.exists(), f"the application was started\n{r}"
    assert not os.path.lexists(sock), f"a socket file was left\n{r}"
    assert app_pids(app) == []
    return r


def test_fifo_is_refused_without_blocking(spawn, app, sock, marker, tmp):
    fifo = tmp / "app.pid"
    os.mkfifo(fifo, 0o644)
    assert_refused(spawn, app, sock, marker, fifo, "not a regular file")
    assert os.path.exists(fifo) and not fifo.is_file()


@pytest.fixture
def victim(tmp):
    """A file that is not spawn-fcgi's to write."""
    path = tmp / "victim"
    path.write_text("not a PID file\n")
    return path


def test_hard_link_to_another_file_is_refused(spawn, app, sock, marker,
                                              tmp, victim):
    link = tmp / "app.pid"
    os.link(victim, link)
    assert_refused(spawn, app, sock, marker, link, "link")
    assert victim.read_text() == "not a PID file\n"
    assert os.stat(victim).st_nlink == 2


def test_file_of_another_user_is_refused(spawn, app, sock, marker, tmp,
                                         root_only):
    pid_file = tmp / "app.pid"
    pid_file.write_text("4242")
    os.chown(pid_file, 1500, 1500)
    assert_refused(spawn, app, sock, marker, pid_file, "owned by uid 1500")
    assert pid_file.read_text() == "4242"


def test_symbolic_link_is_refused(spawn, app, sock, marker, tmp, victim):
    link = tmp / "app.pid"
    os.symlink(victim, link)
    assert_refused(spawn, app, sock, marker, link, "symbolic link")
    assert victim.read_text() == "not a PID file\n"


def test_own_pid_file_is_replaced(spawn, app, sock, tmp):
    pid_file = tmp / "app.pid"
    pid_file.write_text("4242")
    r = spawn.run("-s", sock, "-F", "2", "-P", pid_file, "--", app)
    assert r.returncode == 0, r
    assert pid_file.read_text() == "\n".join(map(str, spawned_pids(r.stdout)))


# ---------------------------------------------------------------------------
# a PID file that cannot be written


def full_tmpfs(directory):
    """A wrapper running argv in a private mount namespace with a full
    4 KiB tmpfs on directory; afterwards the names left there are
    written to directory.listing (outside the tmpfs)."""
    listing = f"{directory}.listing"

    def wrap(argv):
        script = (f"mount -t tmpfs -o size=4k,mode=0755 tmpfs {directory} && "
                  f"dd if=/dev/zero of={directory}/fill bs=4096 count=4 "
                  "2>/dev/null; "
                  f'"$@"; rc=$?; ls -A {directory} > {listing}; exit $rc')
        return [harness.UNSHARE, "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", script, "sh"] + [str(a) for a in argv]
    return wrap, listing


@pytest.mark.parametrize("mode", MODES)
def test_full_file_system_fails_the_start(spawn, app, sock, marker, tmp,
                                          root_only, mode):
    run_dir = tmp / "run"
    run_dir.mkdir()
    wrap, listing = full_tmpfs(run_dir)
    r = spawn.run_error(*MODES[mode], "-s", sock, "-P", run_dir / "app.pid",
                        "--", app, "--marker", marker, wrap=wrap)
    assert r.returncode == CHILD_FAILED, r
    assert_one_error_line(r, "app.pid", "No space left on device")
    assert app_pids(app) == [], "a child still runs"
    assert not os.path.lexists(sock), f"the socket was left\n{r}"
    with open(listing) as f:
        assert f.read().split() == ["fill"], "the PID file was left"
    if mode != "fork":
        assert not marker.exists(), "the application was started"


@pytest.fixture
def strace():
    if not os.access(STRACE, os.X_OK):
        pytest.skip("strace not installed (apt-get install strace)")
    return STRACE


def test_failed_write_puts_the_old_content_back(spawn, app, sock, tmp,
                                                root_only, strace):
    pid_file = tmp / "app.pid"
    pid_file.write_text("4242")
    before = os.stat(pid_file).st_ino

    def wrap(argv):
        return [strace, "-qq", "-o", "/dev/null", "-e", "trace=pwrite64",
                "-e", "inject=pwrite64:error=ENOSPC:when=1"] + argv
    r = spawn.run_error("-s", sock, "-F", "2", "-P", pid_file, "--", app,
                        wrap=wrap, extra_env=NO_LSAN)
    assert r.returncode == CHILD_FAILED, r
    assert_one_error_line(r, str(pid_file), "No space left on device")
    assert app_pids(app) == [], "a child still runs"
    assert not os.path.lexists(sock)
    assert pid_file.read_text() == "4242"
    assert os.stat(pid_file).st_ino == before
