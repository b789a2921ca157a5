"""Helpers shared by the integration tests of spawn-fcgi.

Everything here talks to real programs: the spawn-fcgi under test, Debian's
spawn-fcgi 1.6.4 as a peer, libfcgi's cgi-fcgi client, nginx, curl, php-cgi
and our FastCGI state application (tests/app/fcgi-state-app.c).

Processes are started through a ProcessTracker. The pytest process makes
itself a child subreaper, so the children that spawn-fcgi forks and orphans
(they call setsid) are re-parented to it and can always be found and killed
at teardown.
"""

import ctypes
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SPAWN_FCGI = os.environ.get("SPAWN_FCGI", "")
FCGI_STATE_APP = os.environ.get("FCGI_STATE_APP", "")
PEER_SPAWN_FCGI = os.environ.get("PEER_SPAWN_FCGI", "/usr/bin/spawn-fcgi")
CGI_FCGI = shutil.which("cgi-fcgi") or "/usr/bin/cgi-fcgi"
PHP_CGI = "/usr/bin/php-cgi"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CURL = shutil.which("curl") or "/usr/bin/curl"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"

# Longest path that fits in sockaddr_un.sun_path with its terminating NUL.
SUN_PATH_MAX = 107

DEFAULT_TIMEOUT = 30
# Guard for commands that are expected to fail at once (not a speed check:
# it only keeps a hanging command from holding the suite).
ERROR_TIMEOUT = 15


def is_root():
    return os.geteuid() == 0


# ---------------------------------------------------------------------------
# processes

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Make this process adopt every orphaned descendant."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _proc_stat(pid):
    """(ppid, state) of pid from /proc/PID/stat, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return int(rest[1]), rest[0]


def descendants(root=None):
    """Pids of all live (non-zombie) descendants of root (default: us)."""
    root = os.getpid() if root is None else root
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _proc_stat(int(name))
        if st is None or st[1] == "Z":
            continue
        children.setdefault(st[0], []).append(int(name))
    found, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def reap_zombies():
    """Collect every exited child without blocking."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree(root=None, timeout=10):
    """SIGKILL every descendant of root (default: us) until none is left.
    Zombies are reaped only for root=None (teardown), so that the exit
    status of a tracked Popen is never stolen during a test."""
    deadline = time.monotonic() + timeout
    while True:
        pids = descendants(root)
        if not pids:
            if root is None:
                reap_zombies()
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if root is None:
            reap_zombies()
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes survive SIGKILL: {pids}")
        time.sleep(0.02)


def pid_alive(pid):
    st = _proc_stat(pid)
    return st is not None and st[1] != "Z"


def pids_of_exe(exe):
    """Live pids whose /proc/PID/exe is the file exe."""
    want = os.path.realpath(exe)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            target = os.readlink(f"/proc/{name}/exe")
        except OSError:
            continue
        if target == want and pid_alive(int(name)):
            found.append(int(name))
    return sorted(found)


def fd_target(pid, fd):
    """readlink of /proc/PID/fd/FD, or None."""
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None


@dataclass
class Result:
    """Outcome of a finished command."""
    args: list
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self):
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def stdout_lines(self):
        return [line for line in self.stdout.splitlines() if line.strip()]

    def __str__(self):
        return (f"command: {shlex.join(map(str, self.args))}\n"
                f"status: {self.returncode}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")


class Started:
    """A process started in the background, output going to files."""

    def __init__(self, args, proc, stdout_path, stderr_path):
        self.args = args
        self.proc = proc
        self.pid = proc.pid
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    @property
    def stdout(self):
        return Path(self.stdout_path).read_text(errors="replace")

    @property
    def stderr(self):
        return Path(self.stderr_path).read_text(errors="replace")

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout=DEFAULT_TIMEOUT):
        return self.proc.wait(timeout=timeout)

    def result(self, timeout=DEFAULT_TIMEOUT):
        rc = self.wait(timeout)
        return Result(self.args, rc, self.stdout, self.stderr)

    def describe(self):
        rc = self.proc.poll()
        return (f"command: {shlex.join(map(str, self.args))}\n"
                f"status: {'running' if rc is None else rc}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")


