#!/usr/bin/python3
"""Start-up cost of spawn-fcgi until the application is exec'd.

Measures `spawn-fcgi -n -s SOCK -- /bin/true` for the peer (1.6.4) and ours:
  * wall time over many runs (hyperfine, or an own loop without it),
  * instructions executed until execve() is entered (callgrind).
Also counts the same for two trivial programs that only exec /bin/true, one
linked to libc alone and one linked to glib-2.0 + libsystemd, as a baseline.

Standalone: bench/startup.py [--quick] OURS [PEER]
"""

import glob
import json
import os
import shlex
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import print_table

TARGET_WALL_RATIO = 1.5
TARGET_INSTRUCTIONS = 1_500_000

FULL = {"warmup": 30, "runs": 300}
QUICK = {"warmup": 3, "runs": 20}

BASELINE_SRC = r"""
#include <unistd.h>
#ifdef WITH_GLIB
#include <glib.h>
void * volatile keep_glib = (void *) g_strdup;
#endif
#ifdef WITH_SYSTEMD
#include <systemd/sd-daemon.h>
void * volatile keep_systemd = (void *) sd_listen_fds;
#endif
int main(void)
{
    char *argv[] = { "/bin/true", NULL };
    execv(argv[0], argv);
    return 127;
}
"""


class Failure(Exception):
    pass


def _rm(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _tail(text, n=300):
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


def sanity_check(tool, sockdir):
    """The tool must exec the application with the listening socket on fd 0."""
    sock = os.path.join(sockdir, "s")
    _rm(sock)
    try:
        r = subprocess.run(
            [tool, "-n", "-s", sock, "--", "/bin/sh", "-c", "readlink /proc/self/fd/0"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise Failure(f"{tool} -n -s SOCK -- APP did not finish within 30 s")
    try:
        is_sock = stat.S_ISSOCK(os.lstat(sock).st_mode)
    except FileNotFoundError:
        is_sock = False
    _rm(sock)
    if r.returncode != 0 or not r.stdout.startswith("socket:[") or not is_sock:
        raise Failure(
            f"{tool} -n -s SOCK -- APP did not exec the application with the socket on fd 0 "
            f"(exit {r.returncode}, app stdout {_tail(r.stdout)!r}, socket file created: "
            f"{is_sock}, stderr {_tail(r.stderr)!r})")


def wall_hyperfine(name, tool, sockdir, workdir, warmup, runs):
    sock = os.path.join(sockdir, "s")
    js = os.path.join(workdir, f"hyperfine-{name}.json")
    cmd = shlex.join([tool, "-n", "-s", sock, "--", "/bin/true"])
    argv = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup),
            "--runs", str(runs), "--prepare", shlex.join(["rm", "-f", sock]),
            "--export-json", js, "--command-name", name, cmd]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=600)
    _rm(sock)
    if r.returncode != 0:
        _rm(js)
        raise Failure(f"hyperfine failed for {name} (exit {r.returncode}): {_tail(r.stderr)}")
    with open(js) as f:
        res = json.load(f)["results"][0]
    _rm(js)
    return {"times_ns": [t * 1e9 for t in res["times"]], "method": "hyperfine -N"}


def wall_loop(name, tool, sockdir, warmup, runs):
    sock = os.path.join(sockdir, "s")
    argv = [tool, "-n", "-s", sock, "--", "/bin/true"]
    times = []
    for i in range(warmup + runs):
        _rm(sock)
        t0 = time.perf_counter_ns()
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, timeout=30)
        t1 = time.perf_counter_ns()
        if rc != 0:
            _rm(sock)
            raise Failure(f"{name}: exit status {rc} in run {i + 1}")
        if i >= warmup:
            times.append(t1 - t0)
    _rm(sock)
    return {"times_ns": times, "method": "perf_counter_ns loop"}


