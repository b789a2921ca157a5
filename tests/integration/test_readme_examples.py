"""The README's "Which setup do I want?" examples, run as written.

Each example is the fenced ```sh block that follows a
`<!-- readme-example: NAME -->` line in README.md.  It runs as root in
private mount, PID and network namespaces, where the fixture users of
harness.FakeEtc exist, /run is a fresh tmpfs, the loopback interface is
private, and `spawn-fcgi` on PATH is the one under test.  Real php-cgi
answers real FastCGI requests.

The systemd example writes its configuration under /etc/spawn-fcgi, which
is redirected to a scratch directory, and runs `systemctl enable --now
spawn-fcgi@NAME.socket` against a stand-in that does what systemd does with
the shipped units: it listens on the socket unit's ListenStream= and, at
the first connection, runs the service unit's own ExecStart= line with the
socket passed (systemd-socket-activate).  tests/systemd runs the same units
under a booted systemd.

This file is also the program that runs inside the namespaces:
`python3 test_readme_examples.py --inside SCENARIO WORKDIR` runs one
example there and writes what it saw to WORKDIR/result.json.
"""

import json
import os
import re
import resource
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness

HERE = Path(__file__).resolve().parent
SOURCE_DIR = HERE.parent.parent
README = SOURCE_DIR / "README.md"
EXAMPLES = ["systemd", "runit", "shell", "shell-stop"]

HELLO_PHP = """<?php
echo "hello from php-cgi\\n";
echo "uid=", posix_getuid(), "\\n";
echo "listen_fds=", getenv("LISTEN_FDS") === false ? "unset" : "set", "\\n";
"""


def readme_examples(text):
    """{name: shell text} of the marked examples, in README order."""
    found = {}
    for m in re.finditer(r"^<!-- readme-example: (\S+) -->\n```sh\n(.*?)^```$",
                         text, re.M | re.S):
        assert m.group(1) not in found, f"example {m.group(1)} twice"
        found[m.group(1)] = m.group(2)
    return found


# ---------------------------------------------------------------------------
# inside the namespaces

SYSTEMCTL_STANDIN = r'''#!/usr/bin/python3
"""systemctl enable --now spawn-fcgi@NAME.socket, done the way systemd does
it with the shipped units: listen on ListenStream=, and at the first
connection run the service's ExecStart= with the socket passed."""
import os, shlex, subprocess, sys

UNITS, BINDIR, CONFDIR, LOG = sys.argv[1:5]
args = sys.argv[5:]
if len(args) != 3 or args[:2] != ["enable", "--now"] or \
        not args[2].startswith("spawn-fcgi@") or not args[2].endswith(".socket"):
    sys.exit(f"systemctl stand-in: cannot do {args}")
instance = args[2][len("spawn-fcgi@"):-len(".socket")]


def directives(unit):
    out = {}
    for line in open(os.path.join(UNITS, unit)):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def expand(value):
    return (value.replace("%i", instance).replace("@bindir@", BINDIR)
            .replace("/etc/spawn-fcgi/", CONFDIR + "/"))


sock = directives("spawn-fcgi@.socket")
service = directives("spawn-fcgi@.service")
listen = [expand(v) for v in sock["ListenStream"] if v]
exec_start = shlex.split(expand(service["ExecStart"][-1]))
for path in listen:
    os.makedirs(os.path.dirname(path), mode=int(sock["DirectoryMode"][-1], 8),
                exist_ok=True)
with open(LOG, "ab") as log:
    log.write(("ExecStart: " + shlex.join(exec_start) + "\n").encode())
    log.flush()
    subprocess.Popen(["systemd-socket-activate"] +
                     [f"--listen={p}" for p in listen] + ["--"] + exec_start,
                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     start_new_session=True)
'''


def _proc_status(pid):
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.split()
    except OSError:
        return None
    return fields


def _nofile(pid):
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return line.split()[3:5]
    return None


def _gone(pid):
    st = _proc_status(pid)
    return st is None or st["State"][0] in ("Z", "X")


