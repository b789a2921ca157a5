"""--check finds everything the deciding phase can know: what the real run
would refuse, --check refuses with the same status and message.  And the
application is resolved once, to an absolute path, ignoring relative PATH
entries: the file run is never one that happens to lie in the --chdir
directory."""

import os

import pytest

from harness import assert_one_error_line, base_env

USAGE, PRIVILEGE, NOT_FOUND = 2, 5, 127


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("case,status", [
    ("chdir", PRIVILEGE), ("chroot", PRIVILEGE), ("pid-dir", USAGE),
    ("chdir-in-chroot", PRIVILEGE)])
def test_what_the_run_refuses_check_refuses(spawn, app, sock, marker, tmp,
                                            root_only, check, case, status):
    missing = tmp / "missing"
    root = tmp / "root"
    root.mkdir()
    args = {"chdir": ["-d", missing],
            "chroot": ["-c", missing],
            "pid-dir": ["-P", missing / "app.pid"],
            "chdir-in-chroot": ["-c", root, "-d", "/missing"]}[case]
    r = spawn.run_error(*(["--check"] if check else []), "-F", "1",
                        "-s", sock, *args, "--", app, "--marker", marker)
    assert r.returncode == status, r
    assert_one_error_line(r, "missing")
    assert not marker.exists()
    assert not os.path.lexists(sock)


@pytest.fixture
def decoy(tmp):
    """A program 'fcgi-decoy' in the starting directory and another in the
    --chdir directory; each leaves a file saying where it ran."""
    start, work = tmp / "start", tmp / "work"
    for d in (start, work):
        d.mkdir()
        prog = d / "fcgi-decoy"
        prog.write_text(f"#!/bin/sh\ntouch {tmp}/ran-in-{d.name}\n")
        os.chmod(prog, 0o755)
    return start, work


def test_relative_path_entries_are_ignored(spawn, tmp, sock, decoy):
    start, work = decoy
    env = base_env(PATH=".:/usr/bin:/bin")
    r = spawn.run_error("-F", "1", "-s", sock, "-d", work, "--",
                        "fcgi-decoy", env=env, cwd=start)
    assert r.returncode == NOT_FOUND, r
    assert_one_error_line(r, "fcgi-decoy")
    assert "relative" in r.stderr and "'.'" in r.stderr, r
    assert not (tmp / "ran-in-work").exists(), "the --chdir copy ran"
    assert not (tmp / "ran-in-start").exists()


def test_empty_path_entry_is_ignored(spawn, tmp, sock, decoy):
    start, work = decoy
    env = base_env(PATH="/usr/bin::/bin")
    r = spawn.run_error("--check", "-s", sock, "-d", work, "--",
                        "fcgi-decoy", env=env, cwd=start)
    assert r.returncode == NOT_FOUND, r


def test_check_shows_the_absolute_path(spawn, tmp, sock, decoy):
    start, work = decoy
    env = base_env(PATH=f"/usr/bin:{work}")
    r = spawn.run("--check", "-s", sock, "--", "fcgi-decoy", env=env,
                  cwd=start)
    assert r.returncode == 0, r
    assert f"exec: {work}/fcgi-decoy" in r.stdout, r
    r = spawn.run("--check", "-s", sock, "-d", work, "--", "./fcgi-decoy",
                  env=env, cwd=start)
    assert r.returncode == 0, r
    assert f"exec: {work}/fcgi-decoy" in r.stdout, r
