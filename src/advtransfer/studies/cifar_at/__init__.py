"""Study 2 (seed 001_96229233c55557ab): CIFAR-10/100 adversarial training of BaseNet and ResNet-18, pretrained vs
scratch.

A grid of cells (setting, protocol, seed, model, training); every model is evaluated on clean test images and under
FGSM, PGD, NIFGSM and VMIFGSM. See SPEC section 3 and ``experiments/exp2.toml``. The package: ``config`` (schema),
``grid`` (cells), ``data`` (CIFAR and its stand-ins, preflight, fetch), ``cell`` (training and evaluation of one
cell), ``figures``, ``report``, ``claims``, ``published``.
"""

from __future__ import annotations

from pathlib import Path

from .. import register
from ..base import Experiment, RunContext, Study
from . import cell, claims, data, figures, grid, report
from .config import Exp2Config


@register
class CifarAdversarialTraining(Study):
    name = "cifar-at"
    title = "CIFAR adversarial training: shallow CNN and ResNet-18, pretrained vs scratch"
    aliases = ("2",)
    config_class = Exp2Config
    experiments = ("exp2",)
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
        return figures.make_figures(results, out_dir)

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
