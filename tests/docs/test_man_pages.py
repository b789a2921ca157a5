"""The man pages say what the program does: the same options as --help, in
the same groups; the same config keys as the program accepts; the same
exit statuses as src/exit-status.h; example configurations that pass
--check; and code that survives copy and paste."""

import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest

from conftest import (COMMAND_LINE_ONLY, CONFIG_ONLY, man_sections,
                      roff_macro_text, roff_to_text)

PAGES = ["spawn-fcgi.1", "spawn-fcgi.conf.5", "spawn-fcgi@.service.8"]


def read_page(man_dir, name):
    return (man_dir / name).read_text()


def man_option_tags(page_text):
    """{tag: subsection} for every .TP tag in OPTIONS of spawn-fcgi.1."""
    lines = man_sections(page_text)["OPTIONS"]
    tags = {}
    sub = None
    for i, line in enumerate(lines):
        m = re.match(r'^\.SS\s+"?(.*?)"?\s*$', line)
        if m:
            sub = m.group(1)
        elif line == ".TP":
            tag = roff_macro_text(lines[i + 1])
            assert tag not in tags, f"{tag} is described twice"
            tags[tag] = sub
    return tags


def names_in_tags(tags):
    """{"-s", "--socket", ...} named by a set of tags."""
    names = set()
    for tag in tags:
        names |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[A-Za-z?])", tag))
    return names


# ---------------------------------------------------------------------------
# spawn-fcgi.1 against --help


def test_every_help_option_is_in_the_man_page(man_dir, help_options):
    tags = man_option_tags(read_page(man_dir, "spawn-fcgi.1"))
    missing = [o.tag for o in help_options if o.tag not in tags]
    assert not missing, (
        f"options --help lists but spawn-fcgi.1 OPTIONS does not describe "
        f"(tags must read as --help shows them): {missing}")


def test_every_man_page_option_exists_in_help(man_dir, help_options):
    tags = man_option_tags(read_page(man_dir, "spawn-fcgi.1"))
    known = {o.tag for o in help_options}
    unknown = [t for t in tags if t not in known]
    assert not unknown, (
        f"spawn-fcgi.1 OPTIONS describes options --help does not list: "
        f"{unknown}")


def test_options_are_grouped_as_help_groups_them(man_dir, help_options):
    tags = man_option_tags(read_page(man_dir, "spawn-fcgi.1"))
    wrong = [(o.tag, o.section, tags[o.tag]) for o in help_options
             if o.tag in tags and tags[o.tag] != o.section]
    assert not wrong, f"(option, --help group, man page group): {wrong}"
    help_order = list(dict.fromkeys(o.section for o in help_options))
    man_order = list(dict.fromkeys(tags.values()))
    assert man_order == help_order


def test_option_names_agree_both_ways(man_dir, help_options):
    """The same check on bare names, so that a mismatch in one option's
    argument name cannot hide a missing or extra option."""
    tags = man_option_tags(read_page(man_dir, "spawn-fcgi.1"))
    from_help = names_in_tags(o.tag for o in help_options)
    from_man = names_in_tags(tags)
    assert from_help - from_man == set(), "missing in spawn-fcgi.1"
    assert from_man - from_help == set(), "not in --help"


def test_synopsis_and_text_name_only_real_options(man_dir, help_options):
    """Every --long option named anywhere in the pages exists (--option
    is the placeholder of the OPTIONS introduction)."""
    known = {"--" + o.long for o in help_options} | {"--option"}
    for page in PAGES:
        named = set()
        for line in roff_to_text(read_page(man_dir, page)).splitlines():
            if re.search(r"systemctl|journalctl|curl", line):
                continue    # their own options
            named |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", line))
        assert named, page
        unknown = named - known
        assert not unknown, f"{page} names unknown options: {unknown}"


# ---------------------------------------------------------------------------
# spawn-fcgi.conf.5 against the keys the program accepts


def man_config_keys(page_text):
    """{key: type} from the .TP tags under KEYS of spawn-fcgi.conf.5."""
    lines = man_sections(page_text)["KEYS"]
    keys = {}
    for i, line in enumerate(lines):
        if line != ".TP":
            continue
        tag = roff_macro_text(lines[i + 1])
        m = re.match(r"^([a-z][a-z-]*)=", tag)
        assert m, f"unexpected key tag {tag!r}"
        kind = re.match(r"^\.RI \(\s*(\w+)", lines[i + 2])
        keys[m.group(1)] = kind.group(1) if kind else None
    return keys


