"""Fixtures for the documentation tests: the program under test, its
--help, and the man pages as built (see tests/docs/meson.build)."""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from skip_policy import (pytest_runtest_logreport,  # noqa: E402,F401
                         pytest_runtest_makereport, pytest_sessionfinish)


def _env_path(var):
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set (run the tests through meson test)",
                    pytrace=False)
    return Path(value)


@pytest.fixture(scope="session")
def spawn_fcgi():
    """The spawn-fcgi under test ($SPAWN_FCGI)."""
    path = _env_path("SPAWN_FCGI")
    if not os.access(path, os.X_OK):
        pytest.fail(f"SPAWN_FCGI={path} is not executable", pytrace=False)
    return path


@pytest.fixture(scope="session")
def source_dir():
    return _env_path("SPAWN_FCGI_SOURCE_DIR")


@pytest.fixture(scope="session")
def man_dir():
    """Where the build puts the man pages ($MAN_DIR)."""
    path = _env_path("MAN_DIR")
    if not (path / "spawn-fcgi.1").is_file():
        pytest.fail(f"{path}/spawn-fcgi.1 was not built: is subdir('man') "
                    "in the top-level meson.build?", pytrace=False)
    return path


@dataclass(frozen=True)
class HelpOption:
    section: str      # "Socket", "Privileges (root only)", ...
    tag: str          # "-s, --socket=PATH", as --help prints it
    short: str        # "s", or "" when there is none
    long: str         # "socket"


def parse_help(text):
    """The options of `spawn-fcgi --help`, in order."""
    options = []
    section = None
    for line in text.splitlines():
        m = re.match(r"^(\S.*):$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^ {2,6}(-\S.*?)(?: {2,}\S.*)?$", line)
        if not m or section is None:
            continue
        tag = m.group(1).strip()
        opt = re.match(r"^(?:-(.), )?--([a-z][a-z-]*)", tag)
        assert opt, f"unexpected option line in --help: {line!r}"
        options.append(HelpOption(section, tag, opt.group(1) or "",
                                  opt.group(2)))
    return options


@pytest.fixture(scope="session")
def help_text(spawn_fcgi):
    p = subprocess.run([str(spawn_fcgi), "--help"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="session")
def help_options(help_text):
    options = parse_help(help_text)
    # A sanity check of the parser itself, so that an empty list cannot
    # make the comparisons pass.
    longs = {o.long for o in options}
    assert {"socket", "user", "limits", "fork", "help"} <= longs, options
    return options


# Options that only make sense on the command line: not config file keys.
COMMAND_LINE_ONLY = {"help", "version", "config", "check", "explain-limits",
                     "file", "status"}
# Keys that exist only in the config file.
CONFIG_ONLY = {"exec", "environment"}


# ---------------------------------------------------------------------------
# roff

def roff_to_text(s):
    """The characters a roff line shows, without fonts and escapes."""
    s = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", s)
    s = s.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")
    s = s.replace("\\(aq", "'").replace("\\(dq", '"').replace("\\c", "")
    s = re.sub(r"\\\((em|en)", "-", s)
    s = s.replace("\\ ", " ")
    return s


def roff_macro_text(line):
    """The text of a macro line such as `.BR \\-s , \\-\\-socket`: the
    arguments joined (font-alternating macros put no space between)."""
    m = re.match(r"^\.(B|I|BR|RB|BI|IB|IR|RI)\s+(.*)$", line)
    if not m:
        return roff_to_text(line)
    args = re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', m.group(2))
    words = [a or b for a, b in args]
    joiner = " " if m.group(1) in ("B", "I") else ""
    return roff_to_text(joiner.join(words))


def man_sections(text):
    """{".SH title": [lines]} of a roff page."""
    sections = {}
    current = None
    for line in text.splitlines():
        m = re.match(r'^\.SH\s+"?(.*?)"?\s*$', line)
        if m:
            current = m.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections
