"""Privileges as root: who the application runs as (ids, groups, no way
back to root), who owns the socket, chroot, working directory, what a
non-root caller may ask for, and what is left behind when a start is
refused.

Every test runs spawn-fcgi in a private mount namespace where fixture
passwd/group files replace the real ones (fake_etc.wrap): webuser
1500:1500, also in staff2 (1600) and www-data (33); sockowner 1501:1501,
also in sockgrp (1700).
"""

import os
import shutil
import signal
import stat
import subprocess
import sys

import pytest

import harness
from harness import (app_pids, assert_one_error_line, file_snapshot,
                     query_state, spawned_pids, state_groups, wait_for_socket,
                     wait_until)

WEBUSER = 1500
SOCKOWNER = 1501
STAFF2 = 1600
SOCKGRP = 1700
WWW_DATA = 33
# initgroups("webuser", 1500) with the fixture files.
WEBUSER_GROUPS = sorted([WEBUSER, STAFF2, WWW_DATA])

USAGE, LOOKUP, SOCKET, PRIVILEGE, NOT_FOUND = 2, 3, 4, 5, 127

SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


# ---------------------------------------------------------------------------
# helpers


class NoLeakCheckSpawner:
    """The conftest Spawner, with LeakSanitizer off in sanitizer builds: a
    spawn-fcgi that entered a chroot has no /proc at exit, where LSan needs
    it (leaks are checked by test_valgrind instead).  Other builds ignore
    the variable."""

    def __init__(self, inner):
        self.inner = inner

    def _env(self, kw):
        kw["extra_env"] = {"ASAN_OPTIONS": "detect_leaks=0", **(kw.get("extra_env") or {})}
        return kw

    def run(self, *args, **kw):
        return self.inner.run(*args, **self._env(kw))

    def run_error(self, *args, **kw):
        return self.inner.run_error(*args, **self._env(kw))

    def start(self, *args, **kw):
        return self.inner.start(*args, **self._env(kw))


@pytest.fixture
def spawn(spawn):
    return NoLeakCheckSpawner(spawn)


@pytest.fixture
def wdir(tmp):
    """A directory owned by webuser: webuser may create, replace and plant
    anything in it."""
    d = tmp / "w"
    d.mkdir()
    os.chown(d, WEBUSER, WEBUSER)
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def app_marker(tmp):
    """A marker path that any uid can create (the marker fixture's
    directory is root's 0755 one, where a dropped application could not
    write and would exit instead)."""
    d = tmp / "m"
    d.mkdir()
    os.chmod(d, 0o1777)
    return d / "marker"


def proc_ids(pid):
    """Ids, groups, capabilities and no_new_privs of pid from
    /proc/PID/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return {
        "uids": tuple(int(x) for x in fields["Uid"][:3]),
        "gids": tuple(int(x) for x in fields["Gid"][:3]),
        "groups": sorted(int(x) for x in fields["Groups"]),
        "capprm": int(fields["CapPrm"][0], 16),
        "capeff": int(fields["CapEff"][0], 16),
        "no_new_privs": int(fields["NoNewPrivs"][0]),
    }


def assert_app_ids(st, uid, gid, groups):
    """The state application's own report of its ids and groups."""
    assert (st["uid"], st["euid"], st["suid"]) == (str(uid),) * 3, st
    assert (st["gid"], st["egid"], st["sgid"]) == (str(gid),) * 3, st
    assert state_groups(st) == sorted(groups), st["groups"]


def assert_dropped(st, uid, gid, groups):
    """Ids as wanted and no way back: setuid(0) and setgid(0) fail."""
    assert_app_ids(st, uid, gid, groups)
    assert st["setuid0"] == "fails", st
    assert st["setgid0"] == "fails", st
    # From outside: the application may have no /proc (chroot).
    assert_proc_dropped(int(st["pid"]), uid, gid, groups)


