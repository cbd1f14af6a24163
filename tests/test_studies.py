"""Studies are plug-ins: a third study registered from outside the kit runs end to end with no kit file edited.

The plug-in below lives only in this test: a module and its package metadata (an ``advtransfer.studies`` entry
point) written into a temporary folder on PYTHONPATH, plus an experiment config of its own. ``advtransfer run``,
``figures`` and ``reproduce-all`` (real subprocesses, so the registry starts empty) must give its rows in
results.csv, its figure and its report section, including its claim.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from advtransfer import studies
from advtransfer.errors import ConfigError

PLUGIN = textwrap.dedent('''
    """A minimal study: coins of known bias "classify" n test examples; a claim says the fairer coin scores lower."""
    from __future__ import annotations

    from dataclasses import dataclass
    from pathlib import Path
    from typing import Annotated

    import numpy as np

    from advtransfer.config.common import Protocols, Seeds
    from advtransfer.config.reader import NonEmpty, Range, Unique
    from advtransfer.reporting.claims import Claim, Comparison
    from advtransfer.reporting.plotting import new_figure, save_figure
    from advtransfer.results.schema import evaluation_record
    from advtransfer.studies import register
    from advtransfer.studies.base import Study

    HERE = Path(__file__).resolve().parent


    @dataclass(frozen=True)
    class CoinConfig:
        biases: Annotated[tuple[Annotated[float, Range(0, 1)], ...], NonEmpty, Unique]
        n: Annotated[int, Range(10, 100_000)] = 400
        seeds: Seeds = (0,)
        protocols: Protocols = ("intended",)


    @dataclass(frozen=True)
    class CoinCell:
        experiment: str
        protocol: str
        seed: int
        bias: float

        @property
        def model(self) -> str:
            return f"b{round(100 * self.bias):02d}"

        @property
        def key(self) -> str:
            return f"{self.experiment}-{self.protocol}-{self.model}-s{self.seed}"

        @property
        def unit(self) -> str:
            return self.key


    @register
    class CoinStudy(Study):
        name = "coin-flips"
        title = "Coin flips (a plug-in study)"
        config_class = CoinConfig
        experiments = (str(HERE / "coins.toml"),)
        claims = (Claim("c.1", "A biased coin beats a fair one.", "b80 > b50 (accuracy)",
                        lambda keys: [Comparison(("b80",), ("b50",))]),)

        def plan(self, exp):
            return [CoinCell(exp.name, p, s, b) for p in exp.cfg.protocols for s in exp.cfg.seeds
                    for b in exp.cfg.biases]

        def runner(self, exp, run):
            def run_cell(cell, existing):
                rng = np.random.default_rng([cell.seed, round(1000 * cell.bias)])
                flags = rng.random(exp.cfg.n) < cell.bias
                run.log(f"[{cell.key}] flipped {exp.cfg.n} times")
                return {"protocol": cell.protocol, "seed": cell.seed, "model": cell.model, "family": "coin",
                        "data": {"test_set": f"coins-{exp.cfg.n}-s{cell.seed}"}, "backends": [],
                        "evaluations": [evaluation_record(attack="none", threat="natural", source_model="", eps=0.0,
                                                          backend="", flags=flags, primary=True)]}
            return run_cell

        def figures(self, results, root, out_dir):
            fig = new_figure(4, 3)
            ax = fig.subplots()
            found = results.find(threat="natural")
            ax.bar([k.model for k in found], [e.mean for e in found.values()])
            return save_figure(fig, out_dir, "coin_accuracy")

        def claim_key(self, key):
            return (key.model,)
''')

CONFIG = textwrap.dedent('''
    [experiment]
    study = "{study}"
    name = "coins"
    title = "Three coins"

    [common]
    biases = [0.5, 0.8, 0.3]

    [profiles.mini]
    n = 300
    seeds = [0, 1]
''')


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    """A folder holding the plug-in module, its entry point and its experiment config."""
    root = tmp_path / "plugin"
    root.mkdir()
    (root / "coin_study.py").write_text(PLUGIN)
    (root / "coins.toml").write_text(CONFIG.format(study="coin-flips"))
    dist = root / "coin_study-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: coin-study\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[advtransfer.studies]\ncoin-flips = coin_study\n")
    return root


def _cli(plugin: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "advtransfer.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _check_outputs(out: Path) -> None:
    rows = _rows(out)
    assert {r["study"] for r in rows} == {"coin-flips"}
    assert sorted((r["model"], r["seed"]) for r in rows) == [(m, s) for m in ("b30", "b50", "b80") for s in "01"]
    by_model = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(float(r["accuracy"]))
        assert r["n"] == "300" and r["n_seeds"] == "2"
    assert sum(by_model["b80"]) / 2 > sum(by_model["b50"]) / 2 > sum(by_model["b30"]) / 2
    assert (out / "figures" / "coin_accuracy.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "## Coin flips (a plug-in study)" in report  # the default section of a study
    assert "![coin_accuracy](figures/coin_accuracy.png)" in report
    claim_row = next(line for line in report.splitlines() if line.startswith("| c.1 |"))
    assert claim_row.endswith("| **supported** |")  # 0.8 vs 0.5 on 600 paired flips
    assert "paired: McNemar exact p" in report
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_a_plugin_study_runs_through_run_and_figures(plugin: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _cli(plugin, "run", str(plugin / "coins.toml"), "--profile", "mini", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "[coins-intended-b80-s1] flipped 300 times" in result.stderr
    _check_outputs(out)
    before = (out / "results.csv").read_text()
    (out / "results.csv").unlink()
    (out / "report.md").unlink()
    result = _cli(plugin, "figures", "--results", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "results.csv").read_text() == before
    _check_outputs(out)


def test_reproduce_all_runs_the_plugin_study(plugin: Path, tmp_path: Path) -> None:
    """reproduce-all iterates over the registry: the kit's studies have no profile `mini` and are skipped."""
    out = tmp_path / "all"
    result = _cli(plugin, "reproduce-all", "--profile", "mini", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "exp1 has no profile 'mini', skipped" in result.stderr and "exp2 has no profile 'mini'" in result.stderr
    _check_outputs(out)


def test_a_study_named_by_dotted_path_needs_no_entry_point(plugin: Path, tmp_path: Path) -> None:
    (plugin / "coin_study-0.1.dist-info" / "entry_points.txt").unlink()
    config = tmp_path / "dotted.toml"
    config.write_text(CONFIG.format(study="coin_study:CoinStudy"))
    out = tmp_path / "dotted"
    result = _cli(plugin, "run", str(config), "--profile", "mini", "--out", str(out))
    assert result.returncode == 0, result.stderr
    _check_outputs(out)


def test_reproduce_all_with_a_profile_no_study_has_is_one_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "advtransfer.cli", "reproduce-all", "--profile", "nope", "--out",
                             str(tmp_path / "o")], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("advtransfer: error: reproduce-all --profile 'nope': no "
                                                             "registered experiment has that profile; valid: ")
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


