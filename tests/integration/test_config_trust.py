"""Files spawn-fcgi believes: the configuration file (--config), the limits
file and the limits.d entries (-l).  Like sshd's StrictModes, each of them
and every directory above it must be owned by root (or the caller) and
writable by nobody else (a sticky directory such as /tmp may hold them);
otherwise the start is refused with one line naming the file and the
reason, and nothing is started.  A configuration value with a NUL byte
and a key given twice are refused too, with file:line.
"""

import os

import pytest

from harness import app_pids, assert_one_error_line

USAGE, LOOKUP = 2, 3


@pytest.fixture
def start(spawn, app, sock, marker):
    """start(*args) -> Result of a fork-mode start of the state app with
    args before the '--'."""
    def run(*args):
        return spawn.run_error("-F", "1", *args, "--", app, "--marker",
                               marker)
    return run


def assert_refused(r, status, sock, marker, app, *needles):
    assert r.returncode == status, r
    line = assert_one_error_line(r, *needles)
    assert not marker.exists(), f"the application was started\n{r}"
    assert not os.path.lexists(sock), f"a socket file was left\n{r}"
    assert app_pids(app) == []
    return line


def write_config(path, sock, extra=b""):
    path.write_bytes(b"[spawn-fcgi]\nsocket=" + str(sock).encode() + b"\n"
                     + extra)
    os.chmod(path, 0o644)
    return path


# ---------------------------------------------------------------------------
# the configuration file


def test_safe_config_is_used(start, tmp, sock, app):
    conf = write_config(tmp / "app.conf", sock)
    r = start("--config", conf)
    assert r.returncode == 0, r


def test_world_writable_config_is_refused(start, tmp, sock, marker, app):
    conf = write_config(tmp / "app.conf", sock)
    os.chmod(conf, 0o666)
    assert_refused(start("--config", conf), USAGE, sock, marker, app,
                   str(conf), "writable")


def test_group_writable_config_is_refused(start, tmp, sock, marker, app):
    conf = write_config(tmp / "app.conf", sock)
    os.chmod(conf, 0o664)
    assert_refused(start("--config", conf), USAGE, sock, marker, app,
                   str(conf), "writable by group")


def test_config_of_another_user_is_refused(start, tmp, sock, marker, app,
                                           root_only):
    conf = write_config(tmp / "app.conf", sock)
    os.chown(conf, 1500, 1500)
    assert_refused(start("--config", conf), USAGE, sock, marker, app,
                   str(conf), "owned by uid 1500")


def test_config_in_a_writable_directory_is_refused(start, tmp, sock, marker,
                                                   app):
    d = tmp / "conf.d"
    d.mkdir()
    os.chmod(d, 0o777)
    conf = write_config(d / "app.conf", sock)
    assert_refused(start("--config", conf), USAGE, sock, marker, app,
                   str(conf), str(d), "writable")


def test_config_in_a_directory_of_another_user_is_refused(start, tmp, sock,
                                                          marker, app,
                                                          root_only):
    d = tmp / "conf.d"
    d.mkdir()
    os.chown(d, 1500, 1500)
    conf = write_config(d / "app.conf", sock)
    assert_refused(start("--config", conf), USAGE, sock, marker, app,
                   str(d), "owned by uid 1500")


def test_config_of_root_in_a_sticky_directory_is_used(start, tmp, sock):
    d = tmp / "sticky"
    d.mkdir()
    os.chmod(d, 0o1777)
    conf = write_config(d / "app.conf", sock)
    r = start("--config", conf)
    assert r.returncode == 0, r


def test_nul_byte_in_a_value_is_refused(start, tmp, sock, marker, app):
    conf = write_config(tmp / "app.conf", sock, b"user=nobody\x00root\n")
    line = assert_refused(start("--config", conf), USAGE, sock, marker, app,
                          "NUL")
    assert f"{conf}:3" in line, line


def test_repeated_key_is_refused(start, tmp, sock, marker, app):
    conf = write_config(tmp / "app.conf", sock,
                        b"# a comment\nsocket=" + str(tmp / "b.sock").encode()
                        + b"\n")
    line = assert_refused(start("--config", conf), USAGE, sock, marker, app,
                          "socket")
    assert f"{conf}:4" in line and "line 2" in line, line
    assert not (tmp / "b.sock").exists()


# ---------------------------------------------------------------------------
# limits files


def limits_args(tmp, file_mode=0o644, dir_mode=0o755):
    f = tmp / "limits.conf"
    f.write_text("* soft nofile 1000\n")
    os.chmod(f, file_mode)
    d = tmp / "limits.d"
    d.mkdir()
    (d / "10-app.conf").write_text("* soft nproc 100\n")
    os.chmod(d / "10-app.conf", 0o644)
    os.chmod(d, dir_mode)
    return ["-l", "--limits-file", str(f), "--limits-dir", str(d)]


def test_safe_limits_files_are_used(start, tmp, sock):
    r = start("-s", sock, *limits_args(tmp))
    assert r.returncode == 0, r


def test_writable_limits_file_is_refused(start, tmp, sock, marker, app):
    args = limits_args(tmp, file_mode=0o666)
    assert_refused(start("-s", sock, *args), LOOKUP, sock, marker, app,
                   str(tmp / "limits.conf"), "writable")


def test_writable_limits_dir_is_refused(start, tmp, sock, marker, app):
    args = limits_args(tmp, dir_mode=0o777)
    assert_refused(start("-s", sock, *args), LOOKUP, sock, marker, app,
                   str(tmp / "limits.d"), "writable")


def test_limits_dir_entry_of_another_user_is_refused(start, tmp, sock,
                                                     marker, app, root_only):
    args = limits_args(tmp)
    os.chown(tmp / "limits.d" / "10-app.conf", 1500, 1500)
    assert_refused(start("-s", sock, *args), LOOKUP, sock, marker, app,
                   "10-app.conf", "owned by uid 1500")
