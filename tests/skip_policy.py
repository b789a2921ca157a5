"""How the pytest files report skipped tests to meson and to CI.

Imported by the conftest.py of tests/integration and tests/docs, so that
its hooks apply however pytest is started.

- A file whose tests were all skipped exits with 77, which meson shows as
  SKIP: "nothing was tested" must not look like a pass.
- With SPAWN_FCGI_TESTS_MUST_RUN=1 (set by .ci/run) a skipped test fails,
  with its reason: CI is the place where every test is meant to run, so a
  missing tool or privilege there is a failure, not a quiet gap (compare
  bubblewrap's BWRAP_MUST_WORK).
"""

import os

import pytest

MUST_RUN_VAR = "SPAWN_FCGI_TESTS_MUST_RUN"
MESON_SKIP = 77


def must_run():
    return os.environ.get(MUST_RUN_VAR, "") not in ("", "0")


def _skip_reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, reason = longrepr
        return f"{path}:{line}: {reason}"
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and must_run():
        report.outcome = "failed"
        report.longrepr = (f"skipped, but {MUST_RUN_VAR} is set: every test "
                           f"must run here\n{_skip_reason(report)}")


class _Outcomes:
    """Counts what the tests came to (one count per test)."""

    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def add(self, report):
        if report.failed:
            self.failed += 1
        elif report.skipped:
            self.skipped += 1
        elif report.passed and report.when == "call":
            self.passed += 1


_outcomes = _Outcomes()


def pytest_runtest_logreport(report):
    _outcomes.add(report)


def pytest_sessionfinish(session, exitstatus):
    o = _outcomes
    if exitstatus == 0 and o.skipped > 0 and o.passed == 0 and o.failed == 0:
        session.exitstatus = MESON_SKIP
