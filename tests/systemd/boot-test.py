"""spawn-fcgi@.socket and spawn-fcgi@.service, and their supervised
variants spawn-fcgi-supervise@.socket and .service, under a booted systemd.

A Debian bookworm root (made once with debootstrap and cached outside the
source tree) is copied for each run, our build is installed into the copy
together with two instance configurations (one for each pair of units), a
dedicated user, a limits.d file, an nginx server for each instance and a
PHP page, and the copy is booted with `systemd-nspawn --boot`.  The tests
then look at the real thing from the outside: what nginx answers, the
socket files, the unit states and properties, the processes, the journal.

The Debian package is tested in a second copy of the root, the way an
admin installs it: Debian's spawn-fcgi 1.6.4 is installed there (it is
part of the cached root), the copy is booted, and `apt install
./spawn-fcgi_*.deb` upgrades it; then the packaged units serve a PHP page
through nginx, and `man spawn-fcgi`, the bash completion and `systemctl
status` work.  The package is built from a copy of the tree
(scripts/build-deb, with lintian) unless SPAWN_FCGI_DEB names one.

Environment:
  SPAWN_FCGI_SOURCE_DIR   source tree (default: two levels up from here)
  SPAWN_FCGI_BUILD_DIR    a build dir configured with --prefix=/usr
                          --sysconfdir=/etc to install from; without it (or
                          when it is configured otherwise) the test
                          configures and builds its own.
  SPAWN_FCGI_TEST_CACHE   where the debootstrapped roots are kept
                          (default /var/cache/spawn-fcgi-tests)
  SPAWN_FCGI_DEBIAN_MIRROR  mirror for debootstrap (default: its own)
  SPAWN_FCGI_KEEP_ROOT=1  keep the copied root after the run (for debugging)
  SPAWN_FCGI_DEB          a built spawn-fcgi_*.deb to install instead of
                          building one

Run as root: `meson test -C BUILD --suite systemd` or
`python3 -m pytest -v tests/systemd/boot-test.py`.
"""

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SPAWN_FCGI_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
CACHE_DIR = os.environ.get("SPAWN_FCGI_TEST_CACHE") or "/var/cache/spawn-fcgi-tests"
MIRROR = os.environ.get("SPAWN_FCGI_DEBIAN_MIRROR") or ""

SUITE = "bookworm"
PACKAGES = sorted([
    "bash-completion",
    "ca-certificates",
    "curl",
    "dbus",
    "libglib2.0-0",
    "man-db",
    "nginx-light",
    "php8.2-cgi",
    "procps",
    # Debian's 1.6.4, which the package test upgrades (the other container
    # removes it before our build is installed)
    "spawn-fcgi",
    "systemd",
    "systemd-sysv",
])
# Bump when the way the cached root is made changes.
CACHE_FORMAT = 1

APP_USER = "phpapp"
NOFILE_SOFT = 321
NOFILE_HARD = 654
INSTANCE = "php"
SOCKET_PATH = f"/run/spawn-fcgi/{INSTANCE}.sock"
SERVICE = f"spawn-fcgi@{INSTANCE}.service"
SOCKET_UNIT = f"spawn-fcgi@{INSTANCE}.socket"
URL = "http://localhost/"
# The supervised instance (spawn-fcgi --supervise, Type=notify), behind its
# own nginx server.
SV_INSTANCE = "phpsv"
SV_CHILDREN = 3
SV_SOCKET_PATH = f"/run/spawn-fcgi/{SV_INSTANCE}.sock"
SV_SERVICE = f"spawn-fcgi-supervise@{SV_INSTANCE}.service"
SV_SOCKET_UNIT = f"spawn-fcgi-supervise@{SV_INSTANCE}.socket"
SV_URL = "http://localhost:8081/"
# A supervised instance with --pm=ondemand: no child until a connection
# waits, back to none after the idle timeout.
OD_INSTANCE = "phpod"
OD_SOCKET_PATH = f"/run/spawn-fcgi/{OD_INSTANCE}.sock"
OD_SERVICE = f"spawn-fcgi-supervise@{OD_INSTANCE}.service"
OD_SOCKET_UNIT = f"spawn-fcgi-supervise@{OD_INSTANCE}.socket"
OD_URL = "http://localhost:8082/"

# Upper bounds so that a hung step fails the test instead of hanging it.
DEBOOTSTRAP_TIMEOUT = 900
BUILD_TIMEOUT = 600
BOOT_TIMEOUT = 300
COMMAND_TIMEOUT = 120
SHUTDOWN_TIMEOUT = 90

CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "SYSTEMD_PAGER": "cat",
    "SYSTEMD_COLORS": "0",
    "TERM": "dumb",
}


def log(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Writing into the container root from the host
# ---------------------------------------------------------------------------

def host_path(root, path, replace_symlink=False):
    """The host path of PATH inside ROOT, refusing to go through symlinks.

    An absolute symlink inside the root points at the host's file when it is
    followed from the host.  Relative links (Debian's /lib -> usr/lib) are
    fine as long as they stay inside the root.  A symlink as the last
    component is removed when replace_symlink is set, refused otherwise."""
    assert path.startswith("/"), path
    parts = [p for p in path.split("/") if p]
    cur = root
    for i, part in enumerate(parts):
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(st.st_mode):
            continue
        target = os.readlink(cur)
        last = i == len(parts) - 1
        if last and replace_symlink:
            os.unlink(cur)
            continue
        if target.startswith("/"):
            raise AssertionError(f"{path} in the container root goes through the "
                                 f"absolute symlink {cur} -> {target}")
    real_root = os.path.realpath(root)
    real = os.path.realpath(cur)
    if real != real_root and not real.startswith(real_root + "/"):
        raise AssertionError(f"{path} resolves outside the container root: {real}")
    return cur


def write_file(root, path, content, mode=0o644):
    dest = host_path(root, path, replace_symlink=True)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(dest, mode)


def remove_file(root, path):
    dest = host_path(root, path, replace_symlink=True)
    if os.path.lexists(dest):
        os.unlink(dest)


def read_file(root, path):
    with open(host_path(root, path)) as f:
        return f.read()


# Child processes running now, and what to undo if a signal ends the run
# (meson sends SIGTERM on timeout): stop the container, remove copies.
_running = set()
_undo = []


def run(cmd, timeout=COMMAND_TIMEOUT, check=True, env=None):
    log("$ " + " ".join(shlex.quote(str(c)) for c in cmd))
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    _running.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        raise AssertionError(f"{cmd[0]} did not finish within {timeout} s\n"
                             f"stdout:\n{out}\nstderr:\n{err}")
    finally:
        _running.discard(p)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd[0]} exited with {p.returncode}\n"
                             f"stdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def _on_signal(signum, frame):
    # meson follows its SIGTERM with a SIGKILL to the process group half a
    # second later: clean up in a child of our own session, quietly.
    if os.fork() != 0:
        os._exit(128 + signum)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    for p in list(_running):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone([p.pid for p in _running], 10)
    _running.clear()
    for undo in reversed(_undo):
        try:
            undo(hurry=True)
        except Exception:           # keep going: undo as much as possible
            pass
    os._exit(0)


# ---------------------------------------------------------------------------
# The cached Debian root
# ---------------------------------------------------------------------------

def cache_key():
    desc = json.dumps({"suite": SUITE, "variant": "minbase", "packages": PACKAGES,
                       "format": CACHE_FORMAT}, sort_keys=True)
    return hashlib.sha256(desc.encode()).hexdigest()[:16]


