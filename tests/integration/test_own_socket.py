"""spawn-fcgi creating its own socket: unix paths and TCP addresses, in
no-fork and fork mode, answered by real FastCGI clients and web servers."""

import os
import socket
import stat

import pytest

import harness
from harness import (assert_one_error_line, can_connect, file_snapshot,
                     free_port, parse_state, query_state, spawned_pids,
                     state_env, state_fds, wait_for_socket)


def start_no_fork(spawn, sock, app, *app_args, opts=()):
    """spawn-fcgi -n -s SOCK [opts] -- APP [args]; waits until it accepts."""
    s = spawn.start("-n", "-s", sock, *opts, "--", app, *app_args)
    wait_for_socket(sock, proc=s)
    return s


# ---------------------------------------------------------------------------
# unix sockets


def test_unix_no_fork_execs_app_on_the_socket(spawn, app, sock, marker):
    s = start_no_fork(spawn, sock, app, "--marker", marker)
    st = query_state(sock, query="a=1&b=two")
    # -n execs in place: the app is the process we started.
    assert int(st["pid"]) == s.pid
    assert marker.read_text().strip() == str(s.pid)
    assert st["query_string"] == "a=1&b=two"
    assert st["startup_fd0_listening"] == "yes"
    assert st["startup_fd0_family"] == "unix"
    assert st["startup_fd0_address"] == str(sock)
    assert st["startup_fd0_type"] == "stream"
    assert st["arg"] == [app, "--marker", str(marker)]
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    assert s.poll() is None, s.describe()


def test_unix_fork_mode_child_answers(spawn, app, sock, marker):
    r = spawn.run("-s", sock, "--", app, "--marker", marker)
    assert r.returncode == 0, r
    pids = spawned_pids(r.stdout)
    assert len(pids) == 1, r
    assert r.stdout_lines == [
        f"spawn-fcgi: child spawned successfully: PID: {pids[0]}"], r
    st = query_state(sock)
    assert int(st["pid"]) == pids[0]
    assert marker.read_text().strip() == str(pids[0])
    # The child is a session leader of its own and no longer ours.
    assert int(st["sid"]) == pids[0]
    assert st["startup_fd0_listening"] == "yes"
    assert st["startup_fd0_address"] == str(sock)


@pytest.mark.parametrize("umask,expected", [
    (0o022, 0o640), (0o002, 0o660), (0o077, 0o600), (0o000, 0o660)])
def test_unix_default_mode_is_0660_minus_umask(spawn, app, sock, umask,
                                               expected):
    start = spawn.start("-n", "-s", sock, "--", app, umask=umask)
    wait_for_socket(sock, proc=start)
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == expected, oct(st.st_mode)
    assert st.st_uid == os.geteuid()


def test_unix_default_mode_same_as_peer(spawn, peer, app, tmp):
    ours, theirs = tmp / "ours.sock", tmp / "peer.sock"
    a = spawn.start("-n", "-s", ours, "--", app, umask=0o027)
    b = peer.start("-n", "-s", theirs, "--", app, umask=0o027)
    wait_for_socket(ours, proc=a)
    wait_for_socket(theirs, proc=b)
    assert stat.S_IMODE(os.lstat(ours).st_mode) == \
        stat.S_IMODE(os.lstat(theirs).st_mode) == 0o640


@pytest.mark.parametrize("mode", ["0600", "600", "0666", "0700", "0"])
def test_unix_explicit_mode(spawn, app, sock, mode):
    s = spawn.start("-n", "-s", sock, "-M", mode, "--", app, umask=0o022)
    harness.wait_until(
        lambda: harness.unix_listener_inodes(sock) or s.poll() is not None,
        what="a listening socket")
    assert s.poll() is None, s.describe()
    assert stat.S_IMODE(os.lstat(sock).st_mode) == int(mode, 8)


def test_unix_mode_0600_still_answers_owner(spawn, app, sock):
    start_no_fork(spawn, sock, app, opts=("-M", "0600"))
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    assert query_state(sock)["startup_fd0_listening"] == "yes"


def test_unix_stale_socket_is_replaced(spawn, app, sock, marker):
    harness.make_stale_socket(sock)
    assert not can_connect(sock)
    s = start_no_fork(spawn, sock, app, "--marker", marker)
    st = query_state(sock)
    assert int(st["pid"]) == s.pid
    # The file at the path now belongs to the app's listening socket.
    fd0 = harness.socket_inode(state_fds(st)[0])
    assert harness.unix_listener_inodes(sock) == [fd0]


