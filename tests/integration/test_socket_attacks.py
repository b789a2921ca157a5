"""Attacks on the socket file by someone who can write in its directory
(SECURITY.md, "Socket files"): the application user, or a member of the
directory's group.  spawn-fcgi runs as root; it must never change the
owner or mode of, nor remove, a file that is not the socket it means, and
a live socket must never make it hang.

The attacker is deterministic.  Either the directory is changed before
spawn-fcgi starts, or spawn-fcgi runs with the pause hook
(tests/app/pause-hook.c, LD_PRELOAD): after every call that names the
socket file it stops itself (SIGSTOP) and logs the call; the test then
acts as the attacker and lets it go on (SIGCONT).  No timing is involved:
each attack lands at the exact point it aims at, on every run."""

import os
import signal
import socket
import stat

import pytest

import harness
from harness import assert_one_error_line

PAUSE_HOOK = os.environ.get("PAUSE_HOOK", "")
SOCKET = 4   # src/exit-status.h


@pytest.fixture
def pause_hook():
    if not PAUSE_HOOK or not os.path.exists(PAUSE_HOOK):
        pytest.fail("PAUSE_HOOK is not set (run the tests through meson "
                    "test)", pytrace=False)
    return PAUSE_HOOK


@pytest.fixture
def run_dir(tmp):
    """The socket's directory: group-writable and not sticky, so that a
    member of its group can rename and replace anything in it."""
    d = tmp / "run"
    d.mkdir()
    os.chown(d, 0, 1700)     # sockgrp
    os.chmod(d, 0o775)
    return d


def victim_file(path):
    """A root-only file that must keep its owner, mode and content."""
    path.write_text("root:secret:\n")
    os.chmod(path, 0o600)
    return path


def victim_socket(path):
    """Another service's live socket, root:root 0600: it must keep its
    owner, mode and name, and stay live."""
    s = harness.listening_unix_socket(path)
    os.chmod(path, 0o600)
    return s


def ownership(path):
    st = os.lstat(path)
    return st.st_ino, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


# ---------------------------------------------------------------------------
# a socket passed by systemd (LISTEN_FDS)

def run_with_passed(spawn, fake_etc, listener, *args):
    """spawn-fcgi with listener passed as fd 3 through LISTEN_FDS, as
    systemd passes it.  The application (last in args, with -n) exits at
    once if it is started, so that a start that should have been refused
    ends too."""
    return spawn.run_error(*args, "--exit", "0",
                           wrap=lambda argv: fake_etc.wrap(
                               harness.passing_on_fd3(argv)),
                           stdin=listener.fileno())


@pytest.mark.parametrize("link,opts", [
    (os.symlink, ("-M", "0666")), (os.symlink, ("-U", "webuser")),
    (os.symlink, ("-G", "webuser")),
    (os.link, ("-M", "0666")), (os.link, ("-U", "webuser"))],
    ids=["symlink-mode", "symlink-owner", "symlink-group", "hard-link-mode",
         "hard-link-owner"])
def test_passed_socket_path_replaced_by_link(spawn, fake_etc, app, tmp,
                                             run_dir, app_marker, link, opts):
    """mv app.sock x; ln -s /etc/shadow app.sock (or ln without -s): root
    must change neither the link's target nor the linked file, not even
    before a refusal."""
    sock = run_dir / "app.sock"
    listener = harness.listening_unix_socket(sock)
    victim = victim_file(tmp / "shadow")
    before = ownership(victim)
    os.rename(sock, run_dir / "moved.sock")
    link(victim, sock)
    r = run_with_passed(spawn, fake_etc, listener, "-n", "-u", "webuser",
                        *opts, "--", app, "--marker", app_marker)
    listener.close()
    assert ownership(victim) == before, f"the linked file changed\n{r}"
    assert r.returncode == SOCKET, r
    assert_one_error_line(r, str(sock))
    assert not app_marker.exists(), "the application was started"


def test_passed_socket_path_replaced_by_another_socket(spawn, fake_etc, app,
                                                       run_dir, app_marker):
    """Another service's socket moved to the path is a socket too, but not
    the passed one: it keeps its owner and mode."""
    sock = run_dir / "app.sock"
    listener = harness.listening_unix_socket(sock)
    os.rename(sock, run_dir / "moved.sock")
    other = victim_socket(run_dir / "other.sock")
    os.rename(run_dir / "other.sock", sock)
    before = ownership(sock)
    r = run_with_passed(spawn, fake_etc, listener, "-n", "-u", "webuser",
                        "-U", "webuser", "-M", "0666", "--", app,
                        "--marker", app_marker)
    listener.close()
    assert ownership(sock) == before, f"another socket was changed\n{r}"
    assert r.returncode == SOCKET, r
    assert_one_error_line(r, str(sock), "not the passed socket")
    assert not app_marker.exists()
    other.close()