def assert_proc_dropped(pid, uid, gid, groups):
    ids = proc_ids(pid)
    assert ids["uids"] == (uid,) * 3, ids
    assert ids["gids"] == (gid,) * 3, ids
    assert ids["groups"] == sorted(groups), ids
    assert ids["capprm"] == 0 and ids["capeff"] == 0, ids


def grouplist_in(fake_etc, procs, user, gid):
    """os.getgrouplist(user, gid) as NSS answers inside the private /etc."""
    code = (f"import os; print(' '.join(map(str, "
            f"os.getgrouplist({user!r}, {int(gid)}))))")
    r = procs.run(fake_etc.wrap([sys.executable, "-c", code]),
                  env=harness.base_env())
    assert r.returncode == 0, r
    return sorted({int(g) for g in r.stdout.split()})


# Supplementary groups the calling root has in some tests: none of them
# may reach a dropped application.
ROOT_GROUPS = [4, 24]


def root_with_groups(fake_etc):
    """wrap= that starts the command as root with ROOT_GROUPS as its
    supplementary groups, in the private /etc."""
    groups = ",".join(map(str, ROOT_GROUPS))

    def wrap(argv):
        return fake_etc.wrap([SETPRIV, f"--groups={groups}", "--"]
                             + list(argv))
    return wrap


def start_no_fork(spawn, fake_etc, sock, *opts, app_args=(), app=None,
                  **kw):
    """spawn-fcgi -n -s SOCK OPTS -- APP ARGS in the private /etc; waits
    until the socket accepts."""
    kw.setdefault("wrap", fake_etc.wrap)
    s = spawn.start("-n", "-s", sock, *opts, "--", app, *app_args, **kw)
    wait_for_socket(sock, proc=s)
    return s


def stop(started):
    """SIGTERM a process we started (a supervisor) and wait for it."""
    if started.poll() is None:
        os.kill(started.pid, signal.SIGTERM)
        started.wait()


def not_started(app, marker, *paths):
    """Nothing of a refused start is left: the application never ran and
    no socket file was left at any of paths."""
    assert not marker.exists(), "the application was started"
    assert app_pids(app) == [], "an application process is running"
    for p in paths:
        assert not os.path.lexists(p), f"{p} was left behind"


def warnings_about_root(stderr):
    return [line for line in stderr.splitlines()
            if line.startswith("spawn-fcgi: warning: ") and "ROOT" in line]


# ---------------------------------------------------------------------------
# -u: ids, groups, no way back


def test_user_no_fork(spawn, app, sock, fake_etc, app_marker):
    s = start_no_fork(spawn, fake_etc, sock, "-u", "webuser", app=app,
                      app_args=("--marker", app_marker),
                      wrap=root_with_groups(fake_etc))
    st = query_state(sock)
    assert int(st["pid"]) == s.pid
    assert app_marker.read_text().strip() == str(s.pid)
    assert_dropped(st, WEBUSER, WEBUSER, WEBUSER_GROUPS)
    assert_proc_dropped(s.pid, WEBUSER, WEBUSER, WEBUSER_GROUPS)
    assert st["no_new_privs"] == "0"


def test_user_fork_mode_every_child(spawn, app, sock, fake_etc, tmp):
    mdir = tmp / "markers"
    mdir.mkdir()
    os.chmod(mdir, 0o1777)
    r = spawn.run("-s", sock, "-F", "2", "-u", "webuser", "--", app,
                  "--marker-dir", mdir, wrap=root_with_groups(fake_etc))
    assert r.returncode == 0, r
    pids = spawned_pids(r.stdout)
    assert len(set(pids)) == 2, r
    assert sorted(app_pids(app)) == sorted(pids)
    assert sorted(int(p.name) for p in mdir.iterdir()) == sorted(pids)
    for pid in pids:
        assert_proc_dropped(pid, WEBUSER, WEBUSER, WEBUSER_GROUPS)
    st = query_state(sock)
    assert int(st["pid"]) in pids
    assert_dropped(st, WEBUSER, WEBUSER, WEBUSER_GROUPS)