def test_unix_live_socket_is_refused(spawn, app, sock, marker):
    other = harness.listening_unix_socket(sock)
    try:
        before = file_snapshot(sock)
        r = spawn.run_error("-n", "-s", sock, "--", app, "--marker", marker)
        assert r.returncode == 4, r
        assert_one_error_line(r, "already in use")
        assert not marker.exists(), "the application was started"
        assert file_snapshot(sock) == before
        # The other server still owns its socket.
        c = harness.connect(sock)
        conn, _ = other.accept()
        conn.close()
        c.close()
    finally:
        other.close()


def test_unix_live_socket_is_refused_in_fork_mode(spawn, app, sock, marker):
    other = harness.listening_unix_socket(sock)
    try:
        r = spawn.run_error("-s", sock, "--", app, "--marker", marker)
        assert r.returncode == 4, r
        assert_one_error_line(r, "already in use")
        assert not marker.exists()
        assert spawned_pids(r.stdout) == []
        assert harness.app_pids(app) == []
        assert can_connect(sock)
    finally:
        other.close()


def _make_regular(path):
    path.write_bytes(b"precious data\n")


def _make_directory(path):
    path.mkdir()
    (path / "inside").write_text("keep me\n")


def _make_symlink_to_file(path):
    target = path.parent / "target.txt"
    target.write_text("target data\n")
    path.symlink_to(target)


def _make_dangling_symlink(path):
    path.symlink_to(path.parent / "nowhere")


def _make_symlink_to_stale_socket(path):
    target = path.parent / "real.sock"
    harness.make_stale_socket(target)
    path.symlink_to(target)


@pytest.mark.parametrize("make", [
    _make_regular, _make_directory, _make_symlink_to_file,
    _make_dangling_symlink, _make_symlink_to_stale_socket],
    ids=["regular-file", "directory", "symlink", "dangling-symlink",
         "symlink-to-stale-socket"])
@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_unix_non_socket_at_path_is_refused_and_kept(spawn, app, tmp, sock,
                                                     marker, make, fork):
    make(sock)
    before = file_snapshot(sock)
    around = {p.name: file_snapshot(p) for p in tmp.iterdir()
              if not p.name.startswith(".")}
    args = (["-n"] if not fork else []) + ["-s", sock, "--", app,
                                           "--marker", marker]
    r = spawn.run_error(*args)
    assert r.returncode == 4, r
    assert_one_error_line(r, str(sock))
    assert not marker.exists(), "the application was started"
    assert file_snapshot(sock) == before
    assert {p.name: file_snapshot(p) for p in tmp.iterdir()
            if not p.name.startswith(".") and p.name in around} == around
    assert harness.app_pids(app) == []


def test_peer_deletes_regular_file_showing_the_check_works(peer, app, sock):
    """1.6.4 unlinks a regular file at the socket path: the snapshot
    comparison used above does see that."""
    _make_regular(sock)
    before = file_snapshot(sock)
    s = peer.start("-n", "-s", sock, "--", app)
    wait_for_socket(sock, proc=s)
    assert file_snapshot(sock) != before


@pytest.mark.parametrize("excess", [1, 150])
@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_unix_path_too_long_is_refused(spawn, app, tmp, marker, fork, excess):
    name = "x" * (harness.SUN_PATH_MAX + excess - len(str(tmp)) - 1)
    long_path = tmp / name
    assert len(str(long_path)) == harness.SUN_PATH_MAX + excess
    args = (["-n"] if not fork else []) + ["-s", long_path, "--", app,
                                           "--marker", marker]
    r = spawn.run_error(*args)
    assert r.returncode == 2, r
    assert_one_error_line(r, "too long")
    assert not marker.exists()
    assert not os.path.lexists(long_path)


def test_unix_longest_path_that_fits_works(spawn, app, tmp):
    name = "y" * (harness.SUN_PATH_MAX - len(str(tmp)) - 1)
    path = tmp / name
    assert len(str(path)) == harness.SUN_PATH_MAX
    s = spawn.start("-n", "-s", path, "--", app)
    wait_for_socket(str(path), proc=s)
    st = harness.fcgi_request_raw(str(path))
    assert parse_state(st)["startup_fd0_address"] == str(path)


def test_unix_socket_in_missing_directory_fails(spawn, app, tmp, marker):
    path = tmp / "missing" / "app.sock"
    r = spawn.run_error("-n", "-s", path, "--", app, "--marker", marker)
    assert r.returncode == 4, r
    assert_one_error_line(r, str(path))
    assert not marker.exists()
    assert not (tmp / "missing").exists()


