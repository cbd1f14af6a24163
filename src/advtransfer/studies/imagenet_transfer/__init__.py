"""Study 1 (seed 000_d53cd943f136aa42): ImageNet-R / MobileNetV2 block transfer (BnB, AnB-N, AnB+-N) under FGSM.

Cells are (protocol, seed, model); every model is evaluated on natural test images, on FGSM crafted on Base A (the
original's transfer attack), white-box FGSM at every eps and white-box PGD. See SPEC section 2 and
``experiments/exp1.toml``. The package: ``config`` (schema), ``grid`` (cells), ``data`` (the target task,
preflight, fetch), ``cell`` (training and evaluation of one cell), ``figures``, ``report``, ``claims``,
``published``.
"""

from __future__ import annotations

from pathlib import Path

from .. import register
from ..base import Experiment, RunContext, Study
from . import cell, claims, data, figures, grid, report
from .config import Exp1Config


@register
class ImagenetTransfer(Study):
    name = "imagenet-transfer"
    title = "ImageNet-R / MobileNetV2 block transfer under FGSM"
    aliases = ("1",)
    config_class = Exp1Config
    experiments = ("exp1",)
    claims = claims.CLAIMS
    claim_columns = ("published", "as-run", "intended")

    def plan(self, exp: Experiment) -> list[grid.Cell]:
        return grid.plan(exp)

    def preflight(self, exp: Experiment, data_root: Path) -> list[str]:
        return data.preflight(exp, data_root)

    def fetch(self, exp: Experiment, data_root: Path) -> list[str]:
        return data.fetch(exp, data_root)

    def runner(self, exp: Experiment, run: RunContext):
        return cell.make_runner(exp, run)

    def figures(self, results, root: Path, out_dir: Path) -> list[Path]:
        return figures.make_figures(results, root, out_dir)

    def report_section(self, results, figures: list[Path], root: Path) -> list[str]:
        return report.section(results, figures, root)

    def errata(self, results) -> list[str]:
        return report.errata(results)

    def published(self):
        return claims.published()

    def claim_key(self, key):
        return claims.claim_key(key)

    def claim_label(self, claim_key: tuple) -> str:
        return claims.label(claim_key)