def _reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _run_script(path, timeout=60):
    p = subprocess.run(["/bin/sh", "-e", str(path)], capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def _request(addr, script):
    harness.wait_for_socket(addr, timeout=20)
    r = harness.fcgi_request_raw(addr, script=script, timeout=20)
    return {"status": r.status, "body": r.text,
            "stderr": r.stderr.decode(errors="replace")}


def inside(scenario, work):
    work = Path(work)
    os.umask(0o022)
    examples = readme_examples(README.read_text())
    script = work / "www" / "hello.php"
    result = {}

    if scenario == "systemd":
        confdir = work / "etc-spawn-fcgi"
        confdir.mkdir(mode=0o755)
        example = work / "example.sh"
        example.write_text(examples["systemd"].replace("/etc/spawn-fcgi/",
                                                       f"{confdir}/"))
        result["example"] = _run_script(example)
        result["config"] = (confdir / "php.conf").read_text()
        result["response"] = _request("/run/spawn-fcgi/php.sock", script)
        # php-cgi answered: spawn-fcgi has exec'd it, so whatever it had to
        # say is in the log already.
        result["service_log"] = (work / "service.log").read_text(errors="replace")

    elif scenario == "runit":
        sv = work / "sv"
        sv.mkdir()
        run = sv / "run"
        run.write_text(examples["runit"])
        run.chmod(0o755)
        # As runsv starts it: ./run in the service directory.
        with open(work / "run.log", "wb") as log:
            proc = subprocess.Popen(["./run"], cwd=sv, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log)
        sock = "/run/php-webuser.sock"
        harness.wait_for_socket(sock, timeout=20)
        result["response"] = _request(sock, script)
        st = os.stat(sock)
        result["socket"] = {"uid": st.st_uid, "gid": st.st_gid,
                            "mode": stat.S_IMODE(st.st_mode)}
        result["pid_exe"] = os.path.realpath(f"/proc/{proc.pid}/exe")
        status = _proc_status(proc.pid)
        result["pid_uid"] = status["Uid"]
        result["pid_gid"] = status["Gid"]
        result["nofile"] = _nofile(proc.pid)
        result["running"] = proc.poll() is None
        result["log"] = (work / "run.log").read_text(errors="replace")

    elif scenario == "shell":
        start = work / "start.sh"
        start.write_text(examples["shell"])
        result["example"] = _run_script(start)
        pidfile = Path("/run/php-fcgi.pid")
        result["pidfile"] = pidfile.read_text() if pidfile.exists() else None
        pids = [int(p) for p in (result["pidfile"] or "").split()]
        result["uids"] = [(_proc_status(p) or {}).get("Uid") for p in pids]
        result["exes"] = [os.path.realpath(f"/proc/{p}/exe") for p in pids]
        result["response"] = _request("127.0.0.1:9000", script)
        stop = work / "stop.sh"
        stop.write_text(examples["shell-stop"])
        result["stop"] = _run_script(stop)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(_gone(p) for p in pids):
            _reap()
            time.sleep(0.05)
        result["left_running"] = [p for p in pids if not _gone(p)]

    else:
        raise SystemExit(f"unknown scenario {scenario}")

    (work / "result.json").write_text(json.dumps(result, indent=1))


# ---------------------------------------------------------------------------
# the tests (pytest)

def test_the_readme_has_the_examples():
    assert list(readme_examples(README.read_text())) == EXAMPLES

def test_the_quick_start_commands_are_there():
    # The two commands a newcomer types, as root, from the checkout.
    text = README.read_text()
    for command in ("scripts/demo", "scripts/test"):
        assert f"\n    {command}\n" in text, command
        assert os.access(SOURCE_DIR / command, os.X_OK), command

@pytest.fixture
def namespace_tools():
    for tool in ("unshare", "mount", "ip", "systemd-socket-activate"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")

def run_example(scenario, fake, tmp, spawn_fcgi_bin):
    """Runs one scenario in fresh namespaces; returns result.json."""
    work = tmp / "work"
    work.mkdir(mode=0o755)
    (work / "www").mkdir(mode=0o755)
    (work / "www" / "hello.php").write_text(HELLO_PHP)
    bindir = work / "bin"
    bindir.mkdir()
    (bindir / "spawn-fcgi").symlink_to(spawn_fcgi_bin)
    standin = work / "systemctl-standin"
    standin.write_text(SYSTEMCTL_STANDIN)
    standin.chmod(0o755)
    (bindir / "systemctl").write_text(
        "#!/bin/sh\nexec {} {} {} {} {} \"$@\"\n".format(
            *(shlex.quote(str(a)) for a in (
                standin, SOURCE_DIR / "units", bindir,
                work / "etc-spawn-fcgi", work / "service.log"))))
    (bindir / "systemctl").chmod(0o755)

    binds = [(fake.passwd, "/etc/passwd"), (fake.group, "/etc/group")]
    if fake.security is not None:
        binds.append((fake.security, "/etc/security"))
    driver = work / "driver.sh"
    driver.write_text("\n".join([
        "set -e",
        "ip link set lo up",
        *(f"mount --bind {shlex.quote(str(s))} {d}" for s, d in binds),
        "mount -t tmpfs -o mode=0755 tmpfs /run",
        f"export PATH={shlex.quote(str(bindir))}:/usr/local/sbin:"
        "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "export LANG=C.UTF-8",
        f"cd {shlex.quote(str(work))}",
        f"exec {shlex.quote(sys.executable)} {shlex.quote(__file__)} "
        f"--inside {scenario} {shlex.quote(str(work))}",
    ]) + "\n")
    p = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--pid",
         "--fork", "--mount-proc", "--net", "--", "/bin/sh", str(driver)],
        capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    assert p.returncode == 0, (
        f"{scenario} failed in the namespace ({p.returncode}):\n"
        f"{p.stdout}\n{p.stderr}\n"
        + "\n".join(f"--- {f.name}:\n{f.read_text(errors='replace')}"
                    for f in work.glob("*.log")))
    return json.loads((work / "result.json").read_text())

def assert_php_answered(response, uid):
    assert response["status"] == 200, response
    assert "hello from php-cgi" in response["body"], response
    assert f"uid={uid}\n" in response["body"], response
    assert "listen_fds=unset" in response["body"], response

def test_systemd_example(fake_etc, tmp, php_cgi, spawn_fcgi_bin,
                         namespace_tools):
    r = run_example("systemd", fake_etc, tmp, spawn_fcgi_bin)
    assert r["example"]["rc"] == 0, r["example"]
    assert r["config"].startswith("[spawn-fcgi]\n"), r["config"]
    www_uid, _ = harness.user_in(fake_etc, "www-data")
    assert_php_answered(r["response"], www_uid)
    log = r["service_log"]
    assert re.search(r"ExecStart: \S*/spawn-fcgi --no-fork "
                     r"--config=\S*/etc-spawn-fcgi/php\.conf\n", log), log
    assert "spawn-fcgi:" not in log, log     # no warning, no error

def test_runit_example(fake_etc, tmp, php_cgi, spawn_fcgi_bin,
                       namespace_tools):
    # -l: webuser gets the nofile limit of a limits.d file.
    security = fake_etc.with_security(copy_real=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = min(soft, hard, 4096) - 7
    (security / "limits.d" / "webuser.conf").write_text(
        f"webuser - nofile {nofile}\n")
    r = run_example("runit", fake_etc, tmp, spawn_fcgi_bin)
    uid, gid = harness.user_in(fake_etc, "webuser")
    www_uid, www_gid = harness.user_in(fake_etc, "www-data")
    assert_php_answered(r["response"], uid)
    # -n: the process the supervisor started is php-cgi itself.
    assert r["pid_exe"] == os.path.realpath(php_cgi), r
    assert r["running"], r
    assert r["pid_uid"] == [str(uid)] * 4, r
    assert r["pid_gid"] == [str(gid)] * 4, r
    assert r["socket"] == {"uid": www_uid, "gid": www_gid, "mode": 0o640}, r
    assert r["nofile"] == [str(nofile), str(nofile)], r
    assert "warning" not in r["log"], r["log"]

def test_shell_example(fake_etc, tmp, php_cgi, spawn_fcgi_bin,
                       namespace_tools):
    r = run_example("shell", fake_etc, tmp, spawn_fcgi_bin)
    uid, _ = harness.user_in(fake_etc, "webuser")
    assert r["example"]["rc"] == 0, r["example"]
    assert r["example"]["stderr"] == "", r["example"]
    pids = [int(p) for p in r["pidfile"].split()]
    assert len(pids) == 2, r
    assert r["example"]["stdout"].splitlines() == [
        f"spawn-fcgi: child spawned successfully: PID: {p}" for p in pids]
    assert r["uids"] == [[str(uid)] * 4] * 2, r
    assert r["exes"] == [os.path.realpath(php_cgi)] * 2, r
    assert_php_answered(r["response"], uid)
    assert r["stop"]["rc"] == 0, r["stop"]
    assert r["left_running"] == [], r


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--inside":
        inside(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"usage: {sys.argv[0]} --inside SCENARIO WORKDIR")