def test_user_supervised_every_child(spawn, app, sock, fake_etc):
    s = spawn.start("-w", "-F", "2", "-s", sock, "-u", "webuser", "--", app,
                    wrap=root_with_groups(fake_etc))
    wait_for_socket(sock, proc=s)
    pids = wait_until(lambda: len(app_pids(app)) == 2 and app_pids(app),
                      what="2 supervised children")
    # The supervisor itself stays root: it must restart children.
    assert proc_ids(s.pid)["uids"] == (0, 0, 0)
    assert proc_ids(s.pid)["groups"] == ROOT_GROUPS
    for pid in pids:
        assert_proc_dropped(pid, WEBUSER, WEBUSER, WEBUSER_GROUPS)
        assert harness._proc_stat(pid)[0] == s.pid
    st = query_state(sock)
    assert int(st["pid"]) in pids
    assert_dropped(st, WEBUSER, WEBUSER, WEBUSER_GROUPS)
    stop(s)


def test_numeric_uid_of_known_user_is_that_user(spawn, app, sock, fake_etc):
    start_no_fork(spawn, fake_etc, sock, "-u", str(WEBUSER), app=app)
    st = query_state(sock)
    # initgroups for the passwd entry, as for the name.
    assert_dropped(st, WEBUSER, WEBUSER, WEBUSER_GROUPS)
    sst = os.lstat(sock)
    assert (sst.st_uid, sst.st_gid) == (WEBUSER, WEBUSER)


def test_user_and_group(spawn, app, sock, fake_etc, procs):
    want = grouplist_in(fake_etc, procs, "webuser", STAFF2)
    # The expectation comes from NSS, but it must be the interesting one:
    # the list is built around 1600, with www-data kept.
    assert STAFF2 in want and WWW_DATA in want, want
    start_no_fork(spawn, fake_etc, sock, "-u", "webuser", "-g", "staff2",
                  app=app)
    st = query_state(sock)
    assert_dropped(st, WEBUSER, STAFF2, want)
    # webuser's primary group is not in the list unless NSS put it there.
    assert (WEBUSER in state_groups(st)) == (WEBUSER in want)


def test_numeric_user_and_group_without_passwd_entry(spawn, app, sock,
                                                     fake_etc, app_marker):
    start_no_fork(spawn, fake_etc, sock, "-u", "4242", "-g", "4243", app=app,
                  app_args=("--marker", app_marker),
                  wrap=root_with_groups(fake_etc))
    st = query_state(sock)
    # No passwd entry: the group list is exactly the given group, nothing
    # of root's.
    assert_dropped(st, 4242, 4243, [4243])
    assert app_marker.exists()
    sst = os.lstat(sock)
    assert (sst.st_uid, sst.st_gid) == (4242, 4243)


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_numeric_user_without_passwd_entry_needs_group(spawn, app, sock,
                                                       fake_etc, app_marker,
                                                       fork):
    args = ([] if fork else ["-n"]) + ["-s", sock, "-u", "4242", "--", app,
                                       "--marker", app_marker]
    r = spawn.run_error(*args, wrap=fake_etc.wrap)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, "4242", "--group")
    not_started(app, app_marker, sock)


def test_peer_numeric_user_keeps_gid_0(peer, app, sock, fake_etc):
    """1.6.4 runs `-u 4242` with gid 0 and root's groups: what the
    refusal above prevents."""
    s = peer.start("-n", "-s", sock, "-u", "4242", "--", app,
                   wrap=root_with_groups(fake_etc))
    wait_for_socket(sock, proc=s)
    st = query_state(sock)
    assert st["uid"] == "4242"
    assert st["gid"] == "0"
    assert state_groups(st) == ROOT_GROUPS