def test_unknown_study_names_the_registered_ones(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text(CONFIG.format(study="imagenet-transfr"))
    with pytest.raises(ConfigError, match=r"unknown study 'imagenet-transfr'; did you mean 'imagenet-transfer'\? "
                                          r"registered: cifar-at, imagenet-transfer"):
        studies.load_experiment(str(config), "mini")


def test_a_dotted_path_to_something_else_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text(CONFIG.format(study="json:dumps"))
    with pytest.raises(ConfigError, match=r"study 'json:dumps': json.dumps is not a Study subclass or instance"):
        studies.load_experiment(str(config), "mini")


def test_registry_holds_the_kits_studies_under_their_names_and_aliases() -> None:
    names = {s.name for s in studies.all_studies()}
    assert {"imagenet-transfer", "cifar-at"} <= names
    assert studies.get("1") is studies.get("imagenet-transfer")
    assert studies.get("2") is studies.get("cifar-at")
    assert studies.study_of_experiment("exp1") == "imagenet-transfer"
    assert studies.study_of_experiment("exp2") == "cifar-at"
    assert studies.study_of_experiment("elsewhere") == ""


def test_no_module_outside_a_study_package_names_a_study() -> None:
    """The CLI, reproduce-all, shards, the launcher and the report iterate over the registry."""
    src = Path(studies.__file__).resolve().parents[1]
    offenders = []
    for path in src.rglob("*.py"):
        rel = path.relative_to(src).as_posix()
        if rel.startswith("studies/"):
            continue
        text = path.read_text()
        for needle in ("imagenet_transfer", "imagenet-transfer", "cifar_at", "cifar-at", "study1", "study2",
                       '"exp1"', '"exp2"'):
            if needle in text:
                offenders.append(f"{rel}: {needle}")
    assert offenders == []