# ---------------------------------------------------------------------------
# TCP


def test_tcp_ipv4_loopback_no_fork(spawn, app, marker):
    port = free_port()
    s = spawn.start("-n", "-a", "127.0.0.1", "-p", port, "--", app,
                    "--marker", marker)
    addr = f"127.0.0.1:{port}"
    wait_for_socket(addr, proc=s)
    st = query_state(addr, query="tcp=4")
    assert int(st["pid"]) == s.pid
    assert st["startup_fd0_family"] == "inet"
    assert st["startup_fd0_address"] == addr
    assert st["startup_fd0_listening"] == "yes"
    assert st["query_string"] == "tcp=4"


def test_tcp_ipv4_fork_mode(spawn, app):
    port = free_port()
    r = spawn.run("-a", "127.0.0.1", "-p", port, "--", app)
    assert r.returncode == 0, r
    pids = spawned_pids(r.stdout)
    assert len(pids) == 1, r
    addr = f"127.0.0.1:{port}"
    wait_for_socket(addr)
    st = query_state(addr)
    assert int(st["pid"]) == pids[0]
    assert st["startup_fd0_address"] == addr


@pytest.mark.parametrize("given", ["::1", "[::1]"])
def test_tcp_ipv6_loopback(spawn, app, ipv6, given):
    port = free_port("::1")
    s = spawn.start("-n", "-a", given, "-p", port, "--", app)
    addr = f"[::1]:{port}"
    wait_for_socket(addr, proc=s)
    st = query_state(addr, query="v6=1")
    assert int(st["pid"]) == s.pid
    assert st["startup_fd0_family"] == "inet6"
    assert st["startup_fd0_address"] == addr
    assert st["query_string"] == "v6=1"
    # Bound to ::1 only, not to every address.
    assert not can_connect(f"127.0.0.1:{port}")


def test_tcp_host_name_localhost(spawn, app):
    port = free_port()
    s = spawn.start("-n", "-a", "localhost", "-p", port, "--", app)
    candidates = [f"127.0.0.1:{port}"]
    if harness.has_ipv6_loopback():
        candidates.append(f"[::1]:{port}")

    def reachable():
        if s.poll() is not None:
            raise AssertionError(s.describe())
        return next((a for a in candidates if can_connect(a)), None)
    addr = harness.wait_until(reachable, what="localhost to accept")
    st = query_state(addr)
    assert int(st["pid"]) == s.pid
    assert st["startup_fd0_address"] == addr
    assert st["startup_fd0_family"] in ("inet", "inet6")


def test_tcp_default_address_is_any(spawn, app):
    port = free_port()
    s = spawn.start("-n", "-p", port, "--", app)
    addr = f"127.0.0.1:{port}"
    wait_for_socket(addr, proc=s)
    st = query_state(addr)
    assert st["startup_fd0_address"] == f"0.0.0.0:{port}"


def test_tcp_port_in_use_is_refused(spawn, app, marker):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(4)
    port = holder.getsockname()[1]
    try:
        r = spawn.run_error("-n", "-a", "127.0.0.1", "-p", port, "--", app,
                      "--marker", marker)
        assert r.returncode == 4, r
        assert_one_error_line(r, str(port))
        assert not marker.exists()
    finally:
        holder.close()


# ---------------------------------------------------------------------------
# backlog


def test_backlog_default_is_1024(spawn, app, sock):
    start_no_fork(spawn, sock, app)
    somax = int(open("/proc/sys/net/core/somaxconn").read())
    assert harness.listen_backlog(sock) == min(1024, somax)


@pytest.mark.parametrize("n", ["1", "16", "200"])
def test_backlog_option_unix(spawn, app, sock, n):
    start_no_fork(spawn, sock, app, opts=("-b", n))
    assert harness.listen_backlog(sock) == int(n)
    assert query_state(sock)["startup_fd0_listening"] == "yes"


def test_backlog_option_tcp(spawn, app):
    port = free_port()
    s = spawn.start("-n", "-a", "127.0.0.1", "-p", port, "-b", "37", "--",
                    app)
    wait_for_socket(f"127.0.0.1:{port}", proc=s)
    assert harness.listen_backlog(f"127.0.0.1:{port}") == 37


# ---------------------------------------------------------------------------
# real applications and web servers


