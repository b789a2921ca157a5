"""Real FastCGI applications under the supervisor, behind a real nginx:
php-cgi, fcgiwrap running a CGI script, a Go net/http/fcgi program and a
Perl FCGI script (tests/app/sleep-app.go, tests/app/sleep-app.pl).

Each answers requests under `spawn-fcgi -w -F 4`, and a SIGHUP reload while
16 concurrent requests that sleep are in flight fails none of them, three
times in a row.  fcgiwrap aborts a running CGI on any signal, so this holds
only when an old child is retired once it holds no accepted connection
(issue 13); a supervisor that sends the stop signal to busy children loses
fcgiwrap's requests.

Every response is counted.  The reload is seen through the supervisor's
READY=1 (NOTIFY_SOCKET) and /proc, the requests in flight through the
connections the children hold (/proc/net/unix); nothing waits for time."""

import os
import re
import shutil
import signal
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import harness
from harness import wait_until
from test_supervise import Notify, app_children, pids_gone, terminate, \
    wait_children

CHILDREN = 4
CONCURRENT = 16
RELOADS = 3
SLEEP_MS = 500
# Old children are given all the time they need: a busy child is never
# to be stopped, whatever the timeout.
STOP_TIMEOUT = 120

FCGIWRAP = "/usr/sbin/fcgiwrap"
PERL = "/usr/bin/perl"
GO_SLEEP_APP = os.environ.get("GO_SLEEP_APP", "")
PERL_SLEEP_APP = os.environ.get("PERL_SLEEP_APP", "")

APP_DIR = Path(__file__).resolve().parent.parent / "app"

SLEPT_RE = re.compile(rb"slept (\d+) ms in (\d+)\n")


@dataclass
class App:
    """How to run one application: its command line, the executable its
    children run (for /proc), the page to ask for, the options and the
    environment it needs."""
    argv: list
    exe: str
    page: str
    opts: list = field(default_factory=list)
    env: dict = field(default_factory=dict)


def _need(path, what):
    if not path:
        pytest.fail(f"{what} is not set (run the tests through meson test)",
                    pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not installed or not executable ({what})",
                    pytrace=False)


def make_app(name, www):
    if name == "php-cgi":
        _need(harness.PHP_CGI, "php8.2-cgi")
        shutil.copy(APP_DIR / "sleep.php", www)
        # php-cgi's own recycling is not what is tested here.
        return App([harness.PHP_CGI], harness.PHP_CGI, "sleep.php",
                   env={"PHP_FCGI_MAX_REQUESTS": "0"})
    if name == "fcgiwrap":
        _need(FCGIWRAP, "fcgiwrap")
        shutil.copy(APP_DIR / "sleep.cgi", www)
        return App([FCGIWRAP], FCGIWRAP, "sleep.cgi")
    if name == "go":
        _need(GO_SLEEP_APP, "GO_SLEEP_APP (golang-go at meson setup)")
        return App([GO_SLEEP_APP], GO_SLEEP_APP, "sleep")
    if name == "perl":
        _need(PERL, "perl")
        if not PERL_SLEEP_APP or not os.path.isfile(PERL_SLEEP_APP):
            pytest.fail(f"PERL_SLEEP_APP={PERL_SLEEP_APP!r} is not a file "
                        "(run the tests through meson test)", pytrace=False)
        # Perl FCGI scripts conventionally stop on SIGUSR1.
        return App([PERL, PERL_SLEEP_APP], PERL, "sleep",
                   opts=["--stop-signal", "USR1"])
    raise KeyError(name)


APPS = ["php-cgi", "fcgiwrap", "go", "perl"]


@pytest.fixture
def notify(tmp):
    n = Notify(tmp / "notify")
    yield n
    n.close()


@pytest.fixture
def www(tmp):
    d = tmp / "www"
    d.mkdir()
    return d


def start_pool(spawn, sock, app, notify):
    sv = spawn.start("-w", "-F", CHILDREN, "-s", sock, "--stop-timeout",
                     STOP_TIMEOUT, *app.opts, "--", *app.argv,
                     extra_env={**app.env, "NOTIFY_SOCKET": notify.path})
    notify.wait_for("READY", "1", proc=sv)
    wait_children(sv, app.exe, CHILDREN)
    return sv


def get(url):
    """(status, body) of one GET; (None, the error) when it broke."""
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return None, repr(e).encode()


def answered(status, body, ms):
    m = SLEPT_RE.fullmatch(body)
    return status == 200 and m is not None and int(m.group(1)) == ms


class Batch:
    """n concurrent GETs of url, each in its own thread; join() returns
    every (status, body)."""

    def __init__(self, url, n):
        self.results = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._one, args=(url,),
                                         daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _one(self, url):
        r = get(url)
        with self._lock:
            self.results.append(r)

    def join(self, timeout=180):
        for t in self.threads:
            t.join(timeout=timeout)
        with self._lock:
            return list(self.results)


def accepted_inodes(sock):
    """Inodes of the connections accepted from the unix socket at sock: the
    connected sockets that carry its path in /proc/net/unix (one still
    waiting in the accept queue has inode 0)."""
    found = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            p = line.split()
            if len(p) >= 8 and p[7] == str(sock) and p[5] == "03" \
                    and p[6] != "0":
                found.add(int(p[6]))
    return found


def connections_held(pids, sock):
    """How many connections accepted from sock the processes pids hold."""
    inodes = accepted_inodes(sock)
    held = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            ino = harness.socket_inode(harness.fd_target(pid, int(fd)) or "")
            if ino in inodes:
                held.add(ino)
    return len(held)


@pytest.mark.parametrize("name", APPS)
def test_application_answers_behind_nginx(spawn, sock, www, nginx, notify,
                                          name):
    app = make_app(name, www)
    sv = start_pool(spawn, sock, app, notify)
    kids = wait_children(sv, app.exe, CHILDREN)
    web = nginx(f"unix:{sock}", root=www)
    for ms in (0, 20):
        status, body = get(f"{web.url}/{app.page}?ms={ms}")
        assert answered(status, body, ms), (status, body, web.error_log())
    # fcgiwrap's answer names the fcgiwrap child that ran the CGI.
    assert int(SLEPT_RE.fullmatch(body).group(2)) in kids
    assert terminate(sv) == 0, sv.describe()
    assert pids_gone(kids)


@pytest.mark.parametrize("name", APPS)
def test_reload_with_requests_in_flight_fails_none(spawn, sock, www, nginx,
                                                   notify, name):
    app = make_app(name, www)
    sv = start_pool(spawn, sock, app, notify)
    web = nginx(f"unix:{sock}", root=www)
    url = f"{web.url}/{app.page}?ms={SLEEP_MS}"
    results = []
    readies = 1
    for _ in range(RELOADS):
        old = wait_children(sv, app.exe, CHILDREN)
        batch = Batch(url, CONCURRENT)
        # In flight: the old children hold accepted connections (a
        # single-threaded application one each, the others wait in the
        # socket's queue).
        wait_until(lambda: connections_held(old, sock) >= CHILDREN,
                   timeout=60, what="requests in flight in the old children")
        sv.proc.send_signal(signal.SIGHUP)
        readies += 1
        notify.wait_for("READY", "1", count=readies, timeout=STOP_TIMEOUT,
                        proc=sv)
        results += batch.join()
        new = wait_children(sv, app.exe, CHILDREN, exclude=old)
        wait_until(lambda: pids_gone(old), what="the old children gone")
        assert sv.poll() is None, sv.describe()
    bad = [r for r in results if not answered(*r, SLEEP_MS)]
    assert len(results) == RELOADS * CONCURRENT, results
    assert bad == [], (f"{len(bad)} of {len(results)} requests failed",
                       bad[:5], web.error_log()[-2000:], sv.stderr[-2000:])
    # Old and new children answered, and the last set is the new one.
    served = {int(SLEPT_RE.fullmatch(b).group(2)) for _, b in results}
    assert served, results
    assert app_children(sv.pid, app.exe) == new
    assert terminate(sv) == 0, sv.describe()