def unmount_under(path):
    """Unmount what an interrupted debootstrap left mounted below PATH
    (/proc, /sys, device nodes), deepest first, before removing it."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    points = [p.replace("\\040", " ") for p in points]
    for mp in sorted((p for p in points if p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mp], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def remove_tree(path):
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)


def cached_root():
    """The path of a pristine debootstrapped root, made on first use.

    Nothing ever writes into it after it is complete: every run works on a
    copy.  A lock serialises concurrent first runs."""
    os.makedirs(CACHE_DIR, mode=0o755, exist_ok=True)
    entry = os.path.join(CACHE_DIR, f"{SUITE}-{cache_key()}")
    root = os.path.join(entry, "root")
    stamp = os.path.join(entry, "complete")
    with open(os.path.join(CACHE_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(stamp):
            log(f"reusing cached root {root}")
            return root
        # Left by an interrupted build (we hold the lock: nobody builds now).
        for d in os.listdir(CACHE_DIR):
            if d.startswith(f".{SUITE}-"):
                remove_tree(os.path.join(CACHE_DIR, d))
        if os.path.exists(entry):
            remove_tree(entry)
        tmp = tempfile.mkdtemp(prefix=f".{SUITE}-{cache_key()}.", dir=CACHE_DIR)
        undo = lambda hurry=False: remove_tree(tmp)
        _undo.append(undo)
        try:
            cmd = ["debootstrap", "--variant=minbase",
                   "--include=" + ",".join(PACKAGES), SUITE, os.path.join(tmp, "root")]
            if MIRROR:
                cmd.append(MIRROR)
            log(f"building the Debian root in {tmp} (debootstrap, about a minute)")
            t0 = time.monotonic()
            p = run(cmd, timeout=DEBOOTSTRAP_TIMEOUT, check=False)
            if p.returncode != 0:
                raise AssertionError(
                    f"debootstrap failed with {p.returncode}; it needs the Debian "
                    f"mirror (set SPAWN_FCGI_DEBIAN_MIRROR to use another one)\n"
                    f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
            log(f"debootstrap took {time.monotonic() - t0:.0f} s")
            with open(os.path.join(tmp, "packages"), "w") as f:
                f.write("\n".join(PACKAGES) + "\n")
            with open(os.path.join(tmp, "complete"), "w") as f:
                f.write(f"{SUITE} {' '.join(PACKAGES)}\n")
            os.rename(tmp, entry)
        except BaseException:
            remove_tree(tmp)
            raise
        finally:
            _undo.remove(undo)
    return root


# ---------------------------------------------------------------------------
# Our build
# ---------------------------------------------------------------------------

def meson_cmd():
    meson = shutil.which("meson")
    if meson:
        return [meson]
    return [sys.executable, "-m", "mesonbuild.mesonmain"]


def build_options(build_dir):
    info = os.path.join(build_dir, "meson-info", "intro-buildoptions.json")
    try:
        with open(info) as f:
            return {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError):
        return {}


def install_build(workdir, root):
    """DESTDIR-install a build configured for /usr and /etc into ROOT."""
    build = os.environ.get("SPAWN_FCGI_BUILD_DIR")
    opts = build_options(build) if build else {}
    if not (opts.get("prefix") == "/usr" and opts.get("sysconfdir") in ("/etc", "etc")):
        build = os.path.join(workdir, "build")
        log(f"configuring a build for /usr in {build}")
        run(meson_cmd() + ["setup", "--prefix=/usr", "--sysconfdir=/etc",
                           "--buildtype=debugoptimized", build, SOURCE_DIR],
            timeout=BUILD_TIMEOUT)
        run(meson_cmd() + ["compile", "-C", build], timeout=BUILD_TIMEOUT)
    else:
        log(f"installing from {build}")
    env = dict(os.environ, DESTDIR=root)
    p = run(meson_cmd() + ["install", "-C", build, "--no-rebuild"],
            timeout=BUILD_TIMEOUT, env=env)
    # Everything meson installed must have landed inside the root.
    for line in p.stdout.splitlines():
        m = re.match(r"Installing .* to (/.*)$", line)
        if m:
            dest = os.path.realpath(m.group(1))
            assert dest.startswith(os.path.realpath(root) + "/"), line


# ---------------------------------------------------------------------------
# The container
# ---------------------------------------------------------------------------

PHP_PAGE = r"""<?php
header('Content-Type: text/plain');
// ?busy_ms=N keeps the child busy (not sleeping: a signal would cut that short).
$until = microtime(true) + (int) ($_GET['busy_ms'] ?? 0) / 1000;
while (microtime(true) < $until);
$pw = posix_getpwuid(posix_geteuid());
printf("sapi=%s\n", php_sapi_name());
printf("uid=%d\neuid=%d\ngid=%d\negid=%d\n", posix_getuid(), posix_geteuid(),
       posix_getgid(), posix_getegid());
printf("user=%s\n", $pw['name']);
printf("pid=%d\n", getmypid());
foreach (file('/proc/self/limits') as $line) {
    if (strncmp($line, 'Max open files', 14) == 0) {
        $f = preg_split('/\s+/', trim(substr($line, 14)));
        printf("nofile=%s/%s\n", $f[0], $f[1]);
    }
}
foreach (file('/proc/self/status') as $line) {
    if (strncmp($line, 'NoNewPrivs:', 11) == 0) {
        printf("no_new_privs=%s\n", trim(substr($line, 11)));
    }
}
printf("listen_fds=%s\n", getenv('LISTEN_FDS') === false ? '(unset)' : getenv('LISTEN_FDS'));
printf("notify_socket=%s\n", getenv('NOTIFY_SOCKET') === false ? '(unset)' : getenv('NOTIFY_SOCKET'));
"""

def nginx_site(listen, socket_path):
    """An nginx server passing *.php to the FastCGI socket SOCKET_PATH."""
    return f"""server {{
    listen {listen};
    root /var/www/spawn-fcgi-test;
    index index.php;
    location ~ \\.php$ {{
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass unix:{socket_path};
    }}
}}
"""


NGINX_SITE = nginx_site("80 default_server", SOCKET_PATH)
SV_NGINX_SITE = nginx_site("8081", SV_SOCKET_PATH)

OD_NGINX_SITE = nginx_site("8082", OD_SOCKET_PATH)

INSTANCE_CONF = f"""[spawn-fcgi]
exec=/usr/bin/php-cgi
user={APP_USER}
group={APP_USER}
limits=true
# Used only when the service runs without its socket unit.
socket={SOCKET_PATH}
mode=0660
socket-user=root
socket-group=www-data
"""

SV_INSTANCE_CONF = f"""[spawn-fcgi]
exec=/usr/bin/php-cgi
user={APP_USER}
group={APP_USER}
limits=true
fork={SV_CHILDREN}
# Used only when the service runs without its socket unit.
socket={SV_SOCKET_PATH}
mode=0660
socket-user=root
socket-group=www-data
"""

OD_INSTANCE_CONF = f"""[spawn-fcgi]
exec=/usr/bin/php-cgi
environment=PHP_FCGI_MAX_REQUESTS=0
user={APP_USER}
group={APP_USER}
limits=true
pm=ondemand
fork=4
idle-timeout=1
"""

LIMITS_CONF = f"""{APP_USER} soft nofile {NOFILE_SOFT}
{APP_USER} hard nofile {NOFILE_HARD}
"""


def prepare_root(root):
    """Configure the copied root: user, instance config, limits, nginx, PHP."""
    run(["useradd", "--root", root, "--system", "--user-group",
         "--home-dir", "/nonexistent", "--no-create-home",
         "--shell", "/usr/sbin/nologin", APP_USER])
    write_file(root, f"/etc/spawn-fcgi/{INSTANCE}.conf", INSTANCE_CONF)
    write_file(root, "/etc/security/limits.d/50-spawn-fcgi-test.conf", LIMITS_CONF)
    write_file(root, "/var/www/spawn-fcgi-test/index.php", PHP_PAGE)
    # Debian's sites-enabled/default is an absolute symlink: remove it, do
    # not write through it.
    remove_file(root, "/etc/nginx/sites-enabled/default")
    write_file(root, "/etc/nginx/sites-enabled/spawn-fcgi-test", NGINX_SITE)
    write_file(root, f"/etc/spawn-fcgi/{SV_INSTANCE}.conf", SV_INSTANCE_CONF)
    write_file(root, "/etc/nginx/sites-enabled/spawn-fcgi-supervise-test", SV_NGINX_SITE)
    write_file(root, f"/etc/spawn-fcgi/{OD_INSTANCE}.conf", OD_INSTANCE_CONF)
    write_file(root, "/etc/nginx/sites-enabled/spawn-fcgi-ondemand-test", OD_NGINX_SITE)
    run(["systemctl", f"--root={root}", "enable", SOCKET_UNIT, SV_SOCKET_UNIT,
         OD_SOCKET_UNIT, "nginx.service"])


def passwd_entry(root, name):
    for line in read_file(root, "/etc/passwd").splitlines():
        f = line.split(":")
        if f[0] == name:
            return int(f[2]), int(f[3])
    raise AssertionError(f"{name} not in the container's /etc/passwd")


def group_gid(root, name):
    for line in read_file(root, "/etc/group").splitlines():
        f = line.split(":")
        if f[0] == name:
            return int(f[2])
    raise AssertionError(f"{name} not in the container's /etc/group")


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def ns_pid1(pid):
    """The pid (host view) of the container's PID 1 below nspawn PID."""
    todo = children(pid)
    while todo:
        p = todo.pop(0)
        try:
            with open(f"/proc/{p}/status") as f:
                status = f.read()
        except OSError:
            continue
        m = re.search(r"^NSpid:\s+(.*)$", status, re.M)
        name = re.search(r"^Name:\s+(.*)$", status, re.M)
        # Before it execs systemd, nspawn's inner child already is PID 1 of
        # the new namespace, with a root that is not the container's yet.
        if (m and m.group(1).split()[-1] == "1" and len(m.group(1).split()) > 1
                and name and name.group(1) == "systemd"):
            return p
        todo += children(p)
    return None