class ProcessTracker:
    """Starts processes and kills everything they left behind at the end."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.started = []
        self._n = 0

    def _outfiles(self):
        self._n += 1
        out = self.workdir / f".out-{self._n}"
        err = self.workdir / f".err-{self._n}"
        return out, err

    def start(self, args, env=None, pass_fds=(), cwd=None, stdin=None,
              **popen_kw):
        """Start args in the background; stdout/stderr go to files."""
        args = [str(a) for a in args]
        out, err = self._outfiles()
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=fo, stderr=fe, env=env, pass_fds=pass_fds, cwd=cwd,
                **popen_kw)
        s = Started(args, proc, out, err)
        self.started.append(s)
        return s

    def run(self, args, timeout=DEFAULT_TIMEOUT, env=None, pass_fds=(),
            cwd=None, stdin=None, **popen_kw):
        """Run args to completion (stdout/stderr through files, so that
        children keeping them open cannot block us) and return a Result.
        On timeout the process tree is killed and TimeoutError raised."""
        s = self.start(args, env=env, pass_fds=pass_fds, cwd=cwd,
                       stdin=stdin, **popen_kw)
        try:
            rc = s.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(s.pid)
            s.proc.kill()
            s.proc.wait()
            raise TimeoutError(
                f"timed out after {timeout}s:\n{s.describe()}") from None
        return Result(s.args, rc, s.stdout, s.stderr)

    def cleanup(self):
        for s in self.started:
            if s.proc.poll() is None:
                try:
                    s.proc.kill()
                except ProcessLookupError:
                    pass
        kill_tree()
        for s in self.started:
            try:
                s.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def base_env(**extra):
    """A small, predictable environment for the programs we start."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    }
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def wait_until(predicate, timeout=10, interval=0.02, what="condition"):
    """Poll predicate until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# addresses and sockets

def parse_addr(addr):
    """('unix', path) or (family, (host, port)) for a cgi-fcgi style address:
    a path, host:port, or [v6]:port."""
    addr = str(addr)
    if addr.startswith("/") or addr.startswith("."):
        return socket.AF_UNIX, addr
    if addr.startswith("["):
        host, _, port = addr[1:].partition("]:")
        return socket.AF_INET6, (host, int(port))
    host, _, port = addr.rpartition(":")
    return socket.AF_INET, (host, int(port))


def connect(addr, timeout=5):
    """A connected socket to addr (see parse_addr); raises OSError."""
    family, target = parse_addr(addr)
    if family == socket.AF_UNIX:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(target)
        except OSError:
            s.close()
            raise
        return s
    return socket.create_connection(target, timeout=timeout)


def can_connect(addr):
    try:
        connect(addr, timeout=2).close()
        return True
    except OSError:
        return False


def wait_for_socket(addr, timeout=15, proc=None):
    """Wait until a connect() to addr succeeds. If proc (a Started) exits
    first, fail with its output."""
    deadline = time.monotonic() + timeout
    while True:
        if can_connect(addr):
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"process exited before {addr} accepted:\n{proc.describe()}")
        if time.monotonic() > deadline:
            extra = f"\n{proc.describe()}" if proc is not None else ""
            raise TimeoutError(f"{addr} does not accept{extra}")
        time.sleep(0.02)


def wait_for_listener(path, proc=None, timeout=15):
    """Wait until a socket listens at the unix path (as /proc/net/unix
    shows), without connecting: systemd-socket-activate starts its program
    at the first connection, and creates the file before it listens.  If
    proc (a Started) exits first, fail with its output."""
    def listening():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited before {path} listened:"
                                 f"\n{proc.describe()}")
        return unix_listener_inodes(path)
    wait_until(listening, timeout=timeout, what=f"a listener on {path}")


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago, from the ephemeral range."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def socket_inode(path_or_fd_target):
    """The inode number in a 'socket:[N]' readlink target, or None."""
    t = path_or_fd_target or ""
    if t.startswith("socket:[") and t.endswith("]"):
        return int(t[8:-1])
    return None


def make_stale_socket(path):
    """Leave a unix socket file at path that nobody listens on."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