PHP_PAGE = """<?php
header('Content-Type: text/plain');
echo "php says hello\\n";
echo "sapi=", php_sapi_name(), "\\n";
echo "q=", $_GET['q'] ?? '', "\\n";
echo "sum=", 6 * 7, "\\n";
"""


def test_php_cgi_through_spawn_fcgi(spawn, php_cgi, tmp, sock):
    page = tmp / "index.php"
    page.write_text(PHP_PAGE)
    s = spawn.start("-n", "-s", sock, "--", php_cgi)
    wait_for_socket(sock, proc=s)
    r = harness.fcgi_request(sock, query="q=xyz", script=page)
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain")
    assert r.text == "php says hello\nsapi=cgi-fcgi\nq=xyz\nsum=42\n"


def test_php_cgi_same_body_as_peer(spawn, peer, php_cgi, tmp):
    page = tmp / "index.php"
    page.write_text(PHP_PAGE)
    ours, theirs = tmp / "ours.sock", tmp / "peer.sock"
    a = spawn.start("-n", "-s", ours, "-C", "2", "--", php_cgi)
    b = peer.start("-n", "-s", theirs, "-C", "2", "--", php_cgi)
    wait_for_socket(ours, proc=a)
    wait_for_socket(theirs, proc=b)
    ra = harness.fcgi_request(ours, query="q=same", script=page)
    rb = harness.fcgi_request(theirs, query="q=same", script=page)
    assert ra.body == rb.body
    assert ra.headers == rb.headers
    assert b"q=same" in ra.body


def test_php_cgi_fork_mode_with_children(spawn, php_cgi, tmp, sock):
    page = tmp / "index.php"
    page.write_text("<?php echo getmypid(), ' ', getenv('PHP_FCGI_CHILDREN');")
    r = spawn.run("-s", sock, "-C", "2", "--", php_cgi)
    assert r.returncode == 0, r
    pids = spawned_pids(r.stdout)
    assert len(pids) == 1, r
    wait_for_socket(sock)
    resp = harness.fcgi_request(sock, script=page)
    pid, children = resp.text.split()
    assert children == "2"
    # php-cgi's master forks 2 workers; the answer comes from one of them.
    def workers():
        return [p for p in harness.descendants()
                if (harness._proc_stat(p) or (0,))[0] == pids[0]]
    harness.wait_until(lambda: len(workers()) == 2, what="2 php workers")
    assert len(workers()) == 2
    assert int(pid) in workers()


def test_nginx_to_spawn_fcgi_socket(spawn, app, sock, nginx):
    start_no_fork(spawn, sock, app)
    web = nginx(f"unix:{sock}")
    code, body = harness.curl(web.url + "/some/page?via=nginx")
    assert code == 200, web.error_log()
    st = parse_state(body)
    assert st["query_string"] == "via=nginx"
    assert st["script_filename"] == "/some/page"
    assert st["startup_fd0_address"] == str(sock)


def test_nginx_php_through_socket_owned_by_www_data(spawn, php_cgi, tmp, sock,
                                                    nginx, root_only):
    """The usual deployment: nginx workers as www-data reach a socket that
    spawn-fcgi gave to www-data with -U/-G and mode 0660."""
    docroot = tmp / "www"
    docroot.mkdir()
    os.chmod(docroot, 0o755)
    (docroot / "hello.php").write_text(PHP_PAGE)
    os.chmod(docroot / "hello.php", 0o644)
    s = spawn.start("-n", "-s", sock, "-U", "www-data", "-G", "www-data",
                    "-M", "0660", "--", php_cgi)
    wait_for_socket(sock, proc=s)
    st = os.lstat(sock)
    assert (st.st_uid, st.st_gid) == (33, 33)
    assert stat.S_IMODE(st.st_mode) == 0o660
    web = nginx(f"unix:{sock}", root=docroot, user="www-data")
    code, body = harness.curl(web.url + "/hello.php?q=nginx")
    assert code == 200, web.error_log()
    assert body == b"php says hello\nsapi=cgi-fcgi\nq=nginx\nsum=42\n"


# ---------------------------------------------------------------------------
# fork mode: several children, PID file


