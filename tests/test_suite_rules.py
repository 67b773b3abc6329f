"""The suite's own rules: it tests what pip installed, and on CI a skip is a failure."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import composio_logtelemetry
from conftest import run_python

CHECKOUT = pathlib.Path(__file__).resolve().parents[1]


def _is_in_checkout(path: str) -> bool:
    return pathlib.Path(path).resolve().is_relative_to(CHECKOUT)


def test_the_suite_imports_the_installed_package_not_the_checkout() -> None:
    if not os.environ.get("CI"):
        pytest.skip("outside CI the package may be an editable install of this checkout")
    assert not _is_in_checkout(composio_logtelemetry.__file__), composio_logtelemetry.__file__
    # and so do the applications the tests start in subprocesses
    child = run_python("import composio_logtelemetry; print(composio_logtelemetry.__file__)")
    assert child.returncode == 0, child.stderr
    assert not _is_in_checkout(child.stdout.strip()), child.stdout


SKIPPING_TESTS = """
import pytest

def test_a_real_part_is_missing():
    pytest.skip("chromium is not installed")

@pytest.mark.skipif(True, reason="needs os.fork")
def test_a_platform_skip():
    pass
"""


@pytest.mark.parametrize(("ci", "expected"), [("true", "1 failed, 1 skipped"), ("", "2 skipped")])
def test_on_ci_a_skip_fails_unless_the_platform_lacks_the_feature(
    tmp_path: pathlib.Path, ci: str, expected: str
) -> None:
    shutil.copy(pathlib.Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(SKIPPING_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", "."],
        cwd=tmp_path,
        env={**os.environ, "CI": ci},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert expected in result.stdout, result.stdout + result.stderr
    assert result.returncode == (1 if ci else 0)
    if ci:
        assert "skipped on CI, where every real part must be present" in result.stdout