def listening_unix_socket(path):
    """A socket listening at path (the caller closes it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(8)
    return s


# sh -c PASS_ON_FD3 sh COMMAND...: runs COMMAND with the socket given as
# stdin passed on fd 3 through LISTEN_FDS, as systemd passes one.
PASS_ON_FD3 = ('exec 3<&0 0</dev/null; '
               'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=app exec "$@"')


def passing_on_fd3(argv):
    """argv run with stdin passed on fd 3 (see PASS_ON_FD3)."""
    return ["/bin/sh", "-c", PASS_ON_FD3, "sh"] + [str(a) for a in argv]


# ---------------------------------------------------------------------------
# FastCGI requests

@dataclass
class Response:
    """A CGI-style response: headers (lower-cased names) and body bytes."""
    raw: bytes
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    stderr: bytes = b""

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def status(self):
        s = self.headers.get("status", "200")
        return int(s.split()[0])


def parse_cgi_response(raw, stderr=b""):
    sep = raw.find(b"\r\n\r\n")
    seplen = 4
    alt = raw.find(b"\n\n")
    if sep < 0 or (0 <= alt < sep):
        sep, seplen = alt, 2
    if sep < 0:
        return Response(raw=raw, headers={}, body=raw, stderr=stderr)
    headers = {}
    for line in raw[:sep].decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(raw=raw, headers=headers, body=raw[sep + seplen:],
                    stderr=stderr)


def request_params(query="", method="GET", script="/state", extra=None):
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "spawn-fcgi-tests",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": method,
        "SCRIPT_FILENAME": str(script),
        "SCRIPT_NAME": "/" + os.path.basename(str(script)),
        "REQUEST_URI": "/" + os.path.basename(str(script))
                       + ("?" + query if query else ""),
        "QUERY_STRING": query,
        "REDIRECT_STATUS": "200",
    }
    if extra:
        params.update({k: str(v) for k, v in extra.items()})
    return params


def fcgi_request(addr, query="", method="GET", script="/state", extra=None,
                 timeout=15):
    """One request through libfcgi's real client, cgi-fcgi -bind -connect.
    addr is a socket path or host:port (cgi-fcgi resolves IPv4 only).
    Raises AssertionError if cgi-fcgi fails."""
    env = base_env()
    env.update(request_params(query, method, script, extra))
    try:
        p = subprocess.run([CGI_FCGI, "-bind", "-connect", str(addr)],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"cgi-fcgi to {addr} timed out") from e
    if p.returncode != 0 or not p.stdout:
        raise AssertionError(
            f"cgi-fcgi -bind -connect {addr} failed: status {p.returncode}\n"
            f"stdout: {p.stdout!r}\nstderr: {p.stderr!r}")
    return parse_cgi_response(p.stdout, p.stderr)


# A minimal FastCGI client (for IPv6, which cgi-fcgi cannot reach).
_FCGI_BEGIN_REQUEST, _FCGI_END_REQUEST = 1, 3
_FCGI_PARAMS, _FCGI_STDIN, _FCGI_STDOUT, _FCGI_STDERR = 4, 5, 6, 7


def _fcgi_record(rtype, content, request_id=1):
    return struct.pack("!BBHHBx", 1, rtype, request_id, len(content), 0) \
        + content


def _fcgi_len(n):
    return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)


def fcgi_request_raw(addr, query="", method="GET", script="/state",
                     extra=None, stdin=b"", timeout=15):
    """The same request as fcgi_request, spoken directly over a socket;
    addr may be a path, host:port or [v6]:port."""
    params = request_params(query, method, script, extra)
    if stdin:
        params["CONTENT_LENGTH"] = str(len(stdin))
    body = b"".join(_fcgi_len(len(k.encode())) + _fcgi_len(len(v.encode()))
                    + k.encode() + v.encode() for k, v in params.items())
    msg = _fcgi_record(_FCGI_BEGIN_REQUEST, struct.pack("!HB5x", 1, 0))
    for i in range(0, len(body), 65535):
        msg += _fcgi_record(_FCGI_PARAMS, body[i:i + 65535])
    msg += _fcgi_record(_FCGI_PARAMS, b"")
    for i in range(0, len(stdin), 65535):
        msg += _fcgi_record(_FCGI_STDIN, stdin[i:i + 65535])
    msg += _fcgi_record(_FCGI_STDIN, b"")
    out, err = b"", b""
    with connect(addr, timeout=timeout) as s:
        s.sendall(msg)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError(
                    f"connection to {addr} closed before FCGI_END_REQUEST")
            buf += chunk
            while len(buf) >= 8:
                _, rtype, _, clen, plen = struct.unpack("!BBHHB", buf[:7])
                if len(buf) < 8 + clen + plen:
                    break
                content = buf[8:8 + clen]
                buf = buf[8 + clen + plen:]
                if rtype == _FCGI_STDOUT:
                    out += content
                elif rtype == _FCGI_STDERR:
                    err += content
                elif rtype == _FCGI_END_REQUEST:
                    return parse_cgi_response(out, err)


# ---------------------------------------------------------------------------
# the state application's answer

MULTI_KEYS = ("fd", "startup_fd", "env", "arg")


def _unescape(v):
    if "\\" not in v:
        return v
    out, i = [], 0
    while i < len(v):
        c = v[i]
        if c == "\\" and i + 1 < len(v):
            n = v[i + 1]
            if n == "n":
                out.append("\n"); i += 2; continue
            if n == "r":
                out.append("\r"); i += 2; continue
            if n == "\\":
                out.append("\\"); i += 2; continue
            if n == "x" and i + 3 < len(v):
                out.append(chr(int(v[i + 2:i + 4], 16))); i += 4; continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_state(body):
    """The state app's body as a dict. Keys in MULTI_KEYS are always lists;
    any other key seen more than once becomes a list too."""
    if isinstance(body, Response):
        body = body.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    state = {k: [] for k in MULTI_KEYS}
    for line in body.splitlines():
        if not line:
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            key, value = line.rstrip(":"), ""
        value = _unescape(value)
        if key in MULTI_KEYS:
            state[key].append(value)
        elif key in state:
            if not isinstance(state[key], list):
                state[key] = [state[key]]
            state[key].append(value)
        else:
            state[key] = value
    if "pid" not in state:
        raise AssertionError(f"not a state app answer:\n{body}")
    return state


def state_env(state):
    """The app's environment as a dict."""
    return dict(e.partition("=")[::2] for e in state["env"])


