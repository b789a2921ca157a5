"""pytest fixtures for the spawn-fcgi integration tests (see harness.py)."""

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from skip_policy import (pytest_runtest_logreport,  # noqa: E402,F401
                         pytest_runtest_makereport, pytest_sessionfinish)

import harness
from harness import ProcessTracker, base_env


_reachable_dir = None


def pytest_configure(config):
    # Orphans (fork-mode children call setsid and their parent exits) are
    # re-parented to us, so teardown can always find and kill them.
    harness.become_subreaper()
    # The programs under test, where the dropped-privilege users of the
    # tests can execute them (a checkout in a 0700 home is out of reach).
    global _reachable_dir
    _reachable_dir = harness.short_tmpdir("sf-bin-")
    harness.SPAWN_FCGI = harness.reachable_copy(harness.SPAWN_FCGI,
                                                _reachable_dir)
    harness.FCGI_STATE_APP = harness.reachable_copy(harness.FCGI_STATE_APP,
                                                    _reachable_dir)


def pytest_unconfigure(config):
    if _reachable_dir is not None:
        shutil.rmtree(_reachable_dir, ignore_errors=True)


def _executable(var, path):
    if not path:
        pytest.fail(f"{var} is not set (run the tests through meson test)",
                    pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{var}={path} is not an executable file", pytrace=False)
    return path


@pytest.fixture
def spawn_fcgi_bin():
    """Path of the spawn-fcgi under test ($SPAWN_FCGI)."""
    return _executable("SPAWN_FCGI", harness.SPAWN_FCGI)


@pytest.fixture
def app():
    """Path of the FastCGI state application ($FCGI_STATE_APP)."""
    return _executable("FCGI_STATE_APP", harness.FCGI_STATE_APP)


@pytest.fixture
def peer_bin():
    """Debian's spawn-fcgi 1.6.4 ($PEER_SPAWN_FCGI)."""
    if not os.access(harness.PEER_SPAWN_FCGI, os.X_OK):
        pytest.skip(f"peer {harness.PEER_SPAWN_FCGI} not installed "
                    "(apt-get install spawn-fcgi)")
    return harness.PEER_SPAWN_FCGI


@pytest.fixture
def tmp():
    """A fresh short-path directory (mode 0755), removed after the test."""
    d = harness.short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs(tmp):
    """A ProcessTracker; every descendant is killed at teardown."""
    tracker = ProcessTracker(tmp)
    yield tracker
    tracker.cleanup()


class Spawner:
    """Runs one spawn-fcgi binary with a clean environment.

    run(*args)   -> harness.Result (waits for exit)
    run_error(*args) -> the same, for commands expected to fail at once
    start(*args) -> harness.Started (background, e.g. for -n)
    Keyword arguments: env (dict, default base_env()), extra_env (merged into
    it), pass_fds, cwd, timeout (run only), umask (default 0o022), wrap (a
    function mapping the argv to the real one, e.g. FakeEtc.wrap).
    """

    def __init__(self, binary, procs):
        self.binary = binary
        self.procs = procs

    def _prepare(self, args, env, extra_env, umask, wrap, preexec):
        argv = [self.binary] + [str(a) for a in args]
        if wrap is not None:
            argv = wrap(argv)
        e = dict(base_env() if env is None else env)
        if extra_env:
            e.update({k: str(v) for k, v in extra_env.items()})

        def pre():
            if umask is not None:
                os.umask(umask)
            if preexec is not None:
                preexec()
        return argv, e, pre

    def run(self, *args, env=None, extra_env=None, umask=0o022, wrap=None,
            preexec=None, timeout=harness.DEFAULT_TIMEOUT, **kw):
        argv, e, pre = self._prepare(args, env, extra_env, umask, wrap,
                                     preexec)
        return self.procs.run(argv, env=e, timeout=timeout,
                              preexec_fn=pre, **kw)

    def run_error(self, *args, **kw):
        """run() for a command expected to fail at once: a shorter guard
        against a hang (not a speed check)."""
        kw.setdefault("timeout", harness.ERROR_TIMEOUT)
        return self.run(*args, **kw)

    def start(self, *args, env=None, extra_env=None, umask=0o022, wrap=None,
              preexec=None, **kw):
        argv, e, pre = self._prepare(args, env, extra_env, umask, wrap,
                                     preexec)
        return self.procs.start(argv, env=e, preexec_fn=pre, **kw)


@pytest.fixture
def spawn(spawn_fcgi_bin, procs):
    """Spawner for the spawn-fcgi under test."""
    return Spawner(spawn_fcgi_bin, procs)


@pytest.fixture
def peer(peer_bin, procs):
    """Spawner for Debian's spawn-fcgi 1.6.4."""
    return Spawner(peer_bin, procs)


@pytest.fixture
def sock(tmp):
    """A unix socket path in the temp dir (nothing there yet)."""
    return tmp / "app.sock"


@pytest.fixture
def marker(tmp):
    """A path the state app writes its pid to with --marker."""
    return tmp / "marker"


@pytest.fixture
def app_marker(tmp):
    """A marker path that the application can create as webuser (in a
    directory of mode 1777)."""
    d = tmp / "m"
    d.mkdir()
    os.chmod(d, 0o1777)
    return d / "marker"


@pytest.fixture
def root_only():
    """Skip the test, saying why, when not running as root."""
    if not harness.is_root():
        pytest.skip("needs root (privilege changes, chroot, mount "
                    "namespaces); CI runs the suite as root")


@pytest.fixture
def fake_etc(tmp, root_only):
    """harness.FakeEtc with the fixture users; use fake_etc.wrap(argv) (or
    Spawner's wrap=fake_etc.wrap) to run a command with them. Users:
    webuser 1500:1500 (also in staff2 1600 and www-data 33), sockowner
    1501:1501 (in sockgrp 1700), plus everything in the real files."""
    return harness.FakeEtc(tmp / "etc")


@pytest.fixture
def nginx(procs, tmp):
    """Factory: nginx(fastcgi_pass, root="/", user=None) -> harness.Nginx
    listening on 127.0.0.1:<free port>, config and logs under tmp/nginx."""
    made = []

    def make(fastcgi_pass, root="/", user=None):
        n = harness.Nginx(procs, tmp / f"nginx{len(made) or ''}",
                          fastcgi_pass, root=root, user=user)
        made.append(n)
        return n
    return make


@pytest.fixture
def ipv6():
    """Skip when the machine has no IPv6 loopback."""
    if not harness.has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")


@pytest.fixture
def php_cgi():
    if not os.access(harness.PHP_CGI, os.X_OK):
        pytest.skip(f"{harness.PHP_CGI} not installed (php8.2-cgi)")
    return harness.PHP_CGI


def pytest_report_header(config):
    return [f"SPAWN_FCGI={harness.SPAWN_FCGI}",
            f"FCGI_STATE_APP={harness.FCGI_STATE_APP}",
            f"PEER_SPAWN_FCGI={harness.PEER_SPAWN_FCGI}",
            f"uid={os.geteuid()}"]
