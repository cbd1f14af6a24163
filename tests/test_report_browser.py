"""The HTML report renders in a real browser with its figures: headless Chromium (Debian's `chromium` package)
takes a screenshot of a report built from the results fixture. Skipped where Chromium is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advtransfer.reporting.outputs import write_outputs

FIXTURE = Path(__file__).parent / "fixtures" / "exp1_results"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags a closed network needs (no background connections, first-run or component updates).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
NATURAL_BLUE = np.array([76, 114, 176])  # #4C72B0, the natural-accuracy colour of study 1's figures


def screenshot(page: Path, png: Path, profile: Path, size: str = "1280,6000") -> None:
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                    f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)


def _blue_pixels(pixels: np.ndarray) -> int:
    return int((np.abs(pixels - NATURAL_BLUE).max(axis=2) < 12).sum())


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`)")
def test_html_report_renders_with_its_figures_in_chromium(tmp_path: Path) -> None:
    out = tmp_path / "r"
    shutil.copytree(FIXTURE, out)
    outputs = write_outputs(out)
    assert [p.name for p in outputs.figures if p.suffix == ".png"] == [
        "exp1_eps_choice.png", "exp1_transfer_performance.png", "exp1_adversarial_performance.png"]
    png = tmp_path / "report.png"
    screenshot(outputs.report_html, png, tmp_path / "profile")
    with Image.open(png) as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert pixels.shape[1] == 1280
    # Text and tables: plenty of dark pixels; figures: the natural-accuracy blue of the figures, which only a
    # rendered image can contribute (the page's own styles have no such blue).
    dark = (pixels.sum(axis=2) < 200).mean()
    assert dark > 0.002, dark
    assert _blue_pixels(pixels) > 2000, _blue_pixels(pixels)
    # The same page with its figures moved away: the blue is gone, so it came from the inlined figures.
    shutil.move(out / "figures", tmp_path / "figures-away")
    from advtransfer.reporting.html import markdown_to_html

    bare = tmp_path / "bare.html"
    bare.write_text(markdown_to_html(outputs.report.read_text(), out, title="bare"))
    png2 = tmp_path / "bare.png"
    screenshot(bare, png2, tmp_path / "profile2")
    with Image.open(png2) as im:
        assert _blue_pixels(np.asarray(im.convert("RGB")).astype(int)) < 200


CURVE_BLUE = np.array([31, 119, 180])  # matplotlib's C0, the first line of every curves figure


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package `chromium`)")
def test_html_report_shows_training_curves_of_both_studies(tmp_path: Path) -> None:
    import os
    import sys

    from conftest import MINI_EXP1
    from test_bad_input import MICRO_EXP2

    out = tmp_path / "both"
    for name, text in (("exp1.toml", MINI_EXP1), ("exp2.toml", MICRO_EXP2)):
        (tmp_path / name).write_text(text)
    result = subprocess.run([sys.executable, "-m", "advtransfer", "reproduce-all", "--profile", "mini", "--experiments",
                             f"{tmp_path / 'exp1.toml'},{tmp_path / 'exp2.toml'}", "--out", str(out), "--device",
                             "cpu", "--jobs", "1"], capture_output=True, text=True, timeout=900, check=False,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    page = out / "report.html"
    html = page.read_text()
    for experiment in ("exp1", "exp2"):
        assert f'<img class="figure" alt="curves_{experiment}" src="data:image/png;base64,' in html
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    assert dom.count('alt="curves_') == 2 and "Training curves" in dom  # the browser parsed both figures
    # The curves section alone, as a page: its lines' colour shows only if the browser drew the images.
    section = out / "curves.html"
    from advtransfer.reporting.html import markdown_to_html

    text = (out / "report.md").read_text()
    section.write_text(markdown_to_html(text[text.index("## Training curves"):], out, title="curves"))
    png = tmp_path / "curves.png"
    screenshot(section, png, tmp_path / "profile2", size="1280,3000")
    with Image.open(png) as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert int((np.abs(pixels - CURVE_BLUE).max(axis=2) < 12).sum()) > 500
