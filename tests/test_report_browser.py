"""The HTML report renders in a real browser with its figures: headless Chromium (Debian's `chromium` package)
takes a screenshot of a report built from the results fixture. Skipped where Chromium is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advtransfer.figures import make_figures
from advtransfer.report import write_report

FIXTURE = Path(__file__).parent / "fixtures" / "exp1_results"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags a closed network needs (no background connections, first-run or component updates).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def screenshot(page: Path, png: Path, profile: Path, size: str = "1280,6000") -> None:
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                    f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`)")
def test_html_report_renders_with_its_figures_in_chromium(tmp_path: Path) -> None:
    out = tmp_path / "r"
    shutil.copytree(FIXTURE, out)
    make_figures(out)
    write_report(out)
    png = tmp_path / "report.png"
    screenshot(out / "report.html", png, tmp_path / "profile")
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert pixels.shape[1] == 1280
    # Text and tables: plenty of dark pixels; figures: the natural-accuracy blue (#4C72B0) of the robustness
    # figure, which only a rendered image can contribute.
    dark = (pixels.sum(axis=2) < 200).mean()
    blue = (np.abs(pixels - np.array([76, 114, 176])).max(axis=2) < 12).sum()
    assert dark > 0.002, dark
    assert blue > 2000, blue
