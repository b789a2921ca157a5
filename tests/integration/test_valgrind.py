"""spawn-fcgi under valgrind memcheck on its main paths: no memory errors
and no definite leaks.

Each run uses --error-exitcode=99 (errors and definite leaks make the exit
status 99) and -q with a log file per process (%p): in quiet mode valgrind
writes only errors and leak records, so every log must be empty.  That also
catches errors in a process that ends in exec (no-fork mode, fork-mode
children), where no exit status of valgrind's is seen.  GLib runs with
G_SLICE=always-malloc and G_DEBUG=gc-friendly so that its allocator does
not hide leaks.
"""

import os
import shutil
import signal

import pytest

import harness
from harness import query_state, wait_for_socket

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
LEAKED = 99

pytestmark = pytest.mark.skipif(not os.access(VALGRIND, os.X_OK),
                                reason="valgrind not installed")


def built_with_asan(path):
    """AddressSanitizer and valgrind cannot run together."""
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()

# valgrind is slow, and the machine may be loaded: a guard, not a check.
TIMEOUT = 240


@pytest.fixture
def memcheck(spawn_fcgi_bin, procs, tmp):
    if built_with_asan(spawn_fcgi_bin):
        pytest.skip("spawn-fcgi is built with AddressSanitizer, which does "
                    "not run under valgrind (the ASan build checks memory "
                    "itself)")
    return Memcheck(spawn_fcgi_bin, procs, tmp)


class Memcheck:
    def __init__(self, binary, procs, tmp):
        self.binary = binary
        self.procs = procs
        self.logdir = tmp / "valgrind"
        self.logdir.mkdir()

    def argv(self, args):
        return [VALGRIND, "-q", "--tool=memcheck", "--leak-check=full",
                "--show-leak-kinds=definite",
                "--errors-for-leak-kinds=definite",
                f"--error-exitcode={LEAKED}", "--trace-children=no",
                "--child-silent-after-fork=no",
                f"--log-file={self.logdir}/vg.%p.log",
                self.binary] + [str(a) for a in args]

    def env(self, extra=None):
        env = harness.base_env(G_SLICE="always-malloc",
                               G_DEBUG="gc-friendly")
        env.update(extra or {})
        return env

    def run(self, *args, extra_env=None, **kw):
        return self.procs.run(self.argv(args), env=self.env(extra_env),
                              timeout=TIMEOUT, **kw)

    def start(self, *args, **kw):
        return self.procs.start(self.argv(args), env=self.env(), **kw)

    def assert_clean(self, result=None):
        logs = sorted(self.logdir.iterdir())
        assert logs, "valgrind wrote no log: did it run?"
        for log in logs:
            text = log.read_text(errors="replace")
            assert text.strip() == "", f"{log.name}:\n{text}\n{result or ''}"


def test_help(memcheck):
    r = memcheck.run("--help")
    assert r.returncode == 0, r
    assert "Usage: spawn-fcgi" in r.stdout
    memcheck.assert_clean(r)


def test_version(memcheck):
    r = memcheck.run("--version")
    assert r.returncode == 0, r
    memcheck.assert_clean(r)


def test_bad_option(memcheck):
    r = memcheck.run("--no-such-option", "--", "/bin/true")
    assert r.returncode == 2, r
    memcheck.assert_clean(r)


def test_bad_value(memcheck, tmp):
    r = memcheck.run("-s", tmp / "s", "-p", "9000", "-F", "0", "--",
                     "/bin/true")
    assert r.returncode == 2, r
    memcheck.assert_clean(r)


def test_check_text_and_json(memcheck, tmp):
    for fmt in ("--check", "--check=json"):
        r = memcheck.run(fmt, "-s", tmp / "s", "-C", "4", "-F", "2",
                         "--", "/bin/true", "arg")
        assert r.returncode == 0, r
        assert not (tmp / "s").exists(), "--check created the socket"
    memcheck.assert_clean(r)


