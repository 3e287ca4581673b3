"""In CI, a skipped test is a failure unless CI lists that skip with its reason.

A skip is right on a user's machine (``dciodvfy`` is not installed, say) but in CI it hides a test
that never ran. ``.ci/run`` sets ``TUMORSEG_CI_ALLOWED_SKIPS`` to the skips it accepts, one per
line, ``<test id> | <why it may skip in CI>``, where the test id is a pytest node id (a module
skipped whole is its file path). With that variable set, every other skip (at collection or at run
time) is reported as a failure that names the test and its skip reason. Without it, nothing changes.
Loaded by tests/conftest.py; tests/test_ci_skips.py checks it.
"""

from __future__ import annotations

import os

import pytest

ENV = "TUMORSEG_CI_ALLOWED_SKIPS"


def allowed_skips() -> dict[str, str] | None:
    """{test id: reason} from the environment; None when not in CI (the variable is unset)."""
    text = os.environ.get(ENV)
    if text is None:
        return None
    allowed = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        test_id, separator, reason = line.partition("|")
        if not separator or not test_id.strip() or not reason.strip():
            raise pytest.UsageError(f"{ENV}: each line must be '<test id> | <reason>', got: {line!r}")
        allowed[test_id.strip()] = reason.strip()
    return allowed


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def _fail_unlisted_skip(report) -> None:
    allowed = allowed_skips()
    if allowed is None or not report.skipped or report.nodeid in allowed:
        return
    if hasattr(report, "wasxfail"):  # an expected failure is reported as a skip; it is not one
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{report.nodeid} skipped in CI ({_skip_reason(report)}); install what it needs, "
        f"or list it in .ci/run's allowed skips with the reason it may skip"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_unlisted_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_unlisted_skip(outcome.get_result())
