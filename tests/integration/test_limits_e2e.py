"""`-l` end to end, as root: limits.conf and limits.d files in a fixture
/etc/security (bound over the real one in a private mount namespace, with
the fixture users of harness.FakeEtc) or given with --limits-file and
--limits-dir, and what the running application really gets: its rlimits
(as it reports them and as /proc/PID/limits shows them), its priority
and no_new_privs.

These machines lack CAP_SYS_RESOURCE even as root, so limits that must
work are lowered; raising a hard limit is the error path.

Every spawn-fcgi starts from the same known limits (START, all of them
lower than the usual defaults, so setting them needs no privilege).  They
avoid the core size: sudo 1.9 starts commands with a hard core limit of
0, which only CAP_SYS_RESOURCE could raise again.
"""

import os
import re
import resource
import shutil
import signal

import pytest

from harness import (app_pids, assert_one_error_line, query_state,
                     spawned_pids, state_rlimit, wait_for_socket, wait_until)

WEBUSER = 1500
LOOKUP, PRIVILEGE, CHILD_FAILED = 3, 5, 1

SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
MIB = 1024 * 1024

START = {
    "nofile": (1024, 4096),
    "fsize": (16 * MIB, 16 * MIB),
    "nproc": (4000, 4000),
}
# RLIMIT_* numbers of Linux (Python's resource module lacks some).
RESOURCES = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5,
    "nproc": 6, "nofile": 7, "memlock": 8, "as": 9, "locks": 10,
    "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
}
# /proc/PID/limits row names
PROC_NAMES = {
    "cpu": "Max cpu time", "fsize": "Max file size", "data": "Max data size",
    "stack": "Max stack size", "core": "Max core file size",
    "rss": "Max resident set", "nproc": "Max processes",
    "nofile": "Max open files", "memlock": "Max locked memory",
    "as": "Max address space", "locks": "Max file locks",
    "sigpending": "Max pending signals", "msgqueue": "Max msgqueue size",
    "nice": "Max nice priority", "rtprio": "Max realtime priority",
    "rttime": "Max realtime timeout",
}

# The files of most tests: each line lowers something, and the losing
# lines of the precedence rules (docs/limits-conf.md, rules 14-16) would
# give other values.
LIMITS_CONF = """\
# fixture limits.conf
webuser hard nofile 512
* hard nofile 700
@staff2 soft fsize 100
* soft fsize 50
* - nproc 200
webuser - priority 5
"""
LIMITS_D = {"50-nnp.conf": "* - nonewprivs 1\n"}
# What they give webuser (soft, hard); every other resource is unchanged.
EXPECTED = {
    "nofile": (512, 512),          # user line, soft lowered to hard
    "fsize": (100 * 1024, 16 * MIB),  # @staff2 beats *
    "nproc": (200, 200),
}


@pytest.fixture(autouse=True)
def start_limits_reachable():
    """START only lowers limits; say so clearly on a machine where it
    would have to raise one."""
    for name, (_, hard) in START.items():
        have = resource.getrlimit(RESOURCES[name])[1]
        if have != resource.RLIM_INFINITY and have < hard:
            pytest.fail(f"this test needs a hard {name} limit of at least "
                        f"{hard} (it is {have})", pytrace=False)


def set_start_limits():
    for name, value in START.items():
        resource.setrlimit(RESOURCES[name], value)


def none_if_unlimited(v):
    return None if v == resource.RLIM_INFINITY else v


def start_limits():
    """Every resource as spawn-fcgi starts with it: START, the others as
    this process has them (they are inherited)."""
    out = {}
    for name, res in RESOURCES.items():
        soft, hard = START.get(name) or resource.getrlimit(res)
        out[name] = (none_if_unlimited(soft), none_if_unlimited(hard))
    return out


def expected_limits(changes):
    want = start_limits()
    want.update(changes)
    return want


