"""What every benchmark under bench/ shares: the table printer and the
standalone entry point (bench/NAME.py [--quick] OURS [PEER])."""

import os
import shutil
import signal
import sys
import tempfile

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
