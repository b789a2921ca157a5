"""Bad input: every mistake a user can make on the command line is refused
with its documented exit status and one 'spawn-fcgi: ' line on stderr, and
nothing is started (no marker, no app process) or left behind (no socket
file, no PID file)."""

import os

import pytest

import harness
from harness import assert_one_error_line

USAGE, LOOKUP, SOCKET, PRIVILEGE = 2, 3, 4, 5
NOT_EXECUTABLE, NOT_FOUND = 126, 127


@pytest.fixture
def refused(spawn, app, sock, marker, tmp):
    """refused(args, status, *needles): run spawn-fcgi with args (the
    strings SOCK, APP, MARKER, PIDFILE are replaced by paths in tmp), check
    the exit status, the single error line containing the needles, and
    that nothing ran or was left behind.  Returns the error line."""
    pidfile = tmp / "app.pid"
    subst = {"SOCK": str(sock), "APP": app, "MARKER": str(marker),
             "PIDFILE": str(pidfile)}

    def check(args, status, *needles):
        argv = [subst.get(str(a), a) for a in args]
        before = sorted(p.name for p in tmp.iterdir())
        r = spawn.run_error(*argv)
        assert r.returncode == status, r
        line = assert_one_error_line(r, *needles)
        assert r.stdout == "", f"nothing belongs on stdout\n{r}"
        assert not marker.exists(), f"the application was started\n{r}"
        assert not os.path.lexists(sock), f"a socket file was left\n{r}"
        assert not pidfile.exists(), f"a PID file was left\n{r}"
        after = sorted(p.name for p in tmp.iterdir()
                       if not p.name.startswith("."))
        assert after == [n for n in before if not n.startswith(".")], r
        assert harness.app_pids(app) == [], "an application process runs"
        return line
    return check


APP_ARGS = ["--", "APP", "--marker", "MARKER"]


# ---------------------------------------------------------------------------
# options


@pytest.mark.parametrize("opt", ["-z", "-X", "--bogus", "--socket-path"])
def test_unknown_option(refused, opt):
    refused(["-s", "SOCK", opt] + APP_ARGS, USAGE, opt)


def test_unknown_option_prints_no_help(spawn, app):
    r = spawn.run_error("--bogus", "--", app)
    assert r.returncode == USAGE, r
    assert r.stdout == ""
    assert len(r.stderr_lines) <= 2, r


@pytest.mark.parametrize("args,needle", [
    (["-n", "-s"], "-s"),
    (["-n", "--socket"], "--socket"),
    (["-s", "SOCK", "-M"], "-M"),
    (["-a", "127.0.0.1", "-p"], "-p"),
    (["-s", "SOCK", "-F"], "-F"),
    (["-s", "SOCK", "-u"], "-u"),
])
def test_missing_option_argument(refused, args, needle):
    refused(args, USAGE, needle)


def test_no_application(refused):
    refused(["-n", "-s", "SOCK"], USAGE)


def test_socket_and_port_exclude_each_other(refused):
    port = harness.free_port()
    refused(["-s", "SOCK", "-p", port] + APP_ARGS, USAGE, "-s", "-p")
    assert not harness.can_connect(f"127.0.0.1:{port}")


def test_socket_and_port_exclude_each_other_in_any_order(refused):
    port = harness.free_port()
    refused(["-p", port, "-a", "127.0.0.1", "-s", "SOCK"] + APP_ARGS, USAGE)


@pytest.mark.parametrize("port", ["0", "65536", "70000", "abc", "-1", "80x",
                                  "99999999999999999999"])
def test_bad_port(refused, port):
    refused(["-n", "-a", "127.0.0.1", "-p", port] + APP_ARGS, USAGE, port)


def test_port_that_1_6_wraps_does_not_listen(spawn, app, marker):
    """1.6 turns -p 70000 into 4464; nothing may listen there now."""
    wrapped = 70000 % 65536
    busy = harness.can_connect(f"127.0.0.1:{wrapped}")
    r = spawn.run_error("-n", "-a", "127.0.0.1", "-p", "70000", "--", app,
                        "--marker", marker)
    assert r.returncode == USAGE, r
    assert not marker.exists()
    if not busy:
        assert not harness.can_connect(f"127.0.0.1:{wrapped}")


@pytest.mark.parametrize("mode", ["999", "abc", "10000", "8", "0x1ff", "-1",
                                  "rw-rw----"])
def test_bad_mode(refused, mode):
    refused(["-n", "-s", "SOCK", "-M", mode] + APP_ARGS, USAGE, mode)


@pytest.mark.parametrize("n", ["0", "-1", "abc", "2x", "99999999999999999999"])
def test_bad_fork_count(refused, n):
    refused(["-s", "SOCK", "-F", n] + APP_ARGS, USAGE, n)


@pytest.mark.parametrize("n", ["-1", "abc", "16k", "99999999999999999999"])
def test_bad_backlog(refused, n):
    refused(["-n", "-s", "SOCK", "-b", n] + APP_ARGS, USAGE, n)


@pytest.mark.parametrize("n", ["-1", "abc", "99999999999999999999"])
def test_bad_php_children(refused, n):
    refused(["-n", "-s", "SOCK", "-C", n] + APP_ARGS, USAGE, n)