MARKER_VAR = "SPAWN_FCGI_BOOT_TEST"


def container_inits(workdir):
    """Pids of the containers' PID 1 booted for WORKDIR (marked through
    --setenv), even when their nspawn is gone."""
    want = f"{MARKER_VAR}={workdir}".encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                m = re.search(r"^NSpid:\s+(.*)$", f.read(), re.M)
            if not m or m.group(1).split()[-1] != "1" or len(m.group(1).split()) < 2:
                continue
            with open(f"/proc/{d}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    found.append(int(d))
        except OSError:
            continue
    return found


def alive(pid):
    """Whether PID runs (a zombie does not).  Works for processes that are
    not our children too, unlike Popen.poll()."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Container:
    def __init__(self, workdir, root, name):
        self.workdir = workdir
        self.root = root
        self.name = name
        self.nspawn = None
        self.pid1 = None
        self.console = os.path.join(workdir, "console.log")
        self.keep = os.environ.get("SPAWN_FCGI_KEEP_ROOT") == "1"

    def nspawn_cmd(self, *extra):
        return ["systemd-nspawn", "-D", self.root, "-M", self.name,
                "--register=no", "--keep-unit", "--private-network", *extra]

    def probe(self):
        """Whether systemd-nspawn can run a container here at all."""
        p = run(self.nspawn_cmd("--quiet", "/bin/true"), check=False, timeout=COMMAND_TIMEOUT)
        if p.returncode != 0:
            return f"systemd-nspawn cannot run a container here: {p.stderr.strip()[-1000:]}"
        return None

    def boot(self):
        with open(self.console, "w") as out:
            self.nspawn = subprocess.Popen(self.nspawn_cmd(
                                               f"--setenv={MARKER_VAR}={self.workdir}", "--boot"),
                                           stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT,
                                           start_new_session=True)
        with open(os.path.join(self.workdir, "nspawn.pid"), "w") as f:
            f.write(f"{self.nspawn.pid}\n")
        deadline = time.monotonic() + BOOT_TIMEOUT
        while self.pid1 is None:
            if self.nspawn.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited with {self.nspawn.returncode}"
                                     f" during boot:\n{self.console_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no PID 1 in the container:\n{self.console_tail()}")
            self.pid1 = ns_pid1(self.nspawn.pid)
            time.sleep(0.2)
        # Until PID 1 listens on its private socket systemctl says "offline".
        while True:
            p = self.sh("systemctl is-system-running --wait", check=False,
                        timeout=BOOT_TIMEOUT)
            state = p.stdout.strip() or p.stderr.strip()
            if state in ("running", "degraded", "maintenance", "stopping"):
                break
            if self.nspawn.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if state not in ("running", "degraded"):
            failed = self.sh("systemctl --failed --no-legend", check=False).stdout
            raise AssertionError(f"system state {state!r}, failed units:\n{failed}\n"
                                 f"{self.console_tail()}")
        if state == "degraded":
            log("system degraded: " + self.sh("systemctl --failed --no-legend",
                                              check=False).stdout)

    def console_tail(self, n=60):
        try:
            with open(self.console, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def exec(self, args, check=True, timeout=COMMAND_TIMEOUT):
        assert self.pid1, "the container is not running"
        cmd = ["nsenter", "-t", str(self.pid1), "-a", "/usr/bin/env", "-i"]
        cmd += [f"{k}={v}" for k, v in CLEAN_ENV.items()]
        return run(cmd + list(args), check=check, timeout=timeout, env=CLEAN_ENV)

    def sh(self, script, check=True, timeout=COMMAND_TIMEOUT):
        return self.exec(["/bin/sh", "-c", script], check=check, timeout=timeout)

    def kill(self):
        # Killing a container's PID 1 ends everything in its namespace.
        inits = set(container_inits(self.workdir)) | ({self.pid1} if self.pid1 else set())
        kill_pids(inits)
        try:
            os.killpg(self.nspawn.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(inits | {self.nspawn.pid}, 30)

    def running(self):
        return self.nspawn is not None and alive(self.nspawn.pid)

    def cleanup(self, hurry=False):
        """Stop the container and remove the copy.  Safe to call again, also
        from the signal handler's process (hurry: no time for a poweroff)."""
        if self.running() and hurry:
            self.kill()
        if self.running():
            powering_off = False
            if self.pid1:
                try:
                    p = self.exec(["systemctl", "poweroff"], check=False, timeout=30)
                    powering_off = p.returncode == 0
                except AssertionError:
                    pass
            if not powering_off:
                # nspawn asks a booted container's PID 1 to power off on SIGTERM.
                self.nspawn.send_signal(signal.SIGTERM)
            if not wait_gone([self.nspawn.pid], SHUTDOWN_TIMEOUT):
                log("container did not power off; killing it")
                self.kill()
        if self.nspawn is not None and not hurry:
            self.nspawn.poll()          # reap it
        if not os.path.exists(self.workdir):
            return
        if self.keep:
            log(f"keeping {self.workdir}")
            try:
                os.unlink(os.path.join(self.workdir, "owner"))
            except OSError:
                pass
        else:
            # The owner file goes last, so that an interrupted removal is
            # finished by the next run.
            for d in os.listdir(self.workdir):
                path = os.path.join(self.workdir, d)
                if d != "owner" and os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(self.workdir, ignore_errors=True)


def remove_stale_runs(tmpdir):
    """Remove what a killed earlier run left behind (its owner is gone)."""
    for d in os.listdir(tmpdir):
        if not d.startswith("spawn-fcgi-boot-"):
            continue
        path = os.path.join(tmpdir, d)
        try:
            with open(os.path.join(path, "owner")) as f:
                owner = int(f.read())
        except (OSError, ValueError):
            continue
        if os.path.exists(f"/proc/{owner}"):
            continue
        kill_pids(container_inits(path))
        try:
            with open(os.path.join(path, "nspawn.pid")) as f:
                pid = int(f.read())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        log(f"removing stale {path}")
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------
# Fixture
# ---------------------------------------------------------------------------

def check_host():
    """Skips unless containers can be booted here; installs the handlers
    that clean up when the run is ended by a signal."""
    if os.geteuid() != 0:
        pytest.skip("needs root: systemd-nspawn boots a container")
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "useradd", "systemctl"):
        if not shutil.which(tool, path=CLEAN_ENV["PATH"]):
            pytest.skip(f"{tool} is not installed (packages systemd-container, "
                        f"debootstrap, util-linux, passwd)")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def booted_copy(kind, prepare):
    """A booted copy of the cached root, named KIND-PID so that runs on
    one machine do not collide; PREPARE(workdir, root) runs before the
    boot.  A generator for a fixture: yields the Container."""
    check_host()
    tmpdir = tempfile.gettempdir()
    remove_stale_runs(tmpdir)
    root = cached_root()
    workdir = tempfile.mkdtemp(prefix="spawn-fcgi-boot-", dir=tmpdir)
    with open(os.path.join(workdir, "owner"), "w") as f:
        f.write(f"{os.getpid()}\n")
    c = Container(workdir, os.path.join(workdir, "root"), f"sfcgi-{kind}-{os.getpid()}")
    _undo.append(c.cleanup)
    try:
        t0 = time.monotonic()
        run(["cp", "-a", "--reflink=auto", root, c.root], timeout=COMMAND_TIMEOUT)
        reason = c.probe()
        if reason:
            pytest.skip(reason)
        prepare(workdir, c.root)
        c.boot()
        log(f"container {c.name} up (PID 1 = {c.pid1}) after {time.monotonic() - t0:.0f} s")
        yield c
    finally:
        c.cleanup()
        _undo.remove(c.cleanup)


@pytest.fixture(scope="module")
def ct():
    def prepare(workdir, root):
        # Our build takes the place of Debian's 1.6.4 (kept in the cached
        # root for the package test).
        run(["dpkg", f"--root={root}", "--purge", "spawn-fcgi"])
        install_build(workdir, root)
        prepare_root(root)

    for c in booted_copy("test", prepare):
        c.app_uid, c.app_gid = passwd_entry(c.root, APP_USER)
        c.www_gid = group_gid(c.root, "www-data")
        yield c