def test_check_with_config_file_and_limits(memcheck, tmp):
    conf = tmp / "spawn-fcgi.conf"
    conf.write_text("[spawn-fcgi]\nsocket=%s\nfork=3\n"
                    "environment=A=1;B=two\nexec=/bin/true --flag 'two words'\n"
                    % (tmp / "s"))
    limits = tmp / "limits.conf"
    limits.write_text("* soft nofile 512\nroot soft core 0\n"
                      "root - priority 5\nbad line here\n")
    r = memcheck.run("--config", conf, "-l", "--limits-file", limits,
                     "--check")
    assert r.returncode == 0, r
    memcheck.assert_clean(r)


def test_explain_limits(memcheck, tmp):
    limits = tmp / "limits.conf"
    limits.write_text("root hard nofile 4096\n@root soft nproc 100\n")
    r = memcheck.run("--explain-limits", "--limits-file", limits)
    assert r.returncode == 0, r
    memcheck.assert_clean(r)


def test_missing_application(memcheck, tmp):
    r = memcheck.run("-n", "-s", tmp / "s", "--", tmp / "nonexistent")
    assert r.returncode == 127, r
    assert not (tmp / "s").exists()
    memcheck.assert_clean(r)


def test_socket_error(memcheck, tmp):
    r = memcheck.run("-n", "-s", tmp / "missing-dir" / "s", "--", "/bin/true")
    assert r.returncode == 4, r
    memcheck.assert_clean(r)


def test_no_fork_exec_on_unix_socket(memcheck, tmp):
    """spawn-fcgi runs under valgrind until it execs /bin/true natively."""
    sock = tmp / "s"
    r = memcheck.run("-n", "-s", sock, "-C", "2", "--", "/bin/true")
    assert r.returncode == 0, r
    memcheck.assert_clean(r)


def test_no_fork_exec_on_tcp_socket(memcheck):
    port = harness.free_port()
    r = memcheck.run("-n", "-a", "127.0.0.1", "-p", port, "--", "/bin/true")
    assert r.returncode == 0, r
    memcheck.assert_clean(r)


def test_fork_mode(memcheck, app, tmp):
    sock = tmp / "s"
    pid_file = tmp / "pids"
    r = memcheck.run("-s", sock, "-F", "2", "-P", pid_file, "--", app)
    assert r.returncode == 0, r
    pids = harness.spawned_pids(r.stdout)
    assert len(pids) == 2, r
    assert int(query_state(sock)["pid"]) in pids
    memcheck.assert_clean(r)


def test_fork_mode_child_fails(memcheck, tmp):
    """The failure path of fork mode: the children cannot exec their
    application (executable, but no program the kernel can run).  A child
    that exits right after exec would be caught only if valgrind let
    spawn-fcgi see it within the start's grace period; a failed exec is
    reported through the start pipe, however slow the machine."""
    junk = tmp / "not-a-program"
    junk.write_bytes(b"\x00not a program\n")
    junk.chmod(0o755)
    r = memcheck.run("-s", tmp / "s", "-F", "2", "--", junk)
    assert r.returncode == 1, r
    assert "children failed to start" in r.stderr, r
    assert not (tmp / "s").exists(), r
    memcheck.assert_clean(r)


def test_supervise_start_reload_stop(memcheck, app, tmp):
    sock = tmp / "s"
    s = memcheck.start("-w", "-s", sock, "-F", "2", "--", app)
    wait_for_socket(sock, proc=s)
    query_state(sock)
    os.kill(s.pid, signal.SIGHUP)
    query_state(sock)
    os.kill(s.pid, signal.SIGTERM)
    r = s.result(timeout=TIMEOUT)
    assert r.returncode == 0, r
    memcheck.assert_clean(r)


def test_valgrind_catches_a_leak(memcheck, tmp):
    """The set-up can fail: a program that leaks is reported."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the leaking program")
    src = tmp / "leak.c"
    src.write_text("#include <stdlib.h>\n#include <string.h>\n"
                   "int main(void) { char *p = malloc(64); memset(p, 1, 64);"
                   " p = 0; return p != 0; }\n")
    exe = tmp / "leak"
    harness.subprocess.run([cc, "-O0", "-o", exe, src], check=True)
    memcheck.binary = str(exe)
    r = memcheck.run()
    assert r.returncode == LEAKED, r
    with pytest.raises(AssertionError):
        memcheck.assert_clean(r)
