"""What every benchmark under bench/ shares: the table printer, the
standalone entry point (bench/NAME.py [--quick] OURS [PEER]) and what they
read about processes and sockets in /proc."""

import ctypes
import os
import shutil
import signal
import sys
import tempfile

PR_SET_CHILD_SUBREAPER = 36

SUMMARY_HEADER = ["bench", "metric", "peer", "ours", "ours/peer", "target", "met"]


def print_table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def note_load():
    """Says so when other work competes for the cpus: the ratios are noisy."""
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1):
        print(f"  note: load average {load:.2f} on {os.cpu_count()} cpus: "
              "other work competes for the cpus, the ratios are noisy")


# ---------------------------------------------------------------------------
# processes and sockets, from /proc


def become_subreaper():
    """Children orphaned by a spawner are re-parented to us, so we can reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def pids():
    for e in os.listdir("/proc"):
        if e.isdigit():
            yield int(e)


def proc_stat(pid):
    """(state, ppid) from /proc/PID/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[1])


def socket_inode(path):
    """Inode (in sockfs) of the listening unix socket bound at path, from /proc/net/unix."""
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[7] == path:
                    return int(parts[6])
    except OSError:
        pass
    return None


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def standalone_main(name, run, argv):
    """Runs one benchmark module's run(peer, ours, quick, workdir) alone and
    prints its summary rows; returns the exit status."""
    args = [a for a in argv if a != "--quick"]
    if not 1 <= len(args) <= 2:
        print(f"usage: bench/{name}.py [--quick] OURS [PEER]", file=sys.stderr)
        return 2
    ours = os.path.abspath(args[0])
    peer = os.path.abspath(args[1]) if len(args) > 1 else "/usr/bin/spawn-fcgi"
    signal.signal(signal.SIGTERM, _terminate)
    workdir = tempfile.mkdtemp(prefix="spawn-fcgi-bench-")
    try:
        rows, failures = run(peer, ours, "--quick" in argv, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows, SUMMARY_HEADER)
    for f in failures:
        print("FAILED: " + f)
    return 1 if failures else 0
