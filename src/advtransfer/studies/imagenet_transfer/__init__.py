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
from ..base import Study
from . import cell, data, figures, grid, report
from . import claims as claims_module
from .config import Exp1Config


@register
class ImagenetTransfer(Study):
    name = "imagenet-transfer"
    title = "ImageNet-R / MobileNetV2 block transfer under FGSM"
    aliases = ("1",)
    config_class = Exp1Config
    experiments = ("exp1",)
    claims = claims_module.CLAIMS
    claim_columns = ("published", "as-run", "intended")

    # Each part of the study lives in its own module; the study object only points at them.
    plan = staticmethod(grid.plan)
    preflight = staticmethod(data.preflight)
    fetch = staticmethod(data.fetch)
    runner = staticmethod(cell.make_runner)
    dependencies = staticmethod(cell.dependencies)
    report_section = staticmethod(report.section)
    errata = staticmethod(report.errata)
    published = staticmethod(claims_module.published)
    claim_key = staticmethod(claims_module.claim_key)
    claim_label = staticmethod(claims_module.label)

    def figures(self, results, root: Path, out_dir: Path) -> list[Path]:
        return figures.make_figures(results, root, out_dir)