def instructions_before_exec(argv, workdir):
    """Instructions the process executes until it enters execve() (callgrind).

    valgrind does not follow the exec (--trace-children=no); --dump-before
    writes a profile part when execve/execveat is entered, which both proves
    that the exec was reached and gives the count up to that point."""
    if not shutil.which("valgrind"):
        raise Failure("valgrind not found")
    cgdir = tempfile.mkdtemp(prefix="cg-", dir=workdir)
    try:
        p = subprocess.Popen(
            ["valgrind", "-q", "--tool=callgrind", "--trace-children=no",
             "--dump-before=execve", "--dump-before=execveat",
             "--callgrind-out-file=" + os.path.join(cgdir, "cg.%p")] + argv,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        try:
            _, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("valgrind did not finish within 300 s")
        best = None
        for path in glob.glob(os.path.join(cgdir, f"cg.{p.pid}.*")):
            part, trigger, total = None, False, None
            with open(path, errors="replace") as f:
                for line in f:
                    if line.startswith("part:"):
                        part = int(line.split()[1])
                    elif line.startswith("desc: Trigger: --dump-before"):
                        trigger = True
                    elif line.startswith("totals:") or (total is None and line.startswith("summary:")):
                        total = int(line.split()[1])
            if trigger and part is not None and total is not None:
                if best is None or part < best[0]:
                    best = (part, total)
        if best is None:
            raise Failure(f"execve was never entered (exit {p.returncode}, "
                          f"stderr {_tail(err)!r})")
        return best[1]
    finally:
        shutil.rmtree(cgdir, ignore_errors=True)


def build_baselines(workdir):
    """Compile the trivial exec-only programs; returns {label: path} (may be partial)."""
    out, notes = {}, []
    if not shutil.which("gcc"):
        return out, ["gcc not found: no baseline"]
    src = os.path.join(workdir, "bare.c")
    with open(src, "w") as f:
        f.write(BASELINE_SRC)
    variants = [("bare libc", [], [])]
    # Ours links glib alone and opens libsystemd only under systemd; the
    # second line shows what linking libsystemd too would cost.
    for label, pkgs, defs in (("bare glib", ["glib-2.0"], ["-DWITH_GLIB"]),
                              ("bare glib+libsystemd", ["glib-2.0", "libsystemd"],
                               ["-DWITH_GLIB", "-DWITH_SYSTEMD"])):
        if not shutil.which("pkg-config"):
            notes.append(f"pkg-config not found: no {label} baseline")
            continue
        r = subprocess.run(["pkg-config", "--cflags", "--libs", *pkgs],
                           capture_output=True, text=True)
        if r.returncode == 0:
            variants.append((label, defs, shlex.split(r.stdout)))
        else:
            notes.append(f"pkg-config {' '.join(pkgs)} failed: " + _tail(r.stderr))
    for i, (label, defs, flags) in enumerate(variants):
        exe = os.path.join(workdir, f"bare{i}")
        r = subprocess.run(["gcc", "-O2", *defs, "-o", exe, src, "-Wl,--no-as-needed", *flags],
                           capture_output=True, text=True)
        if r.returncode == 0:
            out[label] = exe
        else:
            notes.append(f"{label}: gcc failed: {_tail(r.stderr)}")
    return out, notes


def shared_objects(path):
    r = subprocess.run(["ldd", path], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return sum(1 for line in r.stdout.splitlines() if "=>" in line or line.strip().startswith("/"))


def _ms(ns):
    return f"{ns / 1e6:.3f} ms"


def _ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"



def run(peer, ours, quick, workdir):
    """Returns (summary rows, list of failures)."""
    cfg = QUICK if quick else FULL
    failures, rows = [], []
    tools = [("1.6.4", peer), ("ours", ours)]
    print(f"== startup: spawn-fcgi -n -s SOCK -- /bin/true "
          f"({cfg['runs']} timed runs after {cfg['warmup']} warm-up runs each, "
          "socket removed before each run)")

    benchlib.note_load()
    ok = {}
    for name, tool in tools:
        d = tempfile.mkdtemp(prefix="startup-" + ("peer-" if name == "1.6.4" else "ours-"), dir=workdir)
        try:
            sanity_check(tool, d)
            ok[name] = d
        except (Failure, OSError) as e:
            failures.append(f"startup/{name}: {e}")
            shutil.rmtree(d, ignore_errors=True)

    wall = {}
    for name, tool in tools:
        if name not in ok:
            continue
        try:
            if shutil.which("hyperfine"):
                wall[name] = wall_hyperfine(name, tool, ok[name], workdir, cfg["warmup"], cfg["runs"])
            else:
                wall[name] = wall_loop(name, tool, ok[name], cfg["warmup"], cfg["runs"])
        except (Failure, OSError, subprocess.TimeoutExpired) as e:
            failures.append(f"startup/{name}: wall time: {e}")

    instr = {}
    for name, tool in tools:
        if name not in ok:
            continue
        sock = os.path.join(ok[name], "s")
        _rm(sock)
        try:
            instr[name] = instructions_before_exec([tool, "-n", "-s", sock, "--", "/bin/true"], workdir)
        except (Failure, OSError) as e:
            failures.append(f"startup/{name}: instructions: {e}")
        _rm(sock)
        shutil.rmtree(ok[name], ignore_errors=True)

    base, notes = build_baselines(workdir)
    base_instr = {}
    for label, exe in base.items():
        try:
            base_instr[label] = instructions_before_exec([exe], workdir)
        except (Failure, OSError) as e:
            notes.append(f"{label}: {e}")
    for name in ("bare.c", "bare0", "bare1"):
        _rm(os.path.join(workdir, name))

    def cell(d, k, fmt):
        return fmt(d[k]) if k in d else "n/a"

    stats = {}
    for name, w in wall.items():
        stats[name] = {"median": statistics.median(w["times_ns"]),
                       "mean": statistics.fmean(w["times_ns"]),
                       "min": min(w["times_ns"])}
    method = next(iter(wall.values()))["method"] if wall else "-"
    table = []
    for key in ("median", "mean", "min"):
        p, o = stats.get("1.6.4", {}).get(key), stats.get("ours", {}).get(key)
        table.append([f"wall {key} ({method})", _ms(p) if p else "n/a", _ms(o) if o else "n/a",
                      _ratio(o, p) if p and o else "-"])
    p, o = instr.get("1.6.4"), instr.get("ours")
    table.append(["instructions until execve", f"{p:,}" if p else "n/a", f"{o:,}" if o else "n/a",
                  _ratio(o, p) if p and o else "-"])
    so = {n: shared_objects(t) for n, t in tools}
    table.append(["shared objects (ldd)", so["1.6.4"] if so["1.6.4"] is not None else "n/a",
                  so["ours"] if so["ours"] is not None else "n/a", "-"])
    print_table(table, ["metric", "1.6.4", "ours", "ours/1.6.4"])

    print("  baseline (a trivial program that only execs /bin/true):")
    btable = []
    for label in ("bare libc", "bare glib", "bare glib+libsystemd"):
        if label in base_instr:
            extra = ""
            if o and label == "bare glib":
                extra = f"ours minus this: {o - base_instr[label]:,}"
            btable.append([label, f"{base_instr[label]:,}", extra])
    if btable:
        print_table(btable, ["program", "instructions until execve", ""])
    for n in notes:
        print(f"  note: {n}")

    pm, om = stats.get("1.6.4", {}).get("median"), stats.get("ours", {}).get("median")
    if pm and om:
        r = om / pm
        rows.append(["startup", "wall median", _ms(pm), _ms(om), f"{r:.2f}x",
                     f"<= {TARGET_WALL_RATIO}x", "yes" if r <= TARGET_WALL_RATIO else "NO"])
    else:
        rows.append(["startup", "wall median", _ms(pm) if pm else "n/a", _ms(om) if om else "n/a",
                     "-", f"<= {TARGET_WALL_RATIO}x", "n/a"])
    rows.append(["startup", "instructions until execve", f"{p:,}" if p else "n/a",
                 f"{o:,}" if o else "n/a", _ratio(o, p) if p and o else "-",
                 f"ours <= {TARGET_INSTRUCTIONS / 1e6:g}M",
                 ("yes" if o <= TARGET_INSTRUCTIONS else "NO") if o else "n/a"])
    return rows, failures


if __name__ == "__main__":
    sys.exit(benchlib.standalone_main("startup", run, sys.argv[1:]))
