"""tests/ci_skips.py: with .ci/run's list of allowed skips set, an unlisted skip fails; without it, skips stay skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest
pytest.importorskip("{module}")

def test_runs():
    pass

@pytest.mark.skipif(True, reason="tool missing")
def test_marked():
    pass

def test_skips_at_run_time():
    pytest.skip("no data")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False
'''


def _run(tmp_path, allowed, module="json"):
    (tmp_path / "test_sample.py").write_text(SAMPLE.format(module=module))
    env = {k: v for k, v in os.environ.items() if k != "TUMORSEG_CI_ALLOWED_SKIPS"}
    if allowed is not None:
        env["TUMORSEG_CI_ALLOWED_SKIPS"] = allowed
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider", "-rA", "-q",
                           str(tmp_path / "test_sample.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)


def test_outside_ci_skips_stay_skips(tmp_path):
    result = _run(tmp_path, None)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in result.stdout


def test_in_ci_an_unlisted_skip_fails_and_names_its_reason(tmp_path):
    result = _run(tmp_path, "test_sample.py::test_marked | the tool is not packaged for CI\n")
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed" in result.stdout
    assert "FAILED test_sample.py::test_skips_at_run_time" in result.stdout
    assert "skipped in CI (Skipped: no data)" in result.stdout


def test_in_ci_listed_skips_pass(tmp_path):
    allowed = "test_sample.py::test_marked | the tool is not packaged\n\ntest_sample.py::test_skips_at_run_time | no data in CI\n"
    result = _run(tmp_path, allowed)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in result.stdout


def test_in_ci_a_module_skipped_whole_fails_unless_listed(tmp_path):
    result = _run(tmp_path, "", module="no_such_module_tumorseg")
    assert result.returncode != 0 and "skipped in CI" in result.stdout, result.stdout
    result = _run(tmp_path, "test_sample.py | its package is optional", module="no_such_module_tumorseg")
    # exit code 5: no test was collected (the only module skipped), which pytest does not count as a failure
    assert result.returncode == 5 and "1 skipped" in result.stdout and "failed" not in result.stdout, result.stdout


def test_a_listed_skip_needs_a_reason(tmp_path):
    result = _run(tmp_path, "test_sample.py::test_marked\n")
    assert result.returncode != 0 and "must be '<test id> | <reason>'" in result.stderr + result.stdout


def _ci_allowed_skips():
    """TUMORSEG_CI_ALLOWED_SKIPS as .ci/run builds it (its allowed_skips array, evaluated by bash)."""
    script = (TESTS.parent / ".ci" / "run").read_text()
    start = script.index("allowed_skips=(")
    block = script[start:script.index("export TUMORSEG_CI_ALLOWED_SKIPS", start)]
    result = subprocess.run(["bash", "-c", block + 'printf "%s" "$TUMORSEG_CI_ALLOWED_SKIPS"'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ci_run_lists_existing_tests_with_reasons_and_writes_bytecode(monkeypatch):
    sys.path.insert(0, str(TESTS))
    import ci_skips

    monkeypatch.setenv(ci_skips.ENV, _ci_allowed_skips())
    allowed = ci_skips.allowed_skips()
    assert allowed, "expected .ci/run to list its allowed skips"
    for test_id, reason in allowed.items():
        path, _, name = test_id.partition("::")
        assert (TESTS.parent / path).is_file(), f".ci/run lists a skip of a missing file: {test_id}"
        assert not name or f"def {name.split('[')[0]}(" in (TESTS.parent / path).read_text(), f"no such test: {test_id}"
        assert len(reason) > 10
    # a listed parametrized test names a parameter set that exists (pytest matches node ids exactly)
    parametrized = [test_id for test_id in allowed if "[" in test_id]
    files = sorted({test_id.partition("::")[0] for test_id in parametrized})
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                               cwd=TESTS.parent, capture_output=True, text=True, timeout=600)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    missing = set(parametrized) - set(collected.stdout.splitlines())
    assert not missing, f".ci/run lists parameter sets that do not exist: {sorted(missing)}"
    script = (TESTS.parent / ".ci" / "run").read_text()
    # CI runs as a user's shell does: bytecode is written (the README's commands run after this line)
    assert script.index("unset PYTHONDONTWRITEBYTECODE") < script.index('for command in "${commands[@]}"')