def test_option_given_twice(refused, tmp):
    refused(["-n", "-s", "SOCK", "-s", str(tmp / "other.sock")] + APP_ARGS,
            USAGE, "-s")
    assert not (tmp / "other.sock").exists()


@pytest.mark.parametrize("opt", ["-s", "-a", "-u", "-c", "-d", "-P"])
def test_empty_value(refused, opt):
    args = ["-n", "-s", "SOCK"] if opt != "-s" else ["-n"]
    if opt == "-a":
        args = ["-n", "-p", str(harness.free_port())]
    refused(args + [opt, ""] + APP_ARGS, USAGE, opt)


def test_pid_file_not_written_on_usage_error(refused):
    refused(["-s", "SOCK", "-F", "0", "-P", "PIDFILE"] + APP_ARGS, USAGE)


def test_bad_address(refused):
    port = harness.free_port()
    refused(["-n", "-a", "999.1.1.1", "-p", port] + APP_ARGS, USAGE,
            "999.1.1.1")


def test_unresolvable_host_name(refused):
    port = harness.free_port()
    name = "no-such-host.invalid"
    # "an address that cannot be resolved" is a usage error (man page,
    # EXIT STATUS), whatever the resolver's reason (.invalid never exists).
    refused(["-n", "-a", name, "-p", port] + APP_ARGS, USAGE, name)


# ---------------------------------------------------------------------------
# users and groups (root only: for others these options do nothing useful)


@pytest.mark.parametrize("opt,name", [
    ("-u", "no-such-user-x"), ("-g", "no-such-group-x"),
    ("-U", "no-such-user-x"), ("-G", "no-such-group-x")])
def test_unknown_user_or_group(refused, root_only, opt, name):
    args = ["-n", "-s", "SOCK"]
    if opt in ("-g", "-U", "-G"):
        args += ["-u", "nobody"]
    refused(args + [opt, name] + APP_ARGS, LOOKUP, name)


def test_unknown_user_in_fork_mode(refused, root_only):
    refused(["-s", "SOCK", "-F", "2", "-u", "no-such-user-x", "-P", "PIDFILE"]
            + APP_ARGS, LOOKUP, "no-such-user-x")


def test_unknown_fixture_user_in_private_etc(spawn, app, sock, marker,
                                             fake_etc):
    """The private /etc works: webuser is known there, ghost is not."""
    r = spawn.run_error("-n", "-s", sock, "-u", "ghost", "--", app,
                        "--marker", marker, wrap=fake_etc.wrap)
    assert r.returncode == LOOKUP, r
    assert_one_error_line(r, "ghost")
    assert not marker.exists()
    s = spawn.start("-n", "-s", sock, "-u", "webuser", "--", app,
                    wrap=fake_etc.wrap)
    harness.wait_for_socket(sock, proc=s)
    st = harness.query_state(sock)
    assert (st["uid"], st["gid"]) == ("1500", "1500")


@pytest.mark.parametrize("user", ["root", "0"])
def test_root_as_target_user_is_refused(refused, root_only, user):
    line = refused(["-n", "-s", "SOCK", "-u", user] + APP_ARGS, USAGE)
    assert "root" in line.lower() or "uid 0" in line.lower(), line


# ---------------------------------------------------------------------------
# the application


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_missing_application(refused, tmp, fork):
    missing = str(tmp / "no-such-app")
    args = ([] if fork else ["-n"]) + ["-s", "SOCK", "--", missing]
    refused(args, NOT_FOUND, missing)


def test_missing_application_in_path(refused):
    refused(["-n", "-s", "SOCK", "--", "no-such-app-in-path-x"], NOT_FOUND,
            "no-such-app-in-path-x")


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_application_not_executable(refused, tmp, fork):
    script = tmp / "not-exec.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    os.chmod(script, 0o644)
    args = ([] if fork else ["-n"]) + ["-s", "SOCK", "--", str(script)]
    refused(args, NOT_EXECUTABLE, str(script))
    assert script.read_text() == "#!/bin/sh\necho hi\n"


def test_application_is_a_directory(refused, tmp):
    d = tmp / "a-dir"
    d.mkdir()
    refused(["-n", "-s", "SOCK", "--", str(d)], NOT_EXECUTABLE, str(d))


# ---------------------------------------------------------------------------
# the privileged phase


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_chroot_to_missing_directory(refused, root_only, tmp, fork):
    missing = str(tmp / "no-such-root")
    args = ([] if fork else ["-n"]) + ["-s", "SOCK", "-c", missing]
    refused(args + APP_ARGS, PRIVILEGE, missing)


def test_chroot_to_missing_directory_with_socket_before(refused, root_only,
                                                        tmp):
    """With -S the socket exists before the chroot fails; it must be
    removed again."""
    missing = str(tmp / "no-such-root")
    refused(["-n", "-s", "SOCK", "-S", "-c", missing] + APP_ARGS, PRIVILEGE,
            missing)


def test_chdir_to_missing_directory(refused, tmp):
    missing = str(tmp / "no-such-dir")
    refused(["-n", "-s", "SOCK", "-d", missing] + APP_ARGS, PRIVILEGE,
            missing)