def test_passed_socket_with_second_name_is_refused(spawn, fake_etc, app,
                                                   tmp, run_dir, app_marker):
    """A passed socket's file with a second hard link: refused, unchanged."""
    sock = run_dir / "app.sock"
    listener = harness.listening_unix_socket(sock)
    os.link(sock, tmp / "second-name")
    before = ownership(sock)
    r = run_with_passed(spawn, fake_etc, listener, "-n", "-u", "webuser",
                        "-M", "0666", "--", app, "--marker", app_marker)
    listener.close()
    assert ownership(sock) == before, r
    assert r.returncode == SOCKET, r
    assert_one_error_line(r, str(sock), "link")
    assert not app_marker.exists()


def test_passed_socket_owner_and_mode_applied_to_its_own_file(
        spawn, fake_etc, app, run_dir, app_marker):
    """The honest case still works: the passed socket's own file gets the
    owner, group and mode asked for."""
    sock = run_dir / "app.sock"
    listener = harness.listening_unix_socket(sock)
    s = spawn.start("-n", "-u", "webuser", "-U", "sockowner", "-G", "sockgrp",
                    "-M", "0606", "--", app, "--marker", app_marker,
                    wrap=lambda argv: fake_etc.wrap(
                        harness.passing_on_fd3(argv)),
                    stdin=listener.fileno())
    listener.close()
    harness.wait_until(lambda: app_marker.exists() or s.poll() is not None,
                       what="the application to start")
    assert s.poll() is None, s.describe()
    st = os.lstat(sock)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == \
        (1501, 1700, 0o606), s.describe()


# ---------------------------------------------------------------------------
# our own socket in a directory others can write to


class Paused:
    """spawn-fcgi under the pause hook: on_stop(call, path) runs at every
    stop, the attacker's turn."""

    def __init__(self, spawn, fake_etc, tmp, hook, name, prefix=None):
        self.spawn, self.fake_etc = spawn, fake_etc
        self.log = tmp / "pause.log"
        # Under AddressSanitizer the hook is preloaded before its runtime.
        self.env = {"LD_PRELOAD": hook, "PAUSE_HOOK_NAME": name,
                    "PAUSE_HOOK_LOG": self.log,
                    "ASAN_OPTIONS": "verify_asan_link_order=0:detect_leaks=0"}
        if prefix:
            self.env["PAUSE_HOOK_PREFIX"] = prefix
        self.calls = []

    def _lines(self):
        return self.log.read_text().splitlines() if self.log.exists() \
            else []

    def run(self, args, on_stop, app_marker):
        """Runs spawn-fcgi to its end; returns its Result, or fails if the
        application was started."""
        s = self.spawn.start(*args, extra_env=self.env,
                             wrap=self.fake_etc.wrap)

        def event():
            if s.poll() is not None:
                return "exit"
            if app_marker.exists():
                return "started"
            st = harness._proc_stat(s.pid)
            if len(self._lines()) > len(self.calls) and st and st[1] == "T":
                return "stop"
            return None
        while True:
            what = harness.wait_until(event, timeout=60,
                                      what="spawn-fcgi to stop or end")
            if what != "stop":
                break
            call = self._lines()[len(self.calls)].split()
            self.calls.append(call)
            on_stop(call[0], int(call[2]))
            os.kill(s.pid, signal.SIGCONT)
        if what == "started":
            harness.kill_tree()
            pytest.fail(f"the application was started\n{s.describe()}\n"
                        f"calls: {self.calls}")
        return s.result()


def swap_in(sock, other, aside):
    """The attacker's move: our name aside, her socket to our name."""
    os.rename(sock, aside)
    os.rename(other, sock)


def swap_at_first(name, sock, other, aside, result_ok):
    """An attacker that swaps at the first pause after call name whose
    result passes result_ok; returns it and the list of calls it swapped
    at."""
    swapped = []

    def attacker(call, result):
        if call == name and result_ok(result) and not swapped:
            swap_in(sock, other, aside)
            swapped.append(call)
    return attacker, swapped


def assert_survived(sock, before, result):
    """Her socket is at sock, unchanged and live."""
    assert os.path.lexists(sock), f"her socket was removed\n{result}"
    assert ownership(sock) == before, f"her socket was changed\n{result}"
    assert harness.can_connect(sock), result


def test_own_socket_swapped_after_bind_is_not_touched(
        spawn, fake_etc, app, tmp, run_dir, app_marker, pause_hook):
    """Right after bind() the attacker renames the new socket away and
    moves another service's socket to the path: that socket must not
    become webuser's, must not be listened on as ours, nor removed."""
    sock = run_dir / "app.sock"
    other = victim_socket(run_dir / "other.sock")
    before = ownership(run_dir / "other.sock")
    attacker, swapped = swap_at_first("bind", sock, run_dir / "other.sock",
                                      run_dir / "moved.sock",
                                      lambda result: result == 0)
    paused = Paused(spawn, fake_etc, tmp, pause_hook, "app.sock")
    r = paused.run(["-n", "-s", sock, "-u", "webuser", "--", app,
                    "--marker", app_marker], attacker, app_marker)
    assert swapped, f"bind was never reached\n{r}\n{paused.calls}"
    assert_survived(sock, before, r)
    assert r.returncode == SOCKET, r
    assert_one_error_line(r, str(sock), "replaced")
    other.close()