def test_four_children_share_one_socket(spawn, app, tmp, sock):
    mdir = tmp / "markers"
    mdir.mkdir()
    pidfile = tmp / "app.pid"
    r = spawn.run("-s", sock, "-F", "4", "-P", pidfile, "--", app,
                  "--marker-dir", mdir, umask=0o022)
    assert r.returncode == 0, r
    pids = spawned_pids(r.stdout)
    assert len(pids) == 4 and len(set(pids)) == 4, r
    assert len(r.stdout_lines) == 4, r

    running = harness.app_pids(app)
    assert sorted(running) == sorted(pids)
    inodes = {harness.socket_inode(harness.fd_target(p, 0)) for p in pids}
    assert len(inodes) == 1 and None not in inodes, inodes
    assert harness.unix_listener_inodes(sock) == list(inodes)
    assert sorted(int(p.name) for p in mdir.iterdir()) == sorted(pids)

    # PID file: 1.6 format (pids joined by newlines), mode 0644
    content = pidfile.read_text()
    assert sorted(int(x) for x in content.split("\n")) == sorted(pids)
    assert content == "\n".join(str(p) for p in pids)
    assert stat.S_IMODE(os.stat(pidfile).st_mode) == 0o644

    st = query_state(sock)
    assert int(st["pid"]) in pids
    for p in pids:
        assert harness.pid_alive(p)


def test_pid_file_same_format_as_peer(spawn, peer, app, tmp):
    ours, theirs = tmp / "ours.pid", tmp / "peer.pid"
    ra = spawn.run("-s", tmp / "a.sock", "-F", "3", "-P", ours, "--", app)
    rb = peer.run("-s", tmp / "b.sock", "-F", "3", "-P", theirs, "--", app)
    assert ra.returncode == rb.returncode == 0, (str(ra), str(rb))
    fmt = lambda text, pids: text.replace(  # noqa: E731
        "\n".join(map(str, pids)), "PIDS")
    assert fmt(ours.read_text(), spawned_pids(ra.stdout)) == \
        fmt(theirs.read_text(), spawned_pids(rb.stdout))
    assert stat.S_IMODE(os.stat(ours).st_mode) == \
        stat.S_IMODE(os.stat(theirs).st_mode)


def test_pid_file_with_no_fork_names_the_app(spawn, app, tmp, sock):
    """1.6 ignores -P with -n; spawn-fcgi 2 writes the pid of the process
    that becomes the application."""
    pidfile = tmp / "app.pid"
    s = start_no_fork(spawn, sock, app, opts=("-P", pidfile))
    st = query_state(sock)
    assert int(st["pid"]) == s.pid
    assert pidfile.read_text() == str(s.pid)


# ---------------------------------------------------------------------------
# PHP_FCGI_CHILDREN


def test_php_children_sets_variable(spawn, app, sock):
    start_no_fork(spawn, sock, app, opts=("-C", "3"))
    env = state_env(query_state(sock))
    assert env.get("PHP_FCGI_CHILDREN") == "3"


def test_no_php_children_without_option(spawn, app, sock):
    start_no_fork(spawn, sock, app)
    env = state_env(query_state(sock))
    assert "PHP_FCGI_CHILDREN" not in env
    assert env.get("PATH") == harness.base_env()["PATH"]


def test_php_children_in_fork_mode(spawn, app, sock):
    r = spawn.run("-s", sock, "-C", "5", "-F", "2", "--", app)
    assert r.returncode == 0, r
    assert len(spawned_pids(r.stdout)) == 2
    env = state_env(query_state(sock))
    assert env.get("PHP_FCGI_CHILDREN") == "5"


# ---------------------------------------------------------------------------
# deprecated -f


def test_deprecated_f_runs_through_shell(spawn, app, sock, marker):
    s = spawn.start("-n", "-s", sock, "-f", f"{app} --marker {marker}")
    wait_for_socket(sock, proc=s)
    st = query_state(sock)
    # /bin/sh -c "exec PATH": the shell is replaced by the app, same pid.
    assert int(st["pid"]) == s.pid
    assert marker.read_text().strip() == str(s.pid)
    assert st["arg"] == [app, "--marker", str(marker)]


def test_deprecated_f_fork_mode(spawn, app, sock, marker):
    r = spawn.run("-s", sock, "-f", f"{app} --marker {marker}")
    assert r.returncode == 0, r
    pids = spawned_pids(r.stdout)
    assert len(pids) == 1, r
    st = query_state(sock)
    assert int(st["pid"]) == pids[0]


def test_deprecated_f_ignored_when_app_follows(spawn, app, sock, tmp):
    never = tmp / "never"
    s = spawn.start("-n", "-s", sock, "-f", f"/usr/bin/touch {never}",
                    "--", app)
    wait_for_socket(sock, proc=s)
    st = query_state(sock)
    assert st["arg"] == [app]
    assert not never.exists()