def state_fds(state, startup=True):
    """{fd: readlink target} at startup (default) or at request time."""
    out = {}
    for line in state["startup_fd" if startup else "fd"]:
        n, _, target = line.partition(" ")
        out[int(n)] = target
    return out


def state_groups(state):
    return [int(g) for g in state.get("groups", "").split()]


def state_rlimit(state, name):
    """(soft, hard) with None for unlimited."""
    soft, hard = state[f"rlimit_{name}"].split()
    conv = lambda v: None if v == "unlimited" else int(v)  # noqa: E731
    return conv(soft), conv(hard)


def sigset(hexmask):
    """Signal numbers in a /proc/PID/status Sig* mask."""
    m = int(hexmask, 16)
    return {n for n in range(1, 65) if m & (1 << (n - 1))}


def query_state(addr, query="", **kw):
    """Ask the state app at addr (cgi-fcgi for paths and IPv4, the raw
    client for [v6]) and parse the answer."""
    family, _ = parse_addr(addr)
    if family == socket.AF_INET6:
        r = fcgi_request_raw(addr, query=query, **kw)
    else:
        r = fcgi_request(addr, query=query, **kw)
    assert r.status == 200, r
    return parse_state(r.body)


# ---------------------------------------------------------------------------
# a private /etc for privilege tests

FIXTURE_USERS = [
    # name, uid, gid, home
    ("webuser", 1500, 1500, "/nonexistent"),
    ("sockowner", 1501, 1501, "/nonexistent"),
]
FIXTURE_GROUPS = [
    # name, gid, extra members
    ("webuser", 1500, []),
    ("sockowner", 1501, []),
    ("staff2", 1600, ["webuser"]),
    ("sockgrp", 1700, ["sockowner"]),
]
# existing groups that get extra members
FIXTURE_GROUP_MEMBERS = {"www-data": ["webuser"]}