def test_group_alone_as_root(spawn, app, sock, fake_etc):
    s = start_no_fork(spawn, fake_etc, sock, "-g", "staff2", app=app,
                      wrap=root_with_groups(fake_etc))
    st = query_state(sock)
    # The group list is replaced too, though the uid stays 0.
    assert_app_ids(st, 0, STAFF2, [STAFF2])
    ids = proc_ids(s.pid)
    assert (ids["uids"], ids["gids"], ids["groups"]) == \
        ((0, 0, 0), (STAFF2,) * 3, [STAFF2])
    assert len(warnings_about_root(s.stderr)) == 1, s.describe()
    sst = os.lstat(sock)
    assert (sst.st_uid, sst.st_gid) == (0, STAFF2)


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_root_without_user_warns(spawn, app, sock, fake_etc, fork):
    if fork:
        r = spawn.run("-s", sock, "--", app, wrap=fake_etc.wrap)
        assert r.returncode == 0, r
        stderr = r.stderr
    else:
        s = start_no_fork(spawn, fake_etc, sock, app=app)
        stderr = s.stderr
    lines = [line for line in stderr.splitlines()
             if "will run as ROOT" in line]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("spawn-fcgi: ")
    st = query_state(sock)
    assert st["uid"] == "0"


def test_peer_root_without_user_says_nothing(peer, app, sock, fake_etc):
    """1.6.4 runs the application as root without a word: the warning
    tests above do see the difference."""
    r = peer.run("-s", sock, "--", app, wrap=fake_etc.wrap)
    assert r.returncode == 0, r
    assert "root" not in r.stderr
    assert r.stderr == ""


# ---------------------------------------------------------------------------
# socket owner, group and mode


OWNER_CASES = [
    # id, options, owner, group
    ("user", ["-u", "webuser"], WEBUSER, WEBUSER),
    ("user-group", ["-u", "webuser", "-g", "staff2"], WEBUSER, STAFF2),
    ("user-sockuser", ["-u", "webuser", "-U", "sockowner"],
     SOCKOWNER, SOCKOWNER),
    ("user-group-sockuser", ["-u", "webuser", "-g", "staff2",
                             "-U", "sockowner"], SOCKOWNER, SOCKOWNER),
    ("user-sockgroup", ["-u", "webuser", "-G", "sockgrp"], WEBUSER, SOCKGRP),
    ("user-sockuser-sockgroup", ["-u", "webuser", "-U", "sockowner",
                                 "-G", "sockgrp"], SOCKOWNER, SOCKGRP),
    ("sockuser", ["-U", "sockowner"], SOCKOWNER, SOCKOWNER),
    ("sockgroup", ["-G", "sockgrp"], 0, SOCKGRP),
    ("group", ["-g", "staff2"], 0, STAFF2),
    ("nothing", [], 0, 0),
]
MODE_CASES = [
    # -M value (None: default), mode with umask 022
    (None, 0o640), ("0600", 0o600), ("0660", 0o660), ("0666", 0o666)]


def owner_mode_cases():
    for cid, opts, owner, group in OWNER_CASES:
        yield pytest.param(opts, None, owner, group, 0o640, id=cid)
    for cid, opts, owner, group in (OWNER_CASES[0], OWNER_CASES[-1]):
        for m, mode in MODE_CASES[1:]:
            yield pytest.param(opts, m, owner, group, mode,
                               id=f"{cid}-M{m}")


def socket_stat(spawner, fake_etc, sock, opts, m, app):
    args = list(opts) + (["-M", m] if m else [])
    s = spawner.start("-n", "-s", sock, *args, "--", app,
                      wrap=fake_etc.wrap, umask=0o022)
    wait_for_socket(sock, proc=s)
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.mark.parametrize("opts,m,owner,group,mode", owner_mode_cases())
def test_socket_owner_group_mode(spawn, app, sock, fake_etc, opts, m, owner,
                                 group, mode):
    assert socket_stat(spawn, fake_etc, sock, opts, m, app) == \
        (owner, group, mode)


@pytest.mark.parametrize("opts,m,owner,group,mode", owner_mode_cases())
def test_socket_owner_group_mode_same_as_peer(spawn, peer, app, tmp,
                                              fake_etc, opts, m, owner, group,
                                              mode):
    ours = socket_stat(spawn, fake_etc, tmp / "ours.sock", opts, m, app)
    theirs = socket_stat(peer, fake_etc, tmp / "peer.sock", opts, m, app)
    assert ours == theirs