def key_is_accepted(spawn_fcgi, key):
    """Whether spawn-fcgi --config accepts a file with this key.  The value
    does not matter: unknown keys are refused before values are read."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(f"[spawn-fcgi]\n{key}=1\n")
        f.flush()
        p = subprocess.run([str(spawn_fcgi), f"--config={f.name}", "--check"],
                           capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    return f"unknown key '{key}'" not in p.stderr


def test_config_keys_match_the_program(man_dir, spawn_fcgi, help_options):
    documented = set(man_config_keys(read_page(man_dir, "spawn-fcgi.conf.5")))
    candidates = ({o.long for o in help_options} | CONFIG_ONLY | documented
                  | {"no-such-key"})
    accepted = {k for k in candidates if key_is_accepted(spawn_fcgi, k)}
    # The probe itself must tell keys apart.
    assert "no-such-key" not in accepted
    assert {"socket", "exec", "environment"} <= accepted
    assert documented - accepted == set(), "documented but refused"
    assert accepted - documented == set(), "accepted but not documented"


def test_config_keys_are_the_long_options_less_the_command_line_ones(
        man_dir, help_options):
    documented = set(man_config_keys(read_page(man_dir, "spawn-fcgi.conf.5")))
    derived = ({o.long for o in help_options} - COMMAND_LINE_ONLY) | CONFIG_ONLY
    assert documented == derived


def test_config_keys_each_have_a_type(man_dir):
    keys = man_config_keys(read_page(man_dir, "spawn-fcgi.conf.5"))
    types = {"string", "boolean", "integer", "mode", "signal", "command",
             "environment", "variables", "choice", "size"}
    wrong = {k: t for k, t in keys.items() if t not in types}
    assert not wrong, f"keys without a known type: {wrong}"


def example_configs(page_text):
    """[(name, extra args, file text)] for the blocks marked
    `.\\" example-config: NAME ARGS...` in spawn-fcgi.conf.5."""
    examples = []
    lines = page_text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'^\.\\" example-config: (\S+)(.*)$', line)
        if not m:
            continue
        assert lines[i + 1] == ".EX", f"example {m.group(1)}: .EX expected"
        end = lines.index(".EE", i)
        body = "\n".join(roff_to_text(l) for l in lines[i + 2:end]) + "\n"
        examples.append((m.group(1), shlex.split(m.group(2)), body))
    return examples


def test_config_examples_are_marked(man_dir):
    names = [e[0] for e in example_configs(read_page(man_dir, "spawn-fcgi.conf.5"))]
    assert names == ["php", "fcgiwrap", "tcp", "pool"]


@pytest.mark.parametrize("name", ["php", "fcgiwrap", "tcp", "pool"])
def test_config_example_passes_check(man_dir, spawn_fcgi, tmp_path, name):
    if os.geteuid() != 0:
        pytest.skip("needs root: the examples switch to user www-data")
    try:
        pwd.getpwnam("www-data")
    except KeyError:
        pytest.skip("no user www-data on this machine")
    examples = {n: (args, body) for n, args, body in
                example_configs(read_page(man_dir, "spawn-fcgi.conf.5"))}
    args, body = examples[name]
    exe = re.search(r"^exec=(\S+)", body, re.M).group(1)
    if not os.access(exe, os.X_OK):
        pytest.skip(f"{exe} is not installed")
    conf = tmp_path / f"{name}.conf"
    conf.write_text(body)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    p = subprocess.run([str(spawn_fcgi), *args, f"--config={conf}", "--check"],
                       capture_output=True, text=True, timeout=30, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{name}:\n{body}\n{p.stderr}"
    assert "ROOT" not in p.stderr, p.stderr


# ---------------------------------------------------------------------------
# exit statuses, version, references


def test_exit_statuses_match_the_source(man_dir, source_dir):
    header = (source_dir / "src" / "exit-status.h").read_text()
    in_source = {int(v) for v in
                 re.findall(r"EXIT_STATUS_\w+\s*=\s*(\d+)", header)}
    assert in_source, "no EXIT_STATUS_* values found"
    lines = man_sections(read_page(man_dir, "spawn-fcgi.1"))["EXIT STATUS"]
    in_man = {int(lines[i + 1].split()[1]) for i, l in enumerate(lines)
              if l == ".TP"}
    assert in_man == in_source


def test_pages_carry_the_program_version(man_dir, spawn_fcgi):
    p = subprocess.run([str(spawn_fcgi), "--version"], capture_output=True,
                       text=True, timeout=30)
    version = p.stdout.split()[1]
    for page in PAGES:
        th = next(l for l in read_page(man_dir, page).splitlines()
                  if l.startswith(".TH "))
        assert f'"spawn-fcgi {version}"' in th, (page, th)
        assert "@" not in th.split('"spawn-fcgi')[1], th


def test_no_placeholder_is_left(man_dir):
    for page in PAGES:
        left = re.findall(r"@[A-Z_]+@", read_page(man_dir, page))
        assert not left, f"{page}: {left}"


def test_references_to_our_pages_are_right(man_dir):
    ours = {("spawn-fcgi", "1"), ("spawn-fcgi.conf", "5"),
            ("spawn-fcgi@.service", "8")}
    for page in PAGES:
        refs = re.findall(r"^\.BR (spawn-fcgi\S*) \((\d)\)",
                          read_page(man_dir, page), re.M)
        assert refs, f"{page} refers to no other page of ours"
        bad = [r for r in refs if r not in ours]
        assert not bad, f"{page}: {bad}"


def test_alias_pages_lead_to_the_units_page(source_dir):
    for alias in ["spawn-fcgi@.socket.8", "spawn-fcgi-supervise@.service.8",
                  "spawn-fcgi-supervise@.socket.8"]:
        text = (source_dir / "man" / alias).read_text()
        assert text == ".so man8/spawn-fcgi@.service.8\n", alias


def test_every_shipped_unit_is_named_in_the_units_page(man_dir, source_dir):
    text = roff_to_text(read_page(man_dir, "spawn-fcgi@.service.8"))
    name_line = text.split(".SH NAME\n")[1].splitlines()[0]
    units = sorted(p.name for p in (source_dir / "units").iterdir()
                   if p.suffix in (".service", ".socket"))
    assert units, "no units found"
    for unit in units:
        assert unit in name_line, f"{unit} is not in NAME: {name_line}"
        alias = source_dir / "man" / f"{unit}.8"
        assert unit == "spawn-fcgi@.service" or alias.is_file(), (
            f"no man/{unit}.8 alias page")


# ---------------------------------------------------------------------------
# copy and paste


def code_lines(page_text):
    """(line number, line) inside .EX/.EE blocks."""
    inside = False
    for n, line in enumerate(page_text.splitlines(), 1):
        if line == ".EX":
            inside = True
        elif line == ".EE":
            inside = False
        elif inside:
            yield n, line


@pytest.mark.parametrize("page", PAGES)
def test_dashes_are_escaped(man_dir, page):
    """A bare - may be typeset as a hyphen (U+2010), which a shell does not
    take for an option dash: write \\- in code and before option names."""
    bad = []
    text = read_page(man_dir, page)
    for n, line in code_lines(text):
        if re.search(r"(?<!\\)-", line):
            bad.append((n, line))
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith('.\\"'):
            continue
        if re.search(r"(?<![\\\w.-])-{1,2}[A-Za-z]", line):
            bad.append((n, line))
    assert not bad, f"unescaped dashes in {page}: {bad}"


@pytest.mark.parametrize("page", PAGES)
def test_code_uses_straight_quotes(man_dir, page):
    """' and ` in code would be typeset as curly quotes by some formatters."""
    bad = [(n, l) for n, l in code_lines(read_page(man_dir, page))
           if re.search(r"['`]", l)]
    assert not bad, f"write \\(aq and \\(ga in {page}: {bad}"


def test_shell_examples_parse(man_dir):
    """Every code block that looks like a shell command parses in sh -n."""
    sh = shutil.which("sh") or "/bin/sh"
    for page in PAGES:
        text = read_page(man_dir, page)
        blocks, current = [], []
        for line in text.splitlines():
            if line == ".EX":
                current = []
            elif line == ".EE":
                blocks.append("\n".join(roff_to_text(l) for l in current))
            else:
                current.append(line)
        for block in blocks:
            first = block.lstrip().split(None, 1)[0] if block.strip() else ""
            if first not in ("spawn-fcgi", "systemctl", "cat", "journalctl",
                             "#!/bin/sh", "exec"):
                continue
            p = subprocess.run([sh, "-n"], input=block, text=True,
                               capture_output=True, timeout=30)
            assert p.returncode == 0, f"{page}:\n{block}\n{p.stderr}"