class FakeEtc:
    """Fixture passwd/group (and optionally security/) files, bound over the
    real ones only inside a private mount namespace (see wrap)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.passwd = self.dir / "passwd"
        self.group = self.dir / "group"
        self.security = None
        self._write_passwd()
        self._write_group()

    def _write_passwd(self):
        lines = Path("/etc/passwd").read_text().splitlines()
        names = {l.split(":")[0] for l in lines if l}
        for name, uid, gid, home in FIXTURE_USERS:
            if name not in names:
                lines.append(f"{name}:x:{uid}:{gid}:{name}:{home}:/bin/sh")
        self.passwd.write_text("\n".join(lines) + "\n")
        os.chmod(self.passwd, 0o644)

    def _write_group(self):
        out = []
        names = set()
        for line in Path("/etc/group").read_text().splitlines():
            if not line:
                continue
            f = line.split(":")
            names.add(f[0])
            if f[0] in FIXTURE_GROUP_MEMBERS and len(f) == 4:
                members = [m for m in f[3].split(",") if m]
                members += FIXTURE_GROUP_MEMBERS[f[0]]
                f[3] = ",".join(members)
            out.append(":".join(f))
        for name, gid, members in FIXTURE_GROUPS:
            if name not in names:
                out.append(f"{name}:x:{gid}:{','.join(members)}")
        self.group.write_text("\n".join(out) + "\n")
        os.chmod(self.group, 0o644)

    def add_user(self, name, uid, gid, home="/nonexistent"):
        with open(self.passwd, "a") as f:
            f.write(f"{name}:x:{uid}:{gid}:{name}:{home}:/bin/sh\n")

    def add_group(self, name, gid, members=()):
        with open(self.group, "a") as f:
            f.write(f"{name}:x:{gid}:{','.join(members)}\n")

    def with_security(self, copy_real=True):
        """Create (a copy of /etc/security as) a fixture security dir that
        wrap() binds over /etc/security; returns its path."""
        self.security = self.dir / "security"
        if not self.security.exists():
            if copy_real and Path("/etc/security").is_dir():
                shutil.copytree("/etc/security", self.security, symlinks=True)
            else:
                self.security.mkdir()
                (self.security / "limits.d").mkdir()
                (self.security / "limits.conf").write_text("")
        return self.security

    def wrap(self, args):
        """A command line that runs args as root in a private mount
        namespace where the fixture files replace the real ones."""
        binds = [(self.passwd, "/etc/passwd"), (self.group, "/etc/group")]
        if self.security is not None:
            binds.append((self.security, "/etc/security"))
        script = " && ".join(
            f"mount --bind {shlex.quote(str(src))} {dst}"
            for src, dst in binds) + ' && exec "$@"'
        return [UNSHARE, "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", script, "sh"] + [str(a) for a in args]


def user_in(fake, name):
    """(uid, gid) of a fixture user as written in fake's passwd."""
    for line in fake.passwd.read_text().splitlines():
        f = line.split(":")
        if f[0] == name:
            return int(f[2]), int(f[3])
    raise KeyError(name)


# ---------------------------------------------------------------------------
# nginx and curl

NGINX_CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
{user_line}
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        root {root};
{locations}
    }}
}}
"""

FASTCGI_LOCATION = """\
        location / {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param REDIRECT_STATUS 200;
            fastcgi_pass {fastcgi_pass};
        }}"""


class Nginx:
    """nginx with a private configuration under dir, passing every request
    to fastcgi_pass ("unix:/path" or "127.0.0.1:9000"), or with the
    location blocks given instead."""

    def __init__(self, tracker, directory, fastcgi_pass, root="/",
                 user=None, locations=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        if user is None and is_root():
            user = "root root"
        if locations is None:
            locations = FASTCGI_LOCATION.format(fastcgi_pass=fastcgi_pass)
        conf = NGINX_CONF.format(
            dir=self.dir, port=self.port, root=root, locations=locations,
            user_line=f"user {user};" if user else "")
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(conf)
        self.proc = tracker.start(
            [NGINX, "-p", self.dir, "-e", self.dir / "error.log",
             "-c", self.conf, "-g", "daemon off;"], env=base_env())
        wait_for_socket(f"127.0.0.1:{self.port}", proc=self.proc)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def error_log(self):
        p = self.dir / "error.log"
        return p.read_text(errors="replace") if p.exists() else ""


def curl(url, timeout=15):
    """GET url with curl; returns (http_status, body bytes)."""
    p = subprocess.run([CURL, "-sS", "--max-time", str(timeout),
                        "-o", "-", "-w", "\n%{http_code}", url],
                       capture_output=True, timeout=timeout + 5,
                       env=base_env())
    if p.returncode != 0:
        raise AssertionError(f"curl {url} failed: {p.returncode} "
                             f"{p.stderr.decode(errors='replace')}")
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), body


# ---------------------------------------------------------------------------
# misc

def short_tmpdir(prefix="sf-"):
    """A fresh directory with a short path (unix socket paths are limited),
    readable by everyone so that dropped-privilege apps can reach it."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return Path(d)