# ---------------------------------------------------------------------------
# a socket path in a directory the application user can write


def _plant_link_to_root_file(tmp, path):
    target = tmp / "secret"
    target.write_text("root's data\n")
    os.chmod(target, 0o600)
    path.symlink_to(target)
    return target


def _plant_dangling_link(tmp, path):
    target = tmp / "elsewhere.sock"
    path.symlink_to(target)
    return target


def _watch(path):
    """file_snapshot plus owner, or None when nothing is there."""
    if not os.path.lexists(path):
        return None
    st = os.lstat(path)
    return file_snapshot(path), st.st_uid, st.st_gid


@pytest.mark.parametrize("plant", [_plant_link_to_root_file,
                                   _plant_dangling_link],
                         ids=["to-root-file", "dangling"])
@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_symlink_planted_by_the_user_is_refused(spawn, app, tmp, wdir,
                                                fake_etc, app_marker, plant,
                                                fork):
    """webuser can write the socket's directory, so it can plant a symlink
    at the socket path; root must neither replace it nor chown or create
    anything through it."""
    path = wdir / "app.sock"
    target = plant(tmp, path)
    link_before, target_before = _watch(path), _watch(target)
    args = ([] if fork else ["-n"]) + ["-s", path, "-u", "webuser", "--",
                                       app, "--marker", app_marker]
    r = spawn.run_error(*args, wrap=fake_etc.wrap)
    assert r.returncode == SOCKET, r
    assert_one_error_line(r, str(path), "symbolic link")
    assert _watch(path) == link_before
    assert _watch(target) == target_before
    assert sorted(os.listdir(wdir)) == ["app.sock"]
    not_started(app, app_marker)


def test_peer_replaces_planted_symlink(peer, app, tmp, wdir, fake_etc):
    """1.6.4 unlinks the planted symlink and puts its socket there: the
    snapshot comparison above does see that."""
    path = wdir / "app.sock"
    _plant_link_to_root_file(tmp, path)
    before = _watch(path)
    r = peer.run("-s", path, "-u", "webuser", "--", app, wrap=fake_etc.wrap)
    assert r.returncode == 0, r
    assert _watch(path) != before
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


# ---------------------------------------------------------------------------
# chroot