# ---------------------------------------------------------------------------
# Helpers on the running container
# ---------------------------------------------------------------------------

def unit_state(c, unit):
    return c.exec(["systemctl", "is-active", unit], check=False).stdout.strip()


def unit_prop(c, unit, prop):
    return c.exec(["systemctl", "show", "-P", prop, unit]).stdout.strip()


def unit_props(c, unit, *props):
    out = c.exec(["systemctl", "show", "-p", ",".join(props), unit]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def fetch_page(c, url=URL, unit=SERVICE):
    p = c.exec(["curl", "-sS", "--max-time", "60", "-o", "-", "-w", "http_code=%{http_code}\\n",
                url], check=False)
    assert p.returncode == 0, f"curl failed: {p.stderr}\n{journal_text(c, unit)}"
    page = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    assert page.get("http_code") == "200", f"{p.stdout}\n{journal_text(c, unit)}"
    return page


def journal_text(c, unit=SERVICE):
    return c.exec(["journalctl", "--no-pager", "-u", unit], check=False).stdout


def journal_entries(c, unit=SERVICE):
    p = c.exec(["journalctl", "--no-pager", "-o", "json", "-u", unit])
    entries = []
    for line in p.stdout.splitlines():
        if line.strip():
            e = json.loads(line)
            if isinstance(e.get("MESSAGE"), list):   # non-UTF-8: byte array
                e["MESSAGE"] = bytes(e["MESSAGE"]).decode(errors="replace")
            entries.append(e)
    return entries


def own_messages(c, unit=SERVICE, since=0):
    """Journal entries written by the service's processes (not by PID 1),
    from the SINCEth entry of the unit's journal on."""
    return [e for e in journal_entries(c, unit)[since:] if e.get("_PID") != "1"
            and e.get("SYSLOG_IDENTIFIER") != "systemd"]


def assert_page_from_app(c, page):
    assert page.get("sapi") == "cgi-fcgi", page
    assert page.get("user") == APP_USER, page
    assert page.get("uid") == str(c.app_uid) and page.get("euid") == str(c.app_uid), page
    assert page.get("gid") == str(c.app_gid) and page.get("egid") == str(c.app_gid), page
    assert page.get("nofile") == f"{NOFILE_SOFT}/{NOFILE_HARD}", page
    assert page.get("listen_fds") == "(unset)", page
    assert page.get("notify_socket") == "(unset)", page
    # The unit leaves NoNewPrivileges= off, so setuid helpers keep working.
    assert page.get("no_new_privs") == "0", page


def wait_for(pred, what, timeout=60, fail=None):
    """Polls PRED (bounded); the bound is a safety net, not an assertion on speed."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}" +
                                 (f"\n{fail()}" if fail else ""))
        time.sleep(0.2)


def main_comm(c, unit):
    pid = unit_prop(c, unit, "MainPID")
    if pid == "0":
        return None
    return c.exec(["ps", "-o", "comm=", "-p", pid], check=False).stdout.strip()


def fd0_socket(c, pid):
    """The inode of the socket on fd 0 of PID (container view)."""
    link = c.exec(["readlink", f"/proc/{pid}/fd/0"]).stdout.strip()
    m = re.fullmatch(r"socket:\[(\d+)\]", link)
    assert m, f"fd 0 of {pid} is {link!r}, not a socket"
    return m.group(1)


def pid1_sockets(c):
    """Inodes of the sockets systemd (PID 1) holds."""
    out = c.sh("for f in /proc/1/fd/*; do readlink \"$f\"; done").stdout
    return set(re.findall(r"socket:\[(\d+)\]", out))


def socket_stat(c, path=SOCKET_PATH):
    p = c.exec(["stat", "-c", "%F|%U|%G|%a", path], check=False)
    return p.stdout.strip() if p.returncode == 0 else None


# ---------------------------------------------------------------------------
# Tests (they run in this order on one booted container)
# ---------------------------------------------------------------------------

def test_units_verify(ct):
    p = ct.exec(["systemd-analyze", "verify", "--man=no",
                 "/lib/systemd/system/spawn-fcgi@.socket",
                 "/lib/systemd/system/spawn-fcgi@.service",
                 SOCKET_UNIT, SERVICE], check=False)
    assert p.returncode == 0 and p.stderr.strip() == "" and p.stdout.strip() == "", \
        f"systemd-analyze verify: {p.returncode}\n{p.stdout}{p.stderr}"


def test_installed_files(ct):
    exec_start = unit_prop(ct, SERVICE, "ExecStart")
    assert "path=/usr/bin/spawn-fcgi " in exec_start, exec_start
    assert f"--config=/etc/spawn-fcgi/{INSTANCE}.conf" in exec_start, exec_start
    ct.exec(["test", "-x", "/usr/bin/spawn-fcgi"])
    # The annotated example is valid for the installed spawn-fcgi.
    p = ct.exec(["/usr/bin/spawn-fcgi", "--check",
                 "--config=/etc/spawn-fcgi/example.conf.sample"], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "warning" not in p.stderr.lower() and "error" not in p.stderr.lower(), p.stderr


def test_socket_listening_service_idle(ct):
    assert unit_state(ct, SOCKET_UNIT) == "active"
    assert unit_state(ct, SERVICE) == "inactive"
    assert ct.exec(["pgrep", "-u", APP_USER], check=False).stdout == ""


def test_socket_file_owner_mode(ct):
    assert socket_stat(ct) == "socket|root|www-data|660"
    # The directory systemd made for it.
    p = ct.exec(["stat", "-c", "%U|%G|%a", "/run/spawn-fcgi"])
    assert p.stdout.strip() == "root|root|755"


def test_first_request_activates_php(ct):
    page = fetch_page(ct)
    assert_page_from_app(ct, page)
    assert unit_state(ct, SERVICE) == "active"
    main_pid = unit_prop(ct, SERVICE, "MainPID")
    assert main_pid != "0"
    # spawn-fcgi replaced itself with php-cgi, which runs as the user.
    p = ct.exec(["ps", "-o", "user=,comm=", "-p", main_pid])
    assert p.stdout.split() == [APP_USER, "php-cgi"], p.stdout
    assert unit_prop(ct, SERVICE, "TriggeredBy") == SOCKET_UNIT
    # php-cgi listens on the very socket systemd made (fd 0), not on one of
    # its own.
    assert fd0_socket(ct, main_pid) in pid1_sockets(ct)
    assert socket_stat(ct) == "socket|root|www-data|660"


def test_journal_messages_and_priorities(ct):
    log("journal of the service:\n" + journal_text(ct))
    msgs = own_messages(ct)
    # No sd-daemon prefix may reach the journal as text: journald parses it.
    for e in msgs:
        assert not re.match(r"^<[0-7]>", e["MESSAGE"]), e
    ours = [e for e in msgs if e["MESSAGE"].startswith("spawn-fcgi: ")]
    # A successful start says nothing worse than a warning.
    for e in ours:
        assert e.get("PRIORITY") in ("4", "5", "6", "7"), e


def test_warning_has_warning_priority(ct):
    """A setting without effect is reported at PRIORITY=4 (warning)."""
    unit = "spawn-fcgi@warn.service"
    # fork= is overridden by the unit's --no-fork.
    write_file(ct.root, "/etc/spawn-fcgi/warn.conf",
               f"[spawn-fcgi]\nexec=/usr/bin/php-cgi\nuser={APP_USER}\n"
               "socket=/run/spawn-fcgi/warn.sock\nfork=3\n")
    def warnings():
        return [e for e in own_messages(ct, unit) if e.get("PRIORITY") == "4"
                and e["MESSAGE"].startswith("spawn-fcgi: ") and "fork" in e["MESSAGE"]]

    try:
        ct.exec(["systemctl", "start", unit])
        wait_for(lambda: main_comm(ct, unit) == "php-cgi", "spawn-fcgi to exec php-cgi",
                 fail=lambda: journal_text(ct, unit))
        assert unit_state(ct, unit) == "active"
        wait_for(warnings, "a warning in the journal", fail=lambda: journal_text(ct, unit))
        for e in own_messages(ct, unit):
            assert not re.match(r"^<[0-7]>", e["MESSAGE"]), e
    finally:
        ct.exec(["systemctl", "stop", unit], check=False)


def test_restart(ct):
    old_pid = unit_prop(ct, SERVICE, "MainPID")
    ct.exec(["systemctl", "restart", SERVICE])
    assert unit_state(ct, SERVICE) == "active"
    new_pid = unit_prop(ct, SERVICE, "MainPID")
    assert new_pid not in ("0", old_pid)
    assert ct.exec(["test", "-d", f"/proc/{old_pid}"], check=False).returncode != 0
    page = fetch_page(ct)
    assert_page_from_app(ct, page)
    assert socket_stat(ct) == "socket|root|www-data|660"


def test_stop_and_reactivation(ct):
    ct.exec(["systemctl", "stop", SERVICE])
    assert unit_state(ct, SERVICE) == "inactive"
    assert unit_prop(ct, SERVICE, "Result") == "success"
    # Every process of the instance is gone; the socket stays with systemd.
    assert ct.exec(["pgrep", "-u", APP_USER], check=False).stdout == ""
    assert unit_state(ct, SOCKET_UNIT) == "active"
    assert socket_stat(ct) == "socket|root|www-data|660"
    # The next request starts it again.
    assert_page_from_app(ct, fetch_page(ct))
    assert unit_state(ct, SERVICE) == "active"


def test_service_alone_binds_config_socket(ct):
    """Without the socket unit, spawn-fcgi creates socket= of the config."""
    ct.exec(["systemctl", "stop", SOCKET_UNIT, SERVICE])
    assert unit_state(ct, SOCKET_UNIT) == "inactive"
    assert socket_stat(ct) is None          # RemoveOnStop=yes
    ct.exec(["systemctl", "start", SERVICE])
    try:
        assert unit_state(ct, SOCKET_UNIT) == "inactive"
        assert unit_state(ct, SERVICE) == "active"
        assert socket_stat(ct) == "socket|root|www-data|660"
        assert_page_from_app(ct, fetch_page(ct))
        # spawn-fcgi made this socket itself.
        assert fd0_socket(ct, unit_prop(ct, SERVICE, "MainPID")) not in pid1_sockets(ct)
        ct.exec(["systemctl", "stop", SERVICE])
        assert unit_prop(ct, SERVICE, "Result") == "success"
        assert ct.exec(["pgrep", "-u", APP_USER], check=False).stdout == ""
    finally:
        ct.exec(["systemctl", "stop", SERVICE], check=False)
        ct.exec(["systemctl", "start", SOCKET_UNIT], check=False)
    assert unit_state(ct, SOCKET_UNIT) == "active"
    assert_page_from_app(ct, fetch_page(ct))


def test_socket_dropin_overrides(ct):
    """Owner and mode of the socket come from the socket unit, so a drop-in
    changes them."""
    dropin = f"/etc/systemd/system/{SOCKET_UNIT}.d/50-test.conf"
    write_file(ct.root, dropin, "[Socket]\nSocketUser=www-data\nSocketMode=0600\n")
    try:
        ct.exec(["systemctl", "daemon-reload"])
        ct.exec(["systemctl", "stop", SERVICE, SOCKET_UNIT])
        ct.exec(["systemctl", "start", SOCKET_UNIT])
        assert socket_stat(ct) == "socket|www-data|www-data|600"
        assert_page_from_app(ct, fetch_page(ct))
    finally:
        remove_file(ct.root, dropin)
        ct.exec(["systemctl", "daemon-reload"], check=False)
        ct.exec(["systemctl", "stop", SERVICE, SOCKET_UNIT], check=False)
        ct.exec(["systemctl", "start", SOCKET_UNIT], check=False)
    assert socket_stat(ct) == "socket|root|www-data|660"


def test_bad_config_fails_clearly(ct):
    """A broken instance fails, says why in the journal, starts nothing."""
    write_file(ct.root, "/etc/spawn-fcgi/broken.conf",
               "[spawn-fcgi]\nexec=/usr/bin/php-cgi\nuser=no-such-user-here\n"
               "socket=/run/spawn-fcgi/broken.sock\n")
    unit = "spawn-fcgi@broken.service"
    # Type=exec: the start job succeeds once spawn-fcgi runs; it then exits
    # with an error, and Restart=on-failure gives up after the start limit.
    ct.exec(["systemctl", "start", unit], check=False)
    wait_for(lambda: unit_state(ct, unit) == "failed", f"{unit} to fail")
    assert unit_prop(ct, unit, "Result") in ("exit-code", "start-limit-hit"), \
        unit_prop(ct, unit, "Result")

    def errors():
        return [e for e in own_messages(ct, unit) if e.get("PRIORITY") == "3"
                and e["MESSAGE"].startswith("spawn-fcgi: ")
                and "no-such-user-here" in e["MESSAGE"]]

    wait_for(errors, "the error in the journal", fail=lambda: journal_text(ct, unit))
    assert ct.exec(["test", "-e", "/run/spawn-fcgi/broken.sock"], check=False).returncode != 0
    ct.exec(["systemctl", "reset-failed", unit], check=False)


# ---------------------------------------------------------------------------
# The supervised instance: spawn-fcgi-supervise@.socket and .service
# ---------------------------------------------------------------------------

def sv_children(c, pid):
    """The children of PID (the supervisor): {pid: (user, comm)}."""
    out = c.exec(["ps", "-o", "pid=,user=,comm=", "--ppid", str(pid)], check=False).stdout
    kids = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3:
            kids[f[0]] = (f[1], f[2])
    return kids


def sv_app_children(c, pid):
    """The pids of the php-cgi children of PID, when every child is one and
    there are SV_CHILDREN of them; None otherwise."""
    kids = sv_children(c, pid)
    if len(kids) != SV_CHILDREN or any(v != (APP_USER, "php-cgi") for v in kids.values()):
        return None
    return set(kids)


def sv_status(c):
    return unit_prop(c, SV_SERVICE, "StatusText")


def sv_expected_status(restarts):
    """The STATUS= line of a settled pool.  Its busy, idle and queue
    figures are sampled at the supervisor's last event (the first request
    may still wait in the queue then), so they are left open."""
    return re.compile(rf"{SV_CHILDREN} children: \d+ busy, \d+ idle; queue \d+; "
                      rf"{restarts} restarts")


def sv_state(c):
    """Everything worth showing when a supervised-instance test fails."""
    props = unit_props(c, SV_SERVICE, "ActiveState", "SubState", "MainPID", "StatusText",
                       "NRestarts", "Result")
    pid = props.get("MainPID", "0")
    tree = c.exec(["ps", "-o", "pid,ppid,user,stat,comm", "-u", APP_USER], check=False).stdout
    return f"{props}\nchildren of {pid}: {sv_children(c, pid)}\n{tree}\n" + \
        journal_text(c, SV_SERVICE)


def sv_notices(c, text):
    """Messages of the supervisor at PRIORITY=5 (notice) containing TEXT."""
    return [e for e in own_messages(c, SV_SERVICE) if e.get("PRIORITY") == "5"
            and e["MESSAGE"].startswith("spawn-fcgi: ") and text in e["MESSAGE"]]


def wait_sv_settled(c, restarts):
    """Waits for all children running and READY (no reload or stop going on)."""
    wait_for(lambda: sv_expected_status(restarts).fullmatch(sv_status(c)),
             f"StatusText {sv_expected_status(restarts).pattern!r}",
             fail=lambda: sv_state(c))
    wait_for(lambda: unit_state(c, SV_SERVICE) != "activating"
             and unit_prop(c, SV_SERVICE, "SubState") != "reload",
             f"{SV_SERVICE} to leave activating/reload", fail=lambda: sv_state(c))


def test_supervise_units_verify(ct):
    p = ct.exec(["systemd-analyze", "verify", "--man=no",
                 "/lib/systemd/system/spawn-fcgi-supervise@.socket",
                 "/lib/systemd/system/spawn-fcgi-supervise@.service",
                 SV_SOCKET_UNIT, SV_SERVICE], check=False)
    assert p.returncode == 0 and p.stderr.strip() == "" and p.stdout.strip() == "", \
        f"systemd-analyze verify: {p.returncode}\n{p.stdout}{p.stderr}"


def test_supervise_socket_listening_service_idle(ct):
    # Stop the other instance, so that every process of the user from here
    # on belongs to the supervised one.
    ct.exec(["systemctl", "stop", SERVICE])
    assert ct.exec(["pgrep", "-u", APP_USER], check=False).stdout == ""
    assert unit_state(ct, SV_SOCKET_UNIT) == "active"
    assert unit_state(ct, SV_SERVICE) == "inactive"
    exec_start = unit_prop(ct, SV_SERVICE, "ExecStart")
    assert "path=/usr/bin/spawn-fcgi " in exec_start, exec_start
    assert f"--supervise --config=/etc/spawn-fcgi/{SV_INSTANCE}.conf" in exec_start, exec_start


def test_supervise_socket_file_owner_mode(ct):
    assert socket_stat(ct, SV_SOCKET_PATH) == "socket|root|www-data|660"


def test_supervise_first_request(ct):
    page = fetch_page(ct, SV_URL, SV_SERVICE)
    assert_page_from_app(ct, page)
    # Type=notify: the unit leaves "activating" on READY=1 only.
    wait_for(lambda: unit_state(ct, SV_SERVICE) != "activating",
             f"{SV_SERVICE} to leave activating", fail=lambda: sv_state(ct))
    props = unit_props(ct, SV_SERVICE, "MainPID", "Type", "StatusText", "NRestarts",
                       "ActiveState", "SubState", "TriggeredBy")
    assert props["Type"] == "notify", props
    assert (props["ActiveState"], props["SubState"]) == ("active", "running"), sv_state(ct)
    assert props["NRestarts"] == "0", props
    assert props["TriggeredBy"] == SV_SOCKET_UNIT, props
    main_pid = props["MainPID"]
    assert main_pid != "0", props
    # The supervisor stays: the main process is spawn-fcgi, run as root.
    assert ct.exec(["readlink", f"/proc/{main_pid}/exe"]).stdout.strip() == "/usr/bin/spawn-fcgi"
    assert ct.exec(["ps", "-o", "user=", "-p", main_pid]).stdout.strip() == "root"
    kids = wait_for(lambda: sv_app_children(ct, main_pid),
                    f"{SV_CHILDREN} php-cgi children of {main_pid}", fail=lambda: sv_state(ct))
    assert page["pid"] in kids, (page, kids)
    # Every child listens on the very socket systemd made.
    held = pid1_sockets(ct)
    for kid in kids:
        assert fd0_socket(ct, kid) in held, kid
    wait_sv_settled(ct, 0)
    assert sv_notices(ct, f"supervising {SV_CHILDREN} children ({SV_CHILDREN} running)"), \
        journal_text(ct, SV_SERVICE)
    assert socket_stat(ct, SV_SOCKET_PATH) == "socket|root|www-data|660"


def test_supervise_restarts_killed_child(ct):
    main_pid = unit_prop(ct, SV_SERVICE, "MainPID")
    before = sv_app_children(ct, main_pid)
    assert before, sv_state(ct)
    victim = sorted(before, key=int)[0]
    ct.exec(["kill", "-9", victim])
    after = wait_for(lambda: (k := sv_app_children(ct, main_pid)) and victim not in k and k,
                     "a new child in place of the killed one", fail=lambda: sv_state(ct))
    assert len(after - before) == 1, (before, after)
    wait_sv_settled(ct, 1)
    assert unit_state(ct, SV_SERVICE) == "active"
    props = unit_props(ct, SV_SERVICE, "MainPID", "NRestarts")
    assert props == {"MainPID": main_pid, "NRestarts": "0"}, props

    def warning():
        return [e for e in own_messages(ct, SV_SERVICE) if e.get("PRIORITY") == "4"
                and f"child {victim} was killed by signal 9" in e["MESSAGE"]]

    wait_for(warning, "the warning about the killed child", fail=lambda: sv_state(ct))
    assert_page_from_app(ct, fetch_page(ct, SV_URL, SV_SERVICE))


LOAD_DIR = "/run/spawn-fcgi-test-load"
LOAD_CLIENTS = 3
# php-cgi ends itself after PHP_FCGI_MAX_REQUESTS (500) requests, which
# would count as a restart: stay well below.
LOAD_MAX = 100


class Load:
    """LOAD_CLIENTS clients in the container asking for the page in a loop,
    each request keeping a child busy for a while, until stop()."""

    def __init__(self, c, url):
        self.c = c
        self.result = {}
        c.exec(["rm", "-rf", LOAD_DIR])
        c.exec(["mkdir", LOAD_DIR])
        client = (f"n=0; bad=0; while [ ! -e {LOAD_DIR}/stop ] && [ $n -lt {LOAD_MAX} ]; do "
                  f"code=$(curl -s -o /dev/null --max-time 20 -w '%{{http_code}}' "
                  f"'{url}?busy_ms=20'); "
                  f"[ \"$code\" = 200 ] || bad=$((bad + 1)); n=$((n + 1)); "
                  f"echo $n > {LOAD_DIR}/count.$1; done; echo \"requests=$n failed=$bad\"")
        self.script = (f"client() {{ {client}; }}; "
                       + "".join(f"client {i} & " for i in range(LOAD_CLIENTS)) + "wait")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.result["out"] = self.c.sh(self.script).stdout
        except BaseException as e:     # reported by stop()
            self.result["error"] = e

    def count(self):
        out = self.c.sh(f"cat {LOAD_DIR}/count.* 2>/dev/null", check=False).stdout
        return sum(int(n) for n in out.split() if n.isdigit())

    def wait_more(self, n):
        """Waits for N more requests (or for the clients to end)."""
        target = min(self.count() + n, LOAD_CLIENTS * LOAD_MAX)
        wait_for(lambda: self.count() >= target or not self.thread.is_alive(),
                 f"{n} more requests")

    def stop(self):
        """Ends the clients; returns (requests, failed)."""
        self.end()
        assert not self.thread.is_alive(), "the load did not stop"
        if "error" in self.result:
            raise self.result["error"]
        out = self.result["out"]
        runs = re.findall(r"requests=(\d+) failed=(\d+)", out)
        assert len(runs) == LOAD_CLIENTS, out
        log(f"load: {' '.join(out.split())}")
        return sum(int(r) for r, _ in runs), sum(int(f) for _, f in runs)

    def end(self):
        """Ends the clients, without looking at the outcome."""
        try:
            self.c.exec(["touch", f"{LOAD_DIR}/stop"], check=False)
        finally:
            self.thread.join(COMMAND_TIMEOUT + 10)
            self.c.exec(["rm", "-rf", LOAD_DIR], check=False)


def test_supervise_reload(ct):
    main_pid = unit_prop(ct, SV_SERVICE, "MainPID")
    before = sv_app_children(ct, main_pid)
    assert before, sv_state(ct)
    journal_before = len(journal_entries(ct, SV_SERVICE))

    # Requests go on during the whole reload, keeping the children busy;
    # none may fail.
    load = Load(ct, SV_URL)
    try:
        load.wait_more(10)
        ct.exec(["systemctl", "reload", SV_SERVICE])
        # With systemd 252 the reload job ends either when ExecReload= (kill
        # -HUP) has exited or at READY=1, depending on which of the two
        # systemd sees first; the children tell when it is done.
        after = wait_for(lambda: (k := sv_app_children(ct, main_pid)) and not (k & before) and k,
                         "every child replaced", fail=lambda: sv_state(ct))
        wait_sv_settled(ct, 1)
        load.wait_more(10)
    except BaseException:
        load.end()
        raise
    requests, failed = load.stop()
    assert requests >= 20 and failed == 0, (requests, failed)

    props = unit_props(ct, SV_SERVICE, "MainPID", "NRestarts", "ActiveState", "SubState")
    assert props == {"MainPID": main_pid, "NRestarts": "0", "ActiveState": "active",
                     "SubState": "running"}, props
    assert len(after) == SV_CHILDREN and not (after & before), (before, after)
    for old in before:
        assert ct.exec(["test", "-d", f"/proc/{old}"], check=False).returncode != 0, old
    page = fetch_page(ct, SV_URL, SV_SERVICE)
    assert_page_from_app(ct, page)
    assert page["pid"] in after, (page, after)

    def reloading():
        return [e for e in own_messages(ct, SV_SERVICE, journal_before)
                if e.get("PRIORITY") == "5"
                and e["MESSAGE"] == f"spawn-fcgi: reloading: replacing {SV_CHILDREN} children, "
                                    "1 at a time"]

    wait_for(reloading, "the reloading notice in the journal", fail=lambda: sv_state(ct))


def test_supervise_stop_and_reactivation(ct):
    main_pid = unit_prop(ct, SV_SERVICE, "MainPID")
    kids = sv_app_children(ct, main_pid)
    assert kids, sv_state(ct)
    journal_before = len(journal_entries(ct, SV_SERVICE))
    ct.exec(["systemctl", "stop", SV_SERVICE])
    props = unit_props(ct, SV_SERVICE, "ActiveState", "Result", "ExecMainStatus", "MainPID")
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0",
                     "MainPID": "0"}, f"{props}\n{journal_text(ct, SV_SERVICE)}"
    for pid in kids | {main_pid}:
        assert ct.exec(["test", "-d", f"/proc/{pid}"], check=False).returncode != 0, pid
    assert ct.exec(["pgrep", "-u", APP_USER], check=False).stdout == ""
    new = journal_entries(ct, SV_SERVICE)[journal_before:]
    # The supervisor stopped its children itself: systemd had nothing left
    # to kill (KillMode=mixed would SIGKILL leftovers).
    assert not [e for e in new if "SIGKILL" in e.get("MESSAGE", "")
                or "left-over process" in e.get("MESSAGE", "")], new
    assert [e for e in new if e.get("_PID") == main_pid and e.get("PRIORITY") == "5"
            and e["MESSAGE"] == f"spawn-fcgi: stopping {SV_CHILDREN} children"], \
        journal_text(ct, SV_SERVICE)
    # The children finished within the stop timeout: no warning.
    assert not [e for e in own_messages(ct, SV_SERVICE, journal_before)
                if e.get("PRIORITY") in ("0", "1", "2", "3", "4")], journal_text(ct, SV_SERVICE)
    for e in own_messages(ct, SV_SERVICE):
        assert not re.match(r"^<[0-7]>", e["MESSAGE"]), e
    # The socket stays with systemd, and the next request starts it again.
    assert unit_state(ct, SV_SOCKET_UNIT) == "active"
    assert socket_stat(ct, SV_SOCKET_PATH) == "socket|root|www-data|660"
    assert_page_from_app(ct, fetch_page(ct, SV_URL, SV_SERVICE))
    wait_for(lambda: unit_state(ct, SV_SERVICE) != "activating",
             f"{SV_SERVICE} to leave activating", fail=lambda: sv_state(ct))
    assert unit_state(ct, SV_SERVICE) == "active"
    new_pid = unit_prop(ct, SV_SERVICE, "MainPID")
    assert new_pid not in ("0", main_pid)
    assert ct.exec(["readlink", f"/proc/{new_pid}/exe"]).stdout.strip() == "/usr/bin/spawn-fcgi"
    wait_sv_settled(ct, 0)


def test_supervise_reload_during_reload(ct):
    """A second reload that arrives while the first one has a new child on
    probation still ends with SV_CHILDREN children, all of them new."""
    main_pid = unit_prop(ct, SV_SERVICE, "MainPID")
    before = sv_app_children(ct, main_pid)
    assert before, sv_state(ct)
    restarts = re.search(r"; (\d+) restarts", sv_status(ct)).group(1)
    try:
        # The second SIGHUP goes out as soon as the first new child runs
        # next to the old ones (SUPERVISOR_PROBATION_MS is 100 ms): the
        # loop uses shell builtins only, so it notices within microseconds.
        ct.sh(f"kids=/proc/{main_pid}/task/{main_pid}/children; kill -HUP {main_pid}; i=0; "
              f"while read -r k < $kids; set -- $k; [ $# -le {SV_CHILDREN} ] "
              f"&& [ $i -lt 1000000 ]; do i=$((i + 1)); done; kill -HUP {main_pid}; "
              f"echo \"children=$# polls=$i\"")
        wait_sv_settled(ct, restarts)
        wait_for(lambda: not (set(sv_children(ct, main_pid)) & before)
                 and len(sv_children(ct, main_pid)) <= SV_CHILDREN,
                 "the old children to go", timeout=10, fail=lambda: sv_state(ct))
        after = sv_app_children(ct, main_pid)
        assert after and not (after & before), sv_state(ct)
        for old in before:
            assert ct.exec(["test", "-d", f"/proc/{old}"], check=False).returncode != 0, \
                sv_state(ct)
        assert unit_prop(ct, SV_SERVICE, "MainPID") == main_pid
        assert_page_from_app(ct, fetch_page(ct, SV_URL, SV_SERVICE))
    finally:
        # What is left over must not outlive this test.
        ct.exec(["systemctl", "stop", SV_SERVICE], check=False)


# ---------------------------------------------------------------------------
# The ondemand instance: spawn-fcgi-supervise@phpod with pm=ondemand
# ---------------------------------------------------------------------------

def od_state(c):
    props = unit_props(c, OD_SERVICE, "ActiveState", "SubState", "MainPID", "StatusText")
    return f"{props}\nchildren: {sv_children(c, props.get('MainPID', '0'))}\n" + \
        journal_text(c, OD_SERVICE)


def test_ondemand_instance_behind_nginx(ct):
    assert unit_state(ct, OD_SOCKET_UNIT) == "active"
    assert unit_state(ct, OD_SERVICE) == "inactive"
    page = fetch_page(ct, OD_URL, OD_SERVICE)
    assert_page_from_app(ct, page)
    wait_for(lambda: unit_state(ct, OD_SERVICE) == "active",
             f"{OD_SERVICE} active", fail=lambda: od_state(ct))
    main_pid = unit_prop(ct, OD_SERVICE, "MainPID")
    # The child that answered is the supervisor's; with nothing more to
    # do it is retired after the idle timeout, down to none.
    assert ct.exec(["ps", "-o", "ppid=", "-p", page["pid"]],
                   check=False).stdout.strip() in (main_pid, "")
    wait_for(lambda: sv_children(ct, main_pid) == {}, "no child left after the idle timeout",
             fail=lambda: od_state(ct))
    assert unit_prop(ct, OD_SERVICE, "StatusText").startswith("0 children"), od_state(ct)
    journal = journal_text(ct, OD_SERVICE)
    assert "(ondemand, 0 running)" in journal and "idle for" in journal, journal
    # The next request starts a new one; the supervisor stayed.
    again = fetch_page(ct, OD_URL, OD_SERVICE)
    assert_page_from_app(ct, again)
    assert again["pid"] != page["pid"]
    assert unit_prop(ct, OD_SERVICE, "MainPID") == main_pid
    ct.exec(["systemctl", "stop", OD_SERVICE], check=False)


# ---------------------------------------------------------------------------
# The Debian package, in a container of its own
# ---------------------------------------------------------------------------

DEB_INSTANCE = "php"
DEB_SERVICE = f"spawn-fcgi@{DEB_INSTANCE}.service"
DEB_SOCKET_UNIT = f"spawn-fcgi@{DEB_INSTANCE}.socket"
# The README's systemd example, as an admin would write it.
DEB_INSTANCE_CONF = """[spawn-fcgi]
exec=/usr/bin/php-cgi
user=www-data
"""
DEB_NGINX_SITE = nginx_site("80 default_server", f"/run/spawn-fcgi/{DEB_INSTANCE}.sock")


def project_version():
    with open(os.path.join(SOURCE_DIR, "meson.build")) as f:
        return re.search(r"^\s*version:\s*'([^']+)'", f.read(), re.M).group(1)


def build_deb(workdir):
    """The .deb to install (and the .changes to check, when built here)."""
    given = os.environ.get("SPAWN_FCGI_DEB")
    if given:
        return os.path.abspath(given), None
    for tool in ("dpkg-buildpackage", "dh"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed: the package cannot be built "
                        f"(scripts/install-deps installs dpkg-dev and debhelper)")
    out = os.path.join(workdir, "deb")
    # From a copy of the tree: nothing of the build lands in the tree.
    run([os.path.join(SOURCE_DIR, "scripts", "build-deb"), "--source", out],
        timeout=BUILD_TIMEOUT)
    names = os.listdir(out)
    debs = [n for n in names if re.fullmatch(r"spawn-fcgi_[^_]+_[^_]+\.deb", n)]
    changes = [n for n in names if n.endswith(".changes")]
    assert len(debs) == 1 and len(changes) == 1, names
    return os.path.join(out, debs[0]), os.path.join(out, changes[0])


@pytest.fixture(scope="module")
def deb_ct():
    """A booted copy of the cached root with Debian's spawn-fcgi 1.6.4, the
    built package next to it in /root, nginx set up for the instance the
    tests configure.  Nothing of our build is installed yet."""
    built = {}

    def prepare(workdir, root):
        built["deb"], built["changes"] = build_deb(workdir)
        name = os.path.basename(built["deb"])
        shutil.copyfile(built["deb"], host_path(root, f"/root/{name}"))
        write_file(root, "/var/www/spawn-fcgi-test/index.php", PHP_PAGE)
        remove_file(root, "/etc/nginx/sites-enabled/default")
        write_file(root, "/etc/nginx/sites-enabled/spawn-fcgi-deb-test", DEB_NGINX_SITE)
        run(["systemctl", f"--root={root}", "enable", "nginx.service"])

    for c in booted_copy("deb", prepare):
        c.deb, c.changes = built["deb"], built["changes"]
        c.deb_name = os.path.basename(c.deb)
        yield c


def deb_units(c):
    """Every spawn-fcgi unit systemd knows about (loaded or enabled)."""
    units = c.exec(["systemctl", "list-units", "--all", "--plain", "--no-legend",
                    "spawn-fcgi*"]).stdout
    links = c.sh("find /etc/systemd/system -name 'spawn-fcgi*'").stdout
    return (units + links).strip()


def test_deb_lintian(deb_ct):
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed (scripts/install-deps installs it)")
    # The .changes covers the .deb, the .dsc and the source tarball.
    target = deb_ct.changes or deb_ct.deb
    p = run(["lintian", "--fail-on", "error,warning", "--info", target],
            timeout=BUILD_TIMEOUT, check=False)
    assert p.returncode == 0, f"lintian:\n{p.stdout}{p.stderr}"


def test_deb_apt_install_upgrades_1_6(deb_ct):
    c = deb_ct
    query = ["dpkg-query", "-W", "-f=${Version} ${Status}", "spawn-fcgi"]
    assert c.exec(query).stdout.startswith("1.6.4"), "Debian's 1.6.4 is not installed"
    assert deb_units(c) == ""
    # Offline: everything it depends on is in the cached root already.
    p = c.sh(f"cd /root && DEBIAN_FRONTEND=noninteractive apt install -y ./{c.deb_name}",
             timeout=BUILD_TIMEOUT)
    assert re.search(r"Unpacking spawn-fcgi \(.*\) over \(1\.6\.4", p.stdout), p.stdout
    version = project_version()
    assert c.exec(query).stdout == f"{version} install ok installed"
    assert c.exec(["spawn-fcgi", "--version"]).stdout.split()[:2] == ["spawn-fcgi", version]
    # Installed, enabled nowhere, started nothing.
    assert deb_units(c) == ""
    assert c.exec(["systemctl", "is-enabled", DEB_SOCKET_UNIT], check=False).stdout.strip() \
        == "disabled"
    for path in ("/usr/bin/spawn-fcgi", "/lib/systemd/system/spawn-fcgi@.socket",
                 "/lib/systemd/system/spawn-fcgi@.service",
                 "/lib/systemd/system/spawn-fcgi-supervise@.socket",
                 "/lib/systemd/system/spawn-fcgi-supervise@.service",
                 "/usr/share/bash-completion/completions/spawn-fcgi",
                 "/usr/share/doc/spawn-fcgi/examples/example.conf",
                 "/usr/share/man/man1/spawn-fcgi.1.gz",
                 "/usr/share/man/man5/spawn-fcgi.conf.5.gz"):
        c.exec(["test", "-e", path])
    conffiles = c.exec(["dpkg-query", "-W", "-f=${Conffiles}", "spawn-fcgi"]).stdout
    assert "/etc/spawn-fcgi/example.conf.sample" in conffiles, conffiles
    # Nothing of 1.6.4 is left behind.
    c.exec(["test", "!", "-e", "/usr/share/doc/spawn-fcgi/run-php"])


def test_deb_php_page_through_nginx(deb_ct):
    c = deb_ct
    # The README's systemd example, typed as it stands.
    write_file(c.root, f"/etc/spawn-fcgi/{DEB_INSTANCE}.conf", DEB_INSTANCE_CONF)
    c.exec(["systemctl", "enable", "--now", DEB_SOCKET_UNIT])
    page = fetch_page(c, URL, DEB_SERVICE)
    assert page.get("sapi") == "cgi-fcgi", page
    assert page.get("user") == "www-data", page
    assert page.get("listen_fds") == "(unset)", page
    assert unit_state(c, DEB_SERVICE) == "active"


def test_deb_systemctl_status(deb_ct):
    c = deb_ct
    p = c.exec(["systemctl", "status", "--no-pager", "--lines=0", DEB_SOCKET_UNIT,
                DEB_SERVICE], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    text = p.stdout
    for unit in ("spawn-fcgi@.socket", "spawn-fcgi@.service"):
        assert re.search(rf"Loaded: loaded \(/lib/systemd/system/{re.escape(unit)}; ", text), text
    assert re.search(r"Loaded: loaded \(/lib/systemd/system/spawn-fcgi@\.socket; enabled;",
                     text), text
    assert len(re.findall(r"Active: active \(running\)", text)) == 2, text
    assert "Listen: /run/spawn-fcgi/php.sock (Stream)" in text, text
    assert "/usr/bin/spawn-fcgi" in text or "php-cgi" in text, text


def test_deb_man_pages(deb_ct):
    c = deb_ct
    env = "MANPAGER=cat MANWIDTH=80"
    p = c.sh(f"{env} man spawn-fcgi")
    assert "SYNOPSIS" in p.stdout and f"spawn-fcgi {project_version()}" in p.stdout, p.stdout
    for page in ("spawn-fcgi.conf", "spawn-fcgi@.socket", "spawn-fcgi@.service",
                 "spawn-fcgi-supervise@.service"):
        p = c.sh(f"{env} man {shlex.quote(page)}")
        assert "spawn-fcgi" in p.stdout and "NAME" in p.stdout, (page, p.stdout)


def test_deb_bash_completion(deb_ct):
    # Loaded the way an interactive bash loads it: bash-completion's loader
    # finds it by the command's name.
    script = ("source /usr/share/bash-completion/bash_completion\n"
              "__load_completion spawn-fcgi || exit 3\n"
              "complete -p spawn-fcgi\n"
              "COMP_WORDS=(spawn-fcgi --supe); COMP_CWORD=1\n"
              "COMP_LINE='spawn-fcgi --supe'; COMP_POINT=${#COMP_LINE}\n"
              "_spawn_fcgi spawn-fcgi --supe spawn-fcgi\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    p = deb_ct.exec(["bash", "--norc", "--noprofile", "-c", script])
    lines = p.stdout.splitlines()
    assert lines[0] == "complete -F _spawn_fcgi spawn-fcgi", p.stdout
    assert lines[1:] == ["--supervise"], p.stdout


def test_deb_1_6_command_line(deb_ct):
    # The line an init script written for 1.6.4 runs: fork, PID file, return.
    c = deb_ct
    p = c.exec(["spawn-fcgi", "-a", "127.0.0.1", "-p", "9000", "-u", "www-data", "-F", "2",
                "-P", "/run/spawn-fcgi-16.pid", "--", "/usr/bin/php-cgi"], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    pids = c.exec(["cat", "/run/spawn-fcgi-16.pid"]).stdout.split()
    assert len(pids) == 2, pids
    for pid in pids:
        assert c.exec(["ps", "-o", "user=,comm=", "-p", pid]).stdout.split() == \
            ["www-data", "php-cgi"]
    c.exec(["kill"] + pids)


def test_deb_autopkgtest(deb_ct):
    """debian/tests' script, run in the container as autopkgtest would."""
    c = deb_ct
    tests = os.path.join(SOURCE_DIR, "debian", "tests")
    with open(os.path.join(tests, "control")) as f:
        names = re.findall(r"^Tests:\s*(.+)$", f.read(), re.M)
    assert names, "debian/tests/control names no test"
    for name in " ".join(names).replace(",", " ").split():
        with open(os.path.join(tests, name)) as f:
            write_file(c.root, f"/root/autopkgtest-{name}", f.read(), mode=0o755)
        p = c.exec([f"/root/autopkgtest-{name}"], check=False, timeout=BUILD_TIMEOUT)
        assert p.returncode == 0, f"{name}: {p.returncode}\n{p.stdout}{p.stderr}"


class _Outcomes:
    def __init__(self):
        self.counts = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.counts[report.outcome] = self.counts.get(report.outcome, 0) + 1


if __name__ == "__main__":
    # Run by meson: exit 77 (skipped) when everything was skipped.
    outcomes = _Outcomes()
    rc = pytest.main(["-v", "-rs", "-p", "no:cacheprovider", os.path.abspath(__file__)]
                     + sys.argv[1:], plugins=[outcomes])
    if rc == 0 and outcomes.counts.get("skipped") and not outcomes.counts.get("passed"):
        rc = 77
    sys.exit(int(rc))