def reachable_by_everyone(path):
    """Whether any user may execute path: every directory on the way is
    searchable by others and the file readable and executable by them."""
    p = Path(path).resolve()
    if any(not os.stat(d).st_mode & stat.S_IXOTH for d in p.parents):
        return False
    mode = os.stat(p).st_mode
    return bool(mode & stat.S_IXOTH and mode & stat.S_IROTH)


def reachable_copy(path, directory):
    """path itself when every user can execute it, else a copy in
    directory (made world-readable).  Tests drop privileges to throwaway
    users, who cannot reach a build in a 0700 home such as /root."""
    if not path or not os.path.exists(path) or reachable_by_everyone(path):
        return path
    directory = Path(directory)
    directory.mkdir(mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    copy = directory / Path(path).name
    shutil.copy2(path, copy)
    os.chmod(copy, 0o755)
    return str(copy)


def file_snapshot(path):
    """What must not change about a path: type, mode, inode, content."""
    st = os.lstat(path)
    snap = {"mode": st.st_mode, "ino": st.st_ino, "dev": st.st_dev}
    p = Path(path)
    if p.is_symlink():
        snap["link"] = os.readlink(path)
    elif p.is_file():
        snap["content"] = p.read_bytes()
    elif p.is_dir():
        snap["entries"] = sorted(os.listdir(path))
    return snap


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def unix_listener_inodes(path):
    """Socket inodes (as in 'socket:[N]') of the sockets listening at the
    unix path, from /proc/net/unix."""
    found = []
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) < 8:
                continue
            flags = int(parts[3], 16)
            if parts[7] == str(path) and flags & 0x10000:  # __SO_ACCEPTCON
                found.append(int(parts[6]))
    return found


def listen_backlog(local):
    """The backlog of the listening socket whose local address is local
    (a unix path or 'host:port' as ss prints it), from ss (Send-Q)."""
    for opt in ("-xlnH", "-tlnH"):
        p = subprocess.run(["ss", opt], capture_output=True, text=True,
                           env=base_env())
        for line in p.stdout.splitlines():
            f = line.split()
            if opt == "-xlnH" and len(f) >= 5 and f[4] == str(local):
                return int(f[3])
            if opt == "-tlnH" and len(f) >= 4 and f[3] == str(local):
                return int(f[2])
    return None


def app_pids(app_path):
    """Live descendants of this process whose executable is app_path."""
    want = os.path.realpath(app_path)
    out = []
    for pid in descendants():
        try:
            if os.readlink(f"/proc/{pid}/exe") == want:
                out.append(pid)
        except OSError:
            pass
    return sorted(out)


SPAWNED_RE = r"^spawn-fcgi: child spawned successfully: PID: (\d+)$"


def spawned_pids(stdout):
    """Pids announced by fork mode on stdout (1.6 format)."""
    return [int(m) for m in re.findall(SPAWNED_RE, stdout, re.M)]


HINT_RE = r"^Try '.*--help' for more information\.$"


def assert_one_error_line(result, *needles):
    """stderr holds exactly one error: one line 'spawn-fcgi: ...' containing
    every needle (case-insensitive). Besides it only warnings
    ('spawn-fcgi: warning...', e.g. about running as root) and one final
    "Try '... --help' ..." hint are tolerated; no help text, no
    continuation lines. Returns the error line."""
    lines = result.stderr_lines
    if lines and re.match(HINT_RE, lines[-1]):
        lines = lines[:-1]
    errors = [line for line in lines
              if not line.lower().startswith("spawn-fcgi: warning")]
    assert len(errors) == 1, f"expected one error line\n{result}"
    line = errors[0]
    assert line.startswith("spawn-fcgi: "), f"bad error line\n{result}"
    for n in needles:
        assert n.lower() in line.lower(), f"{n!r} not in error\n{result}"
    return line


def broken_libsystemd(tmp):
    """A directory for LD_LIBRARY_PATH whose libsystemd.so.0 is no library:
    spawn-fcgi, which opens libsystemd only when it needs it, then cannot."""
    d = tmp / "broken-lib"
    d.mkdir(exist_ok=True)
    (d / "libsystemd.so.0").write_text("not a shared object\n")
    return str(d)