def test_own_socket_swapped_before_removal_is_not_removed(
        spawn, fake_etc, app, tmp, run_dir, app_marker, pause_hook):
    """The start fails after our socket listens (the application cannot
    be executed), and spawn-fcgi removes its socket.  At the first pause
    after that with our socket at the path (also on any other name in the
    directory, such as a private directory spawn-fcgi makes), the attacker
    swaps in another service's socket: that one must survive."""
    sock = run_dir / "app.sock"
    broken = tmp / "broken-app"
    broken.write_text("#!/nonexistent/interpreter\n")
    os.chmod(broken, 0o755)
    other = victim_socket(run_dir / "other.sock")
    before = ownership(run_dir / "other.sock")
    ours = []
    swapped = []

    def attacker(call, result):
        if call == "bind" and result == 0:
            ours.append(os.lstat(sock).st_ino)
            return
        try:
            at_path = os.lstat(sock).st_ino
        except FileNotFoundError:
            return
        if ours and at_path == ours[0] and not swapped and \
                harness.unix_listener_inodes(sock):
            swap_in(sock, run_dir / "other.sock", run_dir / "moved.sock")
            swapped.append(call)

    paused = Paused(spawn, fake_etc, tmp, pause_hook, "app.sock",
                    prefix=".")
    r = paused.run(["-s", sock, "-u", "webuser", "--", broken], attacker,
                   app_marker)
    assert r.returncode == 1, r   # the child could not start
    assert ours, f"bind was never reached\n{r}\n{paused.calls}"
    assert swapped, f"no pause to attack at\n{r}\n{paused.calls}"
    assert_survived(sock, before, f"swapped at {swapped}\n{r}")
    other.close()


def test_stale_socket_swapped_after_probe_is_not_removed(
        spawn, fake_etc, app, tmp, run_dir, app_marker, pause_hook):
    """A stale socket is at the path.  Right after spawn-fcgi found it
    stale (connection refused), the attacker replaces it with another
    service's live socket: that socket must not be removed."""
    sock = run_dir / "app.sock"
    harness.make_stale_socket(sock)
    other = victim_socket(run_dir / "other.sock")
    before = ownership(run_dir / "other.sock")
    attacker, swapped = swap_at_first("connect", sock, run_dir / "other.sock",
                                      run_dir / "stale-moved.sock",
                                      lambda result: result < 0)
    paused = Paused(spawn, fake_etc, tmp, pause_hook, "app.sock")
    r = paused.run(["-n", "-s", sock, "-u", "webuser", "--", app,
                    "--marker", app_marker], attacker, app_marker)
    assert swapped, f"the probe was never reached\n{r}\n{paused.calls}"
    assert_survived(sock, before, r)
    assert r.returncode == SOCKET, r
    assert_one_error_line(r, str(sock), "changed")
    other.close()


# ---------------------------------------------------------------------------
# a live socket whose queue is full


def test_live_socket_with_full_backlog_is_in_use(spawn, app, sock, app_marker):
    """A server that accepts nothing, its listen queue full: the probe
    must say "in use" at once instead of waiting in connect()."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock))
    server.listen(0)
    waiting = []
    while True:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(str(sock))
        except BlockingIOError:
            c.close()
            break
        waiting.append(c)
    assert waiting, "the queue took no connection"
    before = harness.file_snapshot(sock)
    r = spawn.run_error("-n", "-s", sock, "--", app, "--marker", app_marker)
    assert r.returncode == SOCKET, r
    assert_one_error_line(r, str(sock), "already in use")
    assert harness.file_snapshot(sock) == before
    assert not app_marker.exists()
    for c in waiting:
        c.close()
    server.close()


def test_passed_socket_mode_is_applied_before_the_chroot(spawn, fake_etc, app,
                                                         tmp, run_dir):
    """With -c, the passed socket's path names a file outside the chroot:
    its mode is set there, and a file at the same path inside the chroot
    is never touched."""
    sock = run_dir / "app.sock"
    listener = harness.listening_unix_socket(sock)
    root = tmp / "chroot"
    inside = root / str(sock).lstrip("/")
    inside.parent.mkdir(parents=True)
    victim_file(inside)
    before = ownership(inside)
    r = run_with_passed(spawn, fake_etc, listener, "-n", "-u", "webuser",
                        "-c", root, "-M", "0606", "--", app)
    listener.close()
    assert ownership(inside) == before, f"a file in the chroot changed\n{r}"
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o606, r
