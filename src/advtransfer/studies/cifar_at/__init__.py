"""Study 2 (seed 001_96229233c55557ab): CIFAR-10/100 adversarial training of BaseNet and ResNet-18, pretrained vs
scratch.

A grid of cells (setting, protocol, seed, model, training); every model is evaluated on clean test images and under
FGSM, PGD, NIFGSM and VMIFGSM. See SPEC section 3 and ``experiments/exp2.toml``. The package: ``config`` (schema),
``grid`` (cells), ``data`` (CIFAR and its stand-ins, preflight, fetch), ``cell`` (training and evaluation of one
cell), ``figures``, ``report``, ``claims``, ``published``, ``bench`` (its cell of ``advtransfer bench gpu``).
"""

from __future__ import annotations

from pathlib import Path

from .. import register
from ..base import Study
from . import cell, data, figures, grid, report
from . import claims as claims_module
from .bench import BENCH_CELL_TOML
from .config import Exp2Config


@register
class CifarAdversarialTraining(Study):
    name = "cifar-at"
    title = "CIFAR adversarial training: shallow CNN and ResNet-18, pretrained vs scratch"
    aliases = ("2",)
    config_class = Exp2Config
    experiments = ("exp2",)
    claims = claims_module.CLAIMS
    claim_columns = ("published", "as-run", "intended")
    bench_cell = BENCH_CELL_TOML

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
        return figures.make_figures(results, out_dir)
