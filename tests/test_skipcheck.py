"""The CI skip check (tests/skipcheck.py): with ADVTRANSFER_STRICT_SKIPS=1 a skip whose reason is not on the
allow-list fails the run, an allowed one does not, and without the variable nothing changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skipcheck import allowed_skip_reasons, unexpected_skips

TESTS = Path(__file__).resolve().parent


def _pytest(tmp_path: Path, reason: str, strict: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(
        f"import pytest\n\ndef test_skips():\n    pytest.skip({reason!r})\n\ndef test_passes():\n    pass\n")
    (tmp_path / "allow.txt").write_text("needs a CUDA device   # a GPU\n# a comment line\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVTRANSFER_")}
    env.update(PYTHONPATH=str(TESTS), ADVTRANSFER_SKIP_ALLOWLIST=str(tmp_path / "allow.txt"))
    if strict:
        env["ADVTRANSFER_STRICT_SKIPS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "skipcheck", "-p", "no:randomly", "-p",
                           "no:cacheprovider", "-q", str(tmp_path / "test_inner.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("reason, strict, rc", [
    ("Chromium is not installed", True, 1),
    ("needs a CUDA device", True, 0),
    ("Chromium is not installed", False, 0),
])
def test_strict_skips_fail_the_run_unless_allowed(tmp_path: Path, reason: str, strict: bool, rc: int) -> None:
    result = _pytest(tmp_path, reason, strict)
    assert result.returncode == rc, result.stdout + result.stderr
    assert ("not on allow.txt" in result.stdout) == (rc == 1)
    if rc == 1:
        assert "test_inner.py::test_skips: Skipped: Chromium is not installed" in result.stdout


def test_the_allow_list_is_short_and_names_only_gpu_and_privilege_skips() -> None:
    reasons = allowed_skip_reasons()
    assert reasons == ["needs a CUDA device", "cannot mount a tmpfs here"]
    skipped = [("a", "Skipped: needs a CUDA device"), ("b", "Skipped: Chromium is not installed (Debian package)")]
    assert unexpected_skips(skipped, reasons) == [skipped[1]]
