"""Bash completion: sourced into a real bash, the function is called the
way bash calls it (COMP_WORDS, COMP_CWORD) and COMPREPLY is checked."""

import grp
import os
import pwd
import shlex
import subprocess
from pathlib import Path

import pytest

BASH_COMPLETION_MAIN = Path("/usr/share/bash-completion/bash_completion")


@pytest.fixture(scope="session")
def completion_file():
    value = os.environ.get("BASH_COMPLETION_FILE")
    if not value:
        pytest.fail("BASH_COMPLETION_FILE is not set (run the tests through "
                    "meson test)", pytrace=False)
    return Path(value)


def complete(completion_file, words, with_bash_completion=False, cwd=None):
    """COMPREPLY for the command line `words`, the last word being the one
    completed (use "" for an empty word)."""
    setup = ""
    if with_bash_completion:
        setup = f"source {shlex.quote(str(BASH_COMPLETION_MAIN))}\n"
    script = (
        "set -u\n" + setup +
        f"source {shlex.quote(str(completion_file))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={shlex.quote(' '.join(words))}\n"
        "COMP_POINT=${#COMP_LINE}\n"
        "COMPREPLY=()\n"
        "_spawn_fcgi\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    # bash-completion's own scripts are not written for set -u.
    if with_bash_completion:
        script = script.replace("set -u\n", "")
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                       capture_output=True, text=True, timeout=60, cwd=cwd,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                            "HOME": "/nonexistent", "LANG": "C.UTF-8"})
    assert p.returncode == 0, p.stderr
    if not with_bash_completion:
        assert p.stderr == "", p.stderr
    return [l for l in p.stdout.splitlines() if l]


def test_is_registered_for_spawn_fcgi(completion_file):
    p = subprocess.run(["bash", "--norc", "-c",
                        f"source {shlex.quote(str(completion_file))}; "
                        "complete -p spawn-fcgi"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "complete -F _spawn_fcgi spawn-fcgi"


def test_dash_offers_exactly_the_options_of_help(completion_file, help_options):
    offered = set(complete(completion_file, ["spawn-fcgi", "-"]))
    expected = {"--" + o.long for o in help_options}
    expected |= {"-" + o.short for o in help_options if o.short}
    assert offered - expected == set(), "offered but not in --help"
    assert expected - offered == set(), "in --help but not offered"


def test_long_option_prefix(completion_file):
    assert complete(completion_file, ["spawn-fcgi", "--soc"]) == [
        "--socket", "--socket-user", "--socket-group", "--socket-before-chroot"]
    assert complete(completion_file, ["spawn-fcgi", "--limits-d"]) == [
        "--limits-dir"]


@pytest.mark.parametrize("option", ["-u", "--user", "-U", "--socket-user"])
def test_users(completion_file, option):
    offered = complete(completion_file, ["spawn-fcgi", option, "ro"])
    assert "root" in offered
    users = {p.pw_name for p in pwd.getpwall()}
    assert set(offered) <= users


@pytest.mark.parametrize("option", ["-g", "--group", "-G", "--socket-group"])
def test_groups(completion_file, option):
    offered = complete(completion_file, ["spawn-fcgi", option, ""])
    groups = {g.gr_name for g in grp.getgrall()}
    assert "root" in offered
    assert set(offered) <= groups
    assert set(offered) == groups


def test_value_after_equals_sign(completion_file):
    # bash splits "--user=ro" at "=" (COMP_WORDBREAKS): --user, =, ro
    assert "root" in complete(completion_file, ["spawn-fcgi", "--user", "=", "ro"])
    assert "root" in complete(completion_file, ["spawn-fcgi", "--user", "="])
    # ... and without "=" in COMP_WORDBREAKS the prefix stays on the word
    assert "--user=root" in complete(completion_file, ["spawn-fcgi", "--user=ro"])
    assert complete(completion_file, ["spawn-fcgi", "--check", "=", "j"]) == ["json"]


def test_stop_signal(completion_file):
    assert complete(completion_file, ["spawn-fcgi", "--stop-signal", ""]) == [
        "TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "KILL"]
    assert complete(completion_file, ["spawn-fcgi", "--stop-signal", "SIGH"]) == [
        "SIGHUP"]


def test_files_and_directories(completion_file, tmp_path):
    (tmp_path / "php.sock").touch()
    (tmp_path / "pools").mkdir()
    prefix = str(tmp_path) + "/p"
    for option in ["-s", "--socket", "-P", "--pid-file", "--config",
                   "--limits-file", "-f"]:
        offered = complete(completion_file, ["spawn-fcgi", option, prefix])
        assert sorted(offered) == [prefix + "hp.sock", prefix + "ools"], option
    for option in ["-c", "--chroot", "-d", "--chdir", "--limits-dir"]:
        offered = complete(completion_file, ["spawn-fcgi", option, prefix])
        assert offered == [prefix + "ools"], option


def test_numbers_offer_nothing(completion_file):
    for option in ["-p", "--fork", "-C", "--backlog", "--stop-timeout"]:
        assert complete(completion_file, ["spawn-fcgi", option, ""]) == []


def test_command_after_double_dash(completion_file):
    offered = complete(completion_file,
                       ["spawn-fcgi", "-s", "/run/x.sock", "--", "bas"])
    assert "bash" in offered
    assert not any(o.startswith("-") for o in offered)


def test_command_after_options_without_double_dash(completion_file):
    offered = complete(completion_file,
                       ["spawn-fcgi", "-n", "-u", "root", "-s", "x", "bas"])
    assert "bash" in offered


def test_no_options_of_ours_after_the_application(completion_file):
    for words in (["spawn-fcgi", "-s", "x", "--", "/bin/sh", "-"],
                  ["spawn-fcgi", "-s", "x", "/bin/sh", "--so"],
                  ["spawn-fcgi", "--user", "=", "root", "--", "sh", "--"]):
        offered = complete(completion_file, words)
        assert not any(o.startswith("--so") or o == "--user" for o in offered), words


def test_option_values_are_not_taken_for_the_application(completion_file):
    # "-u root" is an option and its value; the next word is still an option.
    assert "--socket" in complete(completion_file,
                                  ["spawn-fcgi", "-u", "root", "--soc"])
    assert "--socket" in complete(completion_file,
                                  ["spawn-fcgi", "--user", "=", "root", "--soc"])


@pytest.mark.skipif(not BASH_COMPLETION_MAIN.is_file(),
                    reason="bash-completion is not installed")
def test_application_completion_is_the_applications_own(completion_file):
    """With bash-completion loaded, the application's arguments are
    completed by the application's own completion (ls: its options)."""
    offered = complete(completion_file,
                       ["spawn-fcgi", "-s", "x", "--", "ls", "--al"],
                       with_bash_completion=True)
    assert "--all" in offered
    offered = complete(completion_file, ["spawn-fcgi", "-u", "ro"],
                       with_bash_completion=True)
    assert "root" in offered