def proc_limits(pid):
    """{name: (soft, hard)} from /proc/PID/limits, None for unlimited."""
    rows = {}
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            m = re.match(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
            if m:
                rows[m.group(1)] = tuple(
                    None if v == "unlimited" else int(v)
                    for v in m.group(2, 3))
    return {name: rows[PROC_NAMES[name]] for name in RESOURCES}


def proc_nice(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return int(data[data.rfind(")") + 2:].split()[16])


def proc_no_new_privs(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NoNewPrivs:"):
                return int(line.split()[1])
    raise AssertionError("no NoNewPrivs line")


def state_limits(st):
    return {name: state_rlimit(st, name) for name in RESOURCES}


def assert_app_limits(st, changes, priority=0, no_new_privs=0):
    """The application's own report and /proc agree with the files."""
    want = expected_limits(changes)
    assert state_limits(st) == want
    assert int(st["priority"]) == priority
    assert int(st["no_new_privs"]) == no_new_privs
    assert_proc_limits(int(st["pid"]), changes, priority, no_new_privs)


def assert_proc_limits(pid, changes, priority=0, no_new_privs=0):
    assert proc_limits(pid) == expected_limits(changes)
    assert proc_nice(pid) == priority
    assert proc_no_new_privs(pid) == no_new_privs


@pytest.fixture
def security(fake_etc):
    """An empty fixture /etc/security (limits.conf and limits.d/) that
    fake_etc.wrap binds over the real one."""
    return fake_etc.with_security(copy_real=False)


def write_files(security, conf=LIMITS_CONF, d=None):
    (security / "limits.conf").write_text(conf)
    for name, text in (LIMITS_D if d is None else d).items():
        (security / "limits.d" / name).write_text(text)


class Run:
    """spawn-fcgi with the private /etc and the START limits."""

    def __init__(self, spawn, fake_etc, app, sock):
        self.spawn, self.fake_etc, self.app, self.sock = \
            spawn, fake_etc, app, sock

    def _kw(self, kw):
        kw.setdefault("wrap", self.fake_etc.wrap)
        kw.setdefault("preexec", set_start_limits)
        return kw

    def no_fork(self, *opts, app_args=(), **kw):
        s = self.spawn.start("-n", "-s", self.sock, *opts, "--", self.app,
                             *app_args, **self._kw(kw))
        wait_for_socket(self.sock, proc=s)
        return s

    def run(self, *args, **kw):
        return self.spawn.run(*args, **self._kw(kw))

    def run_error(self, *args, **kw):
        return self.spawn.run_error(*args, **self._kw(kw))

    def start(self, *args, **kw):
        return self.spawn.start(*args, **self._kw(kw))


@pytest.fixture
def limited(spawn, fake_etc, app, sock):
    return Run(spawn, fake_etc, app, sock)


# ---------------------------------------------------------------------------
# lowering: what the files say is what the application has


def test_limits_applied_no_fork(limited, security, sock):
    write_files(security)
    s = limited.no_fork("-l", "-u", "webuser")
    st = query_state(sock)
    assert int(st["pid"]) == s.pid
    assert st["uid"] == str(WEBUSER)
    assert_app_limits(st, EXPECTED, priority=5, no_new_privs=1)


def test_limits_not_applied_without_l(limited, security, sock):
    """The same files without -l change nothing."""
    write_files(security)
    limited.no_fork("-u", "webuser")
    assert_app_limits(query_state(sock), {})


def test_limits_applied_in_every_fork_mode_child(limited, security, sock,
                                                 app):
    write_files(security)
    r = limited.run("-l", "-s", sock, "-F", "2", "-u", "webuser", "--", app)
    assert r.returncode == 0, r
    pids = spawned_pids(r.stdout)
    assert len(set(pids)) == 2, r
    for pid in pids:
        assert_proc_limits(pid, EXPECTED, priority=5, no_new_privs=1)
    st = query_state(sock)
    assert int(st["pid"]) in pids
    assert_app_limits(st, EXPECTED, priority=5, no_new_privs=1)


def test_limits_applied_in_every_supervised_child(limited, security, sock,
                                                  app):
    write_files(security)
    s = limited.start("-w", "-F", "2", "-l", "-s", sock, "-u", "webuser",
                      "--", app)
    wait_for_socket(sock, proc=s)
    pids = wait_until(lambda: len(app_pids(app)) == 2 and app_pids(app),
                      what="2 supervised children")
    for pid in pids:
        assert_proc_limits(pid, EXPECTED, priority=5, no_new_privs=1)
    # The supervisor keeps its own limits.
    assert_proc_limits(s.pid, {})
    assert_app_limits(query_state(sock), EXPECTED, priority=5,
                      no_new_privs=1)
    os.kill(s.pid, signal.SIGTERM)
    assert s.wait() == 0, s.describe()


def test_limits_d_files_in_byte_order(limited, security, sock):
    """limits.d/*.conf after limits.conf, in byte order (10 < 9, B < a);
    other names are not read."""
    write_files(security, conf="* - nproc 300\n", d={
        "9.conf": "* - nproc 250\n",
        "10.conf": "* - nproc 260\n",     # read before 9.conf
        "B.conf": "* hard nofile 900\n",
        "a.conf": "* hard nofile 800\n",  # read after B.conf
        "z.txt": "* - nproc 100\n",
        ".hidden.conf": "* - nproc 100\n",
        "z.conf~": "* - nproc 100\n",
    })
    (security / "limits.d" / "dir.conf").mkdir()
    (security / "limits.d" / "dangling.conf").symlink_to("nowhere")
    limited.no_fork("-l", "-u", "webuser")
    assert_app_limits(query_state(sock), {"nproc": (250, 250),
                                          "nofile": (800, 800)})


@pytest.mark.parametrize("with_stop", [True, False],
                         ids=["no-limits-line", "control"])
def test_no_limits_line_disables_everything(limited, security, sock,
                                            with_stop):
    """`webuser -` anywhere (here in the last file) applies nothing, not
    even the lines read before it."""
    d = dict(LIMITS_D)
    if with_stop:
        d["90-stop.conf"] = "webuser -\n* - nproc 100\n"
    write_files(security, d=d)
    limited.no_fork("-l", "-u", "webuser")
    st = query_state(sock)
    if with_stop:
        assert_app_limits(st, {})
    else:
        assert_app_limits(st, EXPECTED, priority=5, no_new_privs=1)


# ---------------------------------------------------------------------------
# --limits-file, --limits-dir


@pytest.fixture
def poisoned(security):
    """Fixture /etc/security files that must not be read: they would
    lower nofile to 300 and nproc to 100."""
    write_files(security, conf="* hard nofile 300\n",
                d={"a.conf": "* - nproc 100\n"})
    return security


def test_limits_file_alone_reads_no_directory(limited, poisoned, tmp, sock):
    f = tmp / "my-limits.conf"
    f.write_text("webuser hard nofile 512\n")
    limited.no_fork("-l", "--limits-file", f, "-u", "webuser")
    assert_app_limits(query_state(sock), {"nofile": (512, 512)})


def test_limits_file_and_dir(limited, poisoned, tmp, sock):
    f = tmp / "my-limits.conf"
    f.write_text("webuser hard nofile 512\n")
    d = tmp / "my-limits.d"
    d.mkdir()
    (d / "x.conf").write_text("@staff2 - nproc 200\n")
    limited.no_fork("-l", "--limits-file", f, "--limits-dir", d,
                    "-u", "webuser")
    assert_app_limits(query_state(sock), {"nofile": (512, 512),
                                          "nproc": (200, 200)})


def test_limits_dir_alone_keeps_the_default_file(limited, poisoned, tmp,
                                                 sock):
    d = tmp / "my-limits.d"
    d.mkdir()
    (d / "x.conf").write_text("* - nproc 200\n")
    limited.no_fork("-l", "--limits-dir", d, "-u", "webuser")
    assert_app_limits(query_state(sock), {"nofile": (300, 300),
                                          "nproc": (200, 200)})


def test_missing_explicit_limits_file(limited, security, tmp, sock, app,
                                      app_marker):
    missing = tmp / "no-such-limits.conf"
    r = limited.run_error("-n", "-l", "--limits-file", missing, "-s", sock,
                          "-u", "webuser", "--", app, "--marker", app_marker)
    assert r.returncode == LOOKUP, r
    assert_one_error_line(r, str(missing))
    assert not app_marker.exists()
    assert not os.path.lexists(sock)


# ---------------------------------------------------------------------------
# raising a hard limit: a clear error, or a warning when asked


RAISE_CONF = """\
* - nproc 200
# raising: more than the hard limit of START
webuser hard nofile 8000
"""


def assert_raise_error(r, conf):
    """One error line naming the resource, the wanted and current hard
    values and the line that asked for it."""
    assert_one_error_line(r, "nofile", "8000", str(START["nofile"][1]),
                          f"{conf}:3")


@pytest.mark.parametrize("mode", ["no-fork", "fork", "supervise"])
def test_raising_hard_limit_is_an_error(limited, security, sock, app,
                                        app_marker, mode):
    write_files(security, conf=RAISE_CONF, d={})
    opts = {"no-fork": ["-n"], "fork": ["-F", "2"],
            "supervise": ["-w", "-F", "2", "--restart-retries=0"]}[mode]
    r = limited.run_error(*opts, "-l", "-s", sock, "-u", "webuser", "--", app,
                          "--marker", app_marker)
    # No-fork: the limits step's own status.  With children: a child that
    # failed to start.
    want = PRIVILEGE if mode == "no-fork" else CHILD_FAILED
    assert r.returncode == want, r
    lines = [line for line in r.stderr_lines if "nofile" in line]
    assert lines, r
    for line in lines:
        for needle in ("8000", str(START["nofile"][1]),
                       "/etc/security/limits.conf:3"):
            assert needle in line, r
    if mode == "no-fork":
        assert_raise_error(r, "/etc/security/limits.conf")
    assert not app_marker.exists(), "the application was started"
    assert app_pids(app) == []
    assert spawned_pids(r.stdout) == []
    assert not os.path.lexists(sock), "the socket was left behind"


def test_raising_names_explicit_file(limited, tmp, sock, app, app_marker,
                                     fake_etc):
    f = tmp / "raise.conf"
    f.write_text(RAISE_CONF)
    r = limited.run_error("-n", "-l", "--limits-file", f, "-s", sock, "-u",
                          "webuser", "--", app, "--marker", app_marker)
    assert r.returncode == PRIVILEGE, r
    assert_raise_error(r, f)
    assert not app_marker.exists()
    assert not os.path.lexists(sock)


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_raising_with_ignore_errors_warns_and_runs(limited, security, sock,
                                                   app, app_marker, fork):
    write_files(security, conf=RAISE_CONF, d={})
    args = (["-n"] if not fork else ["-F", "1"]) + [
        "-l", "--limits-ignore-errors", "-s", sock, "-u", "webuser", "--",
        app, "--marker", app_marker]
    if fork:
        r = limited.run(*args)
        assert r.returncode == 0, r
        stderr = r.stderr
    else:
        s = limited.start(*args)
        # The socket listens before the limits are applied: the
        # application's marker says the warning has been written.
        wait_until(app_marker.exists, what="the application's marker")
        stderr = s.stderr
    warnings = [line for line in stderr.splitlines() if "nofile" in line]
    assert len(warnings) == 1, stderr
    assert warnings[0].lower().startswith("spawn-fcgi: warning"), stderr
    for needle in ("8000", str(START["nofile"][1]),
                   "/etc/security/limits.conf:3"):
        assert needle in warnings[0], stderr
    st = query_state(sock)
    assert wait_until(app_marker.exists, what="the marker")
    # nofile stays as it was, the other line still applies.
    assert_app_limits(st, {"nproc": (200, 200)})


# ---------------------------------------------------------------------------
# unreadable files


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_symlink_loop_in_limits_d_is_fatal(limited, security, sock, app,
                                           app_marker, fork):
    """x.conf -> x.conf: ELOOP, which root gets too."""
    write_files(security)
    (security / "limits.d" / "x.conf").symlink_to("x.conf")
    args = ([] if fork else ["-n"]) + ["-l", "-s", sock, "-u", "webuser",
                                       "--", app, "--marker", app_marker]
    r = limited.run_error(*args)
    assert r.returncode == LOOKUP, r
    line = assert_one_error_line(r, "/etc/security/limits.d/x.conf")
    assert "cannot read" in line or "cannot open" in line, r
    assert os.strerror(40) in line, r   # ELOOP
    assert not app_marker.exists()
    assert not os.path.lexists(sock)
    assert spawned_pids(r.stdout) == []


def test_limits_for_uid_without_passwd_entry(limited, security, sock, app,
                                             app_marker):
    write_files(security)
    r = limited.run_error("-n", "-l", "-s", sock, "-u", "4242", "-g", "4243",
                          "--", app, "--marker", app_marker)
    assert r.returncode == LOOKUP, r
    assert_one_error_line(r, "4242", "passwd")
    assert not app_marker.exists()
    assert not os.path.lexists(sock)


# ---------------------------------------------------------------------------
# --explain-limits


EXPLAIN_CONF = """\
webuser hard nofile 512
@staff2 soft fsize 100
* - nproc 200
webuser - priority 5
bogus line
* soft nofiles 3
"""


def explain_rows(text):
    """{resource: row text} of the explain table."""
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in RESOURCES and line.startswith("  "):
            rows[words[0]] = line
    return rows


@pytest.mark.parametrize("as_root", [True, False], ids=["root", "uid-1500"])
def test_explain_limits(spawn, fake_etc, tmp, sock, app, app_marker,
                        as_root):
    f = tmp / "limits.conf"
    f.write_text(EXPLAIN_CONF)
    d = tmp / "limits.d"
    d.mkdir()
    (d / "a.conf").write_text("* - nonewprivs 1\n")
    if as_root:
        wrap = fake_etc.wrap
    else:
        def wrap(argv):
            return fake_etc.wrap([SETPRIV, "--reuid=1500", "--regid=1500",
                                  "--clear-groups"] + list(argv))
    r = spawn.run("--explain-limits", "--limits-file", f, "--limits-dir", d,
                  "-u", "webuser", "-s", sock, "--", app, "--marker",
                  app_marker, wrap=wrap, preexec=set_start_limits)
    assert r.returncode == 0, r
    out = r.stdout
    assert "webuser" in out.splitlines()[0] and "1500" in out.splitlines()[0]
    rows = explain_rows(out)
    assert set(rows) == set(RESOURCES), out
    assert re.search(rf"\b512\b.*\b512\b.*{re.escape(str(f))}:1\b",
                     rows["nofile"]), out
    assert re.search(rf"\b102400\b.*{re.escape(str(f))}:2\b",
                     rows["fsize"]), out
    assert re.search(rf"\b200\b.*\b200\b.*{re.escape(str(f))}:3\b",
                     rows["nproc"]), out
    for name in set(RESOURCES) - {"nofile", "fsize", "nproc"}:
        assert "unchanged" in rows[name], (name, out)
        assert str(f) not in rows[name], (name, out)
    assert re.search(rf"priority\s+5, set by {re.escape(str(f))}:4$", out,
                     re.M), out
    assert re.search(rf"nonewprivs\s+yes, set by "
                     rf"{re.escape(str(d / 'a.conf'))}:1$", out, re.M), out
    # Skipped lines, each with file:line and a reason.
    lines = out.splitlines()
    head = [i for i, line in enumerate(lines)
            if line.startswith("Skipped lines")]
    assert len(head) == 1 and lines[head[0]] == "Skipped lines (2):", out
    skipped = [line.strip() for line in lines[head[0] + 1:] if line.strip()]
    assert len(skipped) == 2, out
    for number, line in zip(("5", "6"), skipped):
        where, _, reason = line.partition(": ")
        assert where == f"{f}:{number}" and reason, out
    assert "nofiles" in skipped[1], out
    # Nothing was started.
    assert not app_marker.exists()
    assert not os.path.lexists(sock)
    assert app_pids(app) == []


def test_explain_limits_no_limits_line(spawn, fake_etc, tmp):
    f = tmp / "limits.conf"
    f.write_text("* - nproc 200\nwebuser -\n* - nofile 100\n")
    r = spawn.run("--explain-limits", "--limits-file", f, "-u", "webuser",
                  wrap=fake_etc.wrap, preexec=set_start_limits)
    assert r.returncode == 0, r
    assert re.search(rf"^No limits: {re.escape(str(f))}:2\b", r.stdout,
                     re.M), r
    rows = explain_rows(r.stdout)
    assert all("unchanged" in row for row in rows.values()), r


def test_explain_limits_unreadable_file(spawn, fake_etc, tmp):
    d = tmp / "limits.d"
    d.mkdir()
    (d / "x.conf").symlink_to("x.conf")
    f = tmp / "limits.conf"
    f.write_text("")
    r = spawn.run_error("--explain-limits", "--limits-file", f,
                        "--limits-dir", d, "-u", "webuser",
                        wrap=fake_etc.wrap)
    assert r.returncode == LOOKUP, r
    assert_one_error_line(r, str(d / "x.conf"))
    assert r.stdout == ""