@pytest.fixture
def chroot_dir(tmp, app):
    """A minimal root: the state application as /app, the shared
    libraries it needs (from ldd) at the same paths, /www and a /m that
    anybody can write (markers). No /etc, no /proc: users are looked up
    before the chroot."""
    root = tmp / "root"
    root.mkdir()
    os.chmod(root, 0o755)
    shutil.copy2(app, root / "app")
    out = subprocess.run(["ldd", app], capture_output=True, text=True,
                         check=True, env=harness.base_env()).stdout
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                dst = root / word.lstrip("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(word), dst)
    (root / "www").mkdir()
    (root / "m").mkdir()
    os.chmod(root / "m", 0o1777)
    return root


def test_chroot_socket_inside(spawn, app, chroot_dir, fake_etc):
    root = chroot_dir
    sock = root / "app.sock"
    s = spawn.start("-n", "-c", root, "-u", "webuser", "-s", "/app.sock",
                    "--", "/app", "--marker", "/m/marker", wrap=fake_etc.wrap)
    wait_for_socket(sock, proc=s)
    st = query_state(sock)
    pid = int(st["pid"])
    assert pid == s.pid
    assert os.readlink(f"/proc/{pid}/root") == str(root)
    assert st["cwd"] == "/"
    assert st["startup_fd0_address"] == "/app.sock"
    assert (root / "m" / "marker").read_text().strip() == str(pid)
    assert_dropped(st, WEBUSER, WEBUSER, WEBUSER_GROUPS)
    sst = os.lstat(sock)
    assert (sst.st_uid, sst.st_gid) == (WEBUSER, WEBUSER)


def test_chroot_socket_before_chroot(spawn, app, tmp, chroot_dir, fake_etc):
    root = chroot_dir
    sock = tmp / "outside.sock"
    s = spawn.start("-n", "-c", root, "-S", "-u", "webuser", "-s", sock,
                    "--", "/app", wrap=fake_etc.wrap)
    wait_for_socket(sock, proc=s)
    st = query_state(sock)
    pid = int(st["pid"])
    assert os.readlink(f"/proc/{pid}/root") == str(root)
    assert st["startup_fd0_address"] == str(sock)
    assert not os.path.lexists(root / sock.relative_to("/"))
    assert_dropped(st, WEBUSER, WEBUSER, WEBUSER_GROUPS)


def test_chroot_chdir_is_inside(spawn, app, chroot_dir, fake_etc):
    root = chroot_dir
    sock = root / "app.sock"
    s = spawn.start("-n", "-c", root, "-d", "/www", "-u", "webuser",
                    "-s", "/app.sock", "--", "/app", wrap=fake_etc.wrap)
    wait_for_socket(sock, proc=s)
    st = query_state(sock)
    assert st["cwd"] == "/www"
    assert os.readlink(f"/proc/{st['pid']}/cwd") == str(root / "www")
    assert os.readlink(f"/proc/{st['pid']}/root") == str(root)


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
@pytest.mark.parametrize("before", [False, True], ids=["inside", "-S"])
@pytest.mark.parametrize("missing", ["/nope", "host-path"])
def test_chroot_missing_application(spawn, app, tmp, chroot_dir, fake_etc,
                                    fork, before, missing):
    """The application is looked for inside the chroot; `host-path` is the
    state application's own path, which exists outside only."""
    root = chroot_dir
    exe = app if missing == "host-path" else missing
    sock = tmp / "outside.sock" if before else "/app.sock"
    args = ([] if fork else ["-n"]) + ["-c", root, "-u", "webuser", "-s", sock]
    args += (["-S"] if before else []) + ["--", exe, "--marker", "/m/marker"]
    r = spawn.run_error(*args, wrap=fake_etc.wrap)
    assert r.returncode == NOT_FOUND, r
    assert_one_error_line(r, exe, "not found")
    not_started(root / "app", root / "m" / "marker", root / "app.sock",
                tmp / "outside.sock")
    assert spawned_pids(r.stdout) == []


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
@pytest.mark.parametrize("before", [False, True], ids=["inside", "-S"])
def test_chroot_failure_after_the_socket_removes_it(spawn, app, tmp,
                                                    chroot_dir, fake_etc,
                                                    fork, before):
    """A start with -d naming a directory missing inside the chroot fails
    with status 5 and leaves no socket, wherever it would have been
    created.  (The directory is checked in the deciding phase, before the
    socket exists; the removal of a socket after a failed launch step is
    covered by test_fault_injection.py.)"""
    root = chroot_dir
    sock = tmp / "outside.sock" if before else "/app.sock"
    args = ([] if fork else ["-n"]) + ["-c", root, "-d", "/missing", "-u",
                                       "webuser", "-s", sock]
    args += (["-S"] if before else []) + ["--", "/app", "--marker",
                                          "/m/marker"]
    r = spawn.run_error(*args, wrap=fake_etc.wrap)
    assert r.returncode == PRIVILEGE, r
    assert "/missing" in r.stderr, r
    not_started(root / "app", root / "m" / "marker", root / "app.sock",
                tmp / "outside.sock")


@pytest.mark.parametrize("before", [False, True], ids=["inside", "-S"])
def test_chroot_supervisor_removes_socket_when_it_stops(spawn, app, tmp,
                                                        chroot_dir, fake_etc,
                                                        before):
    root = chroot_dir
    path = tmp / "outside.sock" if before else root / "app.sock"
    given = path if before else "/app.sock"
    s = spawn.start("-w", "-F", "2", "-c", root, "-u", "webuser", "-s", given,
                    *(["-S"] if before else []), "--", "/app",
                    wrap=fake_etc.wrap)
    wait_for_socket(path, proc=s)
    pids = wait_until(lambda: len(app_pids(root / "app")) == 2
                      and app_pids(root / "app"), what="2 children")
    for pid in pids:
        assert os.readlink(f"/proc/{pid}/root") == str(root)
    os.kill(s.pid, signal.SIGTERM)
    assert s.wait() == 0, s.describe()
    assert not os.path.lexists(path), s.describe()


def test_chroot_pid_file_is_the_one_outside(spawn, app, tmp, chroot_dir, fake_etc):
    """The PID file's path is the caller's: the supervisor writes it before
    the chroot and removes that very file when it stops, never a file of
    the same name inside the chroot."""
    root = chroot_dir
    pid_file = tmp / "run" / "app.pid"
    pid_file.parent.mkdir()
    decoy = root / pid_file.relative_to("/")
    decoy.parent.mkdir(parents=True)
    decoy.write_text("not ours")
    s = spawn.start("-w", "-c", root, "-u", "webuser", "-s", "/app.sock",
                    "-P", pid_file, "--", "/app", wrap=fake_etc.wrap)
    wait_for_socket(root / "app.sock", proc=s)
    assert pid_file.read_text() == str(s.pid)
    # Its child runs: the supervisor has taken over SIGTERM (the socket
    # alone is ready before that).
    wait_until(lambda: app_pids(root / "app"), what="the child")
    os.kill(s.pid, signal.SIGTERM)
    assert s.wait() == 0, s.describe()
    assert not pid_file.exists(), s.describe()
    assert decoy.read_text() == "not ours"


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_chroot_failed_start_keeps_an_existing_pid_file(spawn, app, tmp, chroot_dir,
                                                        fake_etc, fork):
    """A start that fails inside the chroot leaves a PID file it did not
    create as it was: in no-fork mode, where our PID is written before the
    launch steps, the old content is put back."""
    root = chroot_dir
    pid_file = tmp / "app.pid"
    pid_file.write_text("4242")
    args = ([] if fork else ["-n"]) + ["-c", root, "-d", "/missing", "-u", "webuser",
                                       "-s", "/app.sock", "-P", pid_file, "--", "/app"]
    r = spawn.run_error(*args, wrap=fake_etc.wrap)
    assert r.returncode == PRIVILEGE, r
    assert pid_file.read_text() == "4242"


# ---------------------------------------------------------------------------
# -d without chroot


def test_chdir_without_chroot(spawn, app, sock, tmp, fake_etc):
    d = tmp / "www"
    d.mkdir()
    s = start_no_fork(spawn, fake_etc, sock, "-u", "webuser", "-d", d, app=app)
    st = query_state(sock)
    assert st["cwd"] == str(d)
    assert os.readlink(f"/proc/{s.pid}/cwd") == str(d)


def test_chdir_to_root_only_directory(spawn, app, sock, tmp, fake_etc,
                                      procs):
    """The working directory is entered while still root: launch_exec()
    calls chdir() before setgroups/setresgid/setresuid (see the PRIVILEGES
    order in the man page), so a 0700 root directory works although
    webuser itself could not enter it."""
    d = tmp / "private"
    d.mkdir()
    os.chmod(d, 0o700)
    # webuser really cannot enter it.
    r = procs.run(fake_etc.wrap([SETPRIV, "--reuid=1500", "--regid=1500",
                                 "--clear-groups", "/bin/sh", "-c",
                                 f"cd {d}"]), env=harness.base_env())
    assert r.returncode != 0, r
    s = start_no_fork(spawn, fake_etc, sock, "-u", "webuser", "-d", d, app=app)
    st = query_state(sock)
    assert st["cwd"] == str(d)
    assert os.readlink(f"/proc/{s.pid}/cwd") == str(d)
    assert_dropped(st, WEBUSER, WEBUSER, WEBUSER_GROUPS)


def test_peer_chdir_after_drop_fails_for_root_only_directory(peer, app, sock,
                                                            tmp, fake_etc):
    """1.6.4 changes directory after setuid(): the same command line fails
    there, so the test above does depend on the order."""
    d = tmp / "private"
    d.mkdir()
    os.chmod(d, 0o700)
    r = peer.run_error("-n", "-s", sock, "-u", "webuser", "-d", d, "--", app,
                       wrap=fake_etc.wrap)
    assert r.returncode != 0, r
    assert "chdir" in r.stderr


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_chdir_missing_directory(spawn, app, sock, tmp, fake_etc, app_marker,
                                 fork):
    missing = tmp / "missing"
    args = ([] if fork else ["-n"]) + ["-s", sock, "-u", "webuser", "-d",
                                       missing, "--", app, "--marker",
                                       app_marker]
    r = spawn.run_error(*args, wrap=fake_etc.wrap)
    assert r.returncode == PRIVILEGE, r
    assert str(missing) in r.stderr, r
    not_started(app, app_marker, sock, missing)


# ---------------------------------------------------------------------------
# started without root


def as_webuser(fake_etc):
    """wrap= that runs the command as uid/gid 1500 with no supplementary
    groups (and so without any capability) in the private /etc."""
    def wrap(argv):
        return fake_etc.wrap([SETPRIV, "--reuid=1500", "--regid=1500",
                              "--clear-groups"] + list(argv))
    return wrap


@pytest.mark.parametrize("opts,needle", [
    (["-u", "sockowner"], "needs root"),
    (["-u", str(SOCKOWNER)], "needs root"),
    (["-g", "staff2"], "needs root"),
    (["-c", "CHROOT"], "needs root"),
    (["-u", "webuser", "-c", "CHROOT"], "needs root"),
], ids=["other-user", "other-uid", "other-group", "chroot", "self-chroot"])
def test_non_root_caller_refused(spawn, app, tmp, wdir, fake_etc, app_marker,
                                 opts, needle):
    (tmp / "root").mkdir()
    opts = [str(tmp / "root") if o == "CHROOT" else o for o in opts]
    sock = wdir / "app.sock"
    r = spawn.run_error("-n", "-s", sock, *opts, "--", app, "--marker",
                        app_marker, wrap=as_webuser(fake_etc))
    assert r.returncode == USAGE, r
    assert_one_error_line(r, needle)
    not_started(app, app_marker, sock)


@pytest.mark.parametrize("opts", [["-u", "webuser"], ["-u", "1500"],
                                  ["-u", "webuser", "-g", "webuser"]],
                         ids=["name", "uid", "name-and-group"])
def test_non_root_caller_naming_itself(spawn, app, wdir, fake_etc,
                                       app_marker, opts):
    sock = wdir / "app.sock"
    s = spawn.start("-n", "-s", sock, *opts, "--", app, "--marker",
                    app_marker, wrap=as_webuser(fake_etc))
    wait_for_socket(sock, proc=s)
    st = query_state(sock)
    # Nothing is changed: the caller's ids and its (empty) group list.
    assert_dropped(st, WEBUSER, WEBUSER, [])
    assert app_marker.read_text().strip() == st["pid"]
    assert os.lstat(sock).st_uid == WEBUSER


# ---------------------------------------------------------------------------
# no_new_privs


@pytest.mark.parametrize("flag", [True, False], ids=["given", "not-given"])
@pytest.mark.parametrize("user", [True, False], ids=["user", "root"])
def test_no_new_privs(spawn, app, sock, fake_etc, flag, user):
    opts = (["--no-new-privs"] if flag else []) + \
        (["-u", "webuser"] if user else [])
    s = start_no_fork(spawn, fake_etc, sock, *opts, app=app)
    st = query_state(sock)
    assert st["no_new_privs"] == ("1" if flag else "0")
    assert proc_ids(s.pid)["no_new_privs"] == (1 if flag else 0)
