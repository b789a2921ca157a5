"""What `meson install` puts where, from a build configured as a
distribution package would configure it (--prefix=/usr --sysconfdir=/etc),
and that `meson dist` makes a tarball that builds and installs the same.

Each test configures and builds its own tree under /tmp from the source
directory, so it does not depend on how the build running it was set up."""

import errno
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

MESON = os.environ.get("MESON") or shutil.which("meson") or "meson"
PREFIX_ARGS = ["--prefix=/usr", "--sysconfdir=/etc"]
TIMEOUT = 600

MAN_PAGES = [
    "/usr/share/man/man1/spawn-fcgi.1",
    "/usr/share/man/man5/spawn-fcgi.conf.5",
    "/usr/share/man/man8/spawn-fcgi@.service.8",
    "/usr/share/man/man8/spawn-fcgi@.socket.8",
    "/usr/share/man/man8/spawn-fcgi-supervise@.service.8",
    "/usr/share/man/man8/spawn-fcgi-supervise@.socket.8",
]


def run(args, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       timeout=TIMEOUT, stdin=subprocess.DEVNULL, **kw)
    assert p.returncode == 0, (
        f"{' '.join(map(str, args))} failed ({p.returncode}):\n"
        f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def pkg_config_var(package, variable, defines=()):
    if shutil.which("pkg-config") is None:
        return None
    p = subprocess.run(["pkg-config", *[f"--define-variable={d}" for d in defines],
                        f"--variable={variable}", package],
                       capture_output=True, text=True, timeout=60)
    value = p.stdout.strip()
    return value if p.returncode == 0 and value else None


def unit_dir():
    """Where the units go: systemd's own answer, as on Debian 12
    (/lib/systemd/system), else <prefix>/lib/systemd/system."""
    return pkg_config_var("systemd", "systemdsystemunitdir") or "/usr/lib/systemd/system"


def completion_dir():
    return (pkg_config_var("bash-completion", "completionsdir",
                           ["datadir=/usr/share"])
            or "/usr/share/bash-completion/completions")


def expected_files(source_dir):
    units = sorted(p.name for p in (source_dir / "units").iterdir()
                   if p.suffix in (".service", ".socket"))
    assert {"spawn-fcgi@.service", "spawn-fcgi@.socket"} <= set(units), units
    return {
        "/usr/bin/spawn-fcgi",
        *(f"{unit_dir()}/{u}" for u in units),
        *MAN_PAGES,
        f"{completion_dir()}/spawn-fcgi",
        "/etc/spawn-fcgi/example.conf.sample",
        "/etc/spawn-fcgi/php.conf.sample",
    }


def installed_files(dest):
    """Absolute paths of everything but directories under dest."""
    found = set()
    for root, dirs, files in os.walk(dest):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.add("/" + os.path.relpath(os.path.join(root, name), dest))
    return found


def build_and_install(source, work, name):
    build = work / f"{name}-build"
    dest = work / f"{name}-dest"
    run([MESON, "setup", *PREFIX_ARGS, build, source])
    run([MESON, "compile", "-C", build])
    run([MESON, "install", "-C", build, "--no-rebuild", "--destdir", dest])
    return build, dest


@pytest.fixture(scope="module")
def work():
    d = Path(tempfile.mkdtemp(prefix="sf-install-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(source_dir, work):
    """(build dir, destdir) of a build of the source tree."""
    return build_and_install(source_dir, work, "tree")


# ---------------------------------------------------------------------------
# meson install


def test_exact_file_list(installed, source_dir):
    _, dest = installed
    have = installed_files(dest)
    want = expected_files(source_dir)
    assert have - want == set(), "installed but not expected"
    assert want - have == set(), "expected but not installed"


def test_modes_and_no_privilege_bits(installed):
    _, dest = installed
    for path in installed_files(dest):
        st = os.lstat(dest / path.lstrip("/"))
        assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file"
        assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), (
            f"{path} is setuid or setgid")
        want = 0o755 if path == "/usr/bin/spawn-fcgi" else 0o644
        assert stat.S_IMODE(st.st_mode) == want, f"{path}: {oct(st.st_mode)}"
    binary = dest / "usr/bin/spawn-fcgi"
    try:
        os.getxattr(binary, "security.capability")
        pytest.fail("the binary has file capabilities")
    except OSError as e:
        assert e.errno in (errno.ENODATA, errno.ENOTSUP), e


def test_installed_binary_runs(installed):
    _, dest = installed
    p = run([dest / "usr/bin/spawn-fcgi", "--version"])
    assert p.stdout.startswith("spawn-fcgi ")


def test_units_start_the_installed_binary(installed):
    _, dest = installed
    services = list((dest / unit_dir().lstrip("/")).glob("*.service"))
    assert services
    for unit in services:
        text = unit.read_text()
        assert "@bindir@" not in text, unit
        exec_start = [l for l in text.splitlines() if l.startswith("ExecStart=")]
        assert exec_start and all(l.startswith("ExecStart=/usr/bin/spawn-fcgi ")
                                  for l in exec_start), (unit, exec_start)


def test_man_pages_are_filled_in(installed):
    _, dest = installed
    version = run([dest / "usr/bin/spawn-fcgi", "--version"]).stdout.split()[1]
    for page in MAN_PAGES[:3]:
        text = (dest / page.lstrip("/")).read_text()
        assert "@VERSION@" not in text and "@UNITDIR@" not in text, page
        assert f'"spawn-fcgi {version}"' in text, page
    units_page = (dest / MAN_PAGES[2].lstrip("/")).read_text()
    assert f".I {unit_dir()}/spawn" in units_page.replace("\\-", "-")


def test_man_page_aliases_resolve(installed):
    _, dest = installed
    man = dest / "usr/share/man"
    for page in MAN_PAGES[3:]:
        text = (dest / page.lstrip("/")).read_text()
        assert text.startswith(".so "), page
        assert (man / text.split()[1]).is_file(), page


def test_installed_copies_are_the_sources(installed, source_dir):
    _, dest = installed
    assert (dest / completion_dir().lstrip("/") / "spawn-fcgi").read_bytes() == \
        (source_dir / "completion" / "spawn-fcgi").read_bytes()
    assert (dest / "etc/spawn-fcgi/example.conf.sample").read_bytes() == \
        (source_dir / "etc" / "spawn-fcgi" / "example.conf").read_bytes()


# ---------------------------------------------------------------------------
# meson dist


def git_head(source_dir):
    """Skip, saying why, when meson dist cannot work here."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: meson dist needs it")
    p = subprocess.run(["git", "-C", str(source_dir), "rev-parse",
                        "--is-inside-work-tree"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"{source_dir} is not a git work tree: meson dist needs "
                    "a git repository with at least one commit")
    p = subprocess.run(["git", "-C", str(source_dir), "rev-parse", "--verify",
                        "-q", "HEAD"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("the git repository has no commit yet: meson dist needs "
                    "a git repository with at least one commit")
    return p.stdout.strip()


def test_dist_tarball_builds_and_installs_the_same(installed, source_dir, work):
    git_head(source_dir)
    build, tree_dest = installed
    run([MESON, "dist", "-C", build, "--no-tests", "--allow-dirty",
         "--formats", "xztar"])
    tarballs = list((build / "meson-dist").glob("spawn-fcgi-*.tar.xz"))
    assert len(tarballs) == 1, tarballs
    unpacked = work / "dist"
    with tarfile.open(tarballs[0]) as tar:
        names = tar.getnames()
        tar.extractall(unpacked)
    top = tarballs[0].name[:-len(".tar.xz")]
    for needed in ["meson.build", "README.md", "COPYING", "man/meson.build",
                   "completion/spawn-fcgi", "tests/docs/meson.build"]:
        assert f"{top}/{needed}" in names, (
            f"{needed} is not in the tarball (not committed?)")
    _, dist_dest = build_and_install(unpacked / top, work, "dist")
    tree_files = installed_files(tree_dest)
    dist_files = installed_files(dist_dest)
    assert tree_files - dist_files == set(), (
        "installed from the tree but not from the tarball (not committed?)")
    assert dist_files - tree_files == set()
    run([dist_dest / "usr/bin/spawn-fcgi", "--version"])
