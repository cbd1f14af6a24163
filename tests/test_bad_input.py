"""Hostile and careless input: every failure is one sentence, nothing is written where it should not be, nothing
finished is lost.

:data:`CASES` is a table of bad inputs over configs of both studies, command-line flags, paths, state files and
archives; each is run through the CLI and must give its exit code, exactly one ``advtransfer: error: ...`` line
(matching the case's pattern) and no traceback; a case refused before any work must leave no output folder. The
same table is the documentation: ``docs/bad-input.md`` is generated from it (``ADVTRANSFER_UPDATE_DOCS=1 pytest
tests/test_bad_input.py -k docs`` rewrites it). Signals, concurrent runs, a full file system and the HTML report's
escaping have tests of their own below.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from advtransfer.cli import main
from conftest import MINI_EXP1

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "bad-input.md"

# A study-2 grid small enough for seconds: BaseNet on a 4-class tiny stand-in, clean training only.
MICRO_EXP2 = """
[experiment]
study = "cifar-at"
name = "exp2"
protocols = ["intended"]

[common]
data = "tiny"
batch_size = 32
eps = 0.0313725
step = 0.0156863
steps = 2
crosscheck_subset = 8
tiny_per_class = 20
tiny_classes = { cifar10 = 4, cifar100 = 6 }
resnet_input_size = 16
[common.resnet_pretrained]
source = "pretrain"
classes = 4
per_class = 8
[[common.resnet_pretrained.schedule]]
optimizer = "adam"
lr = 1e-3
epochs = 1
[[common.clean_schedule]]
optimizer = "adam"
lr = 3e-3
epochs = 2
[[common.adv_schedule]]
optimizer = "adam"
lr = 1e-3
epochs = 1
[[common.settings]]
id = 1
dataset = "cifar10"
models = ["basenet"]
trainings = ["clean"]

[profiles.mini]
"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _config(tmp: Path, text: str, name: str = "bad.toml") -> str:
    path = tmp / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def exp1(old: str, new: str) -> Callable[[Path], list[str]]:
    """``advtransfer run`` of the study-1 mini config with one edit."""
    return lambda tmp: ["run", _config(tmp, _edit(MINI_EXP1, old, new)), "--profile", "mini", "--out",
                        str(tmp / "out")]


def exp2(old: str, new: str) -> Callable[[Path], list[str]]:
    """``advtransfer run`` of the study-2 micro config with one edit."""
    return lambda tmp: ["run", _config(tmp, _edit(MICRO_EXP2, old, new)), "--profile", "mini", "--out",
                        str(tmp / "out")]


def run1(*extra: str) -> Callable[[Path], list[str]]:
    """``advtransfer run`` of the valid study-1 mini config with extra arguments."""
    return lambda tmp: ["run", _config(tmp, MINI_EXP1, "mini.toml"), "--profile", "mini", "--out",
                        str(tmp / "out"), *extra]


def cli(*args: str) -> Callable[[Path], list[str]]:
    """A command line; ``{tmp}`` is replaced by the test's temporary folder."""
    return lambda tmp: [a.replace("{tmp}", str(tmp)) for a in args]


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    what: str  # the input, in words (docs/bad-input.md)
    argv: Callable[[Path], list[str]]
    expect: str  # a regex the error line must match (after "advtransfer: error: ")
    code: int = 2
    before_work: bool = True  # refused before any work: stderr is that one line and no output folder exists


def _tar(tmp: Path, members: list[tuple[str, bytes | None, str | None]], corrupt: bool = False) -> Path:
    """A cifar10-jpg source folder whose train tarball has ``members`` (name, data or None, hard link target)."""
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.LNKTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    payload = buf.getvalue()[:40] if corrupt else buf.getvalue()
    import hashlib

    for split in ("train", "test"):
        (src / f"cifar10-jpg-{split}.tar.gz").write_bytes(payload)
    (src / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(payload).hexdigest()}  cifar10-jpg-{s}.tar.gz\n"
                                            for s in ("train", "test")))
    return src


def archive(members, corrupt: bool = False) -> Callable[[Path], list[str]]:
    return lambda tmp: ["data", "fetch", "cifar10-jpg", "--source", str(_tar(tmp, members, corrupt)),
                        "--data-root", str(tmp / "data")]


CASES: list[Case] = [
    # ------------------------------------------------------------------------------------------ study-1 config
    Case("misspelt-key", "config (study 1)", "a misspelt key (`eval_batch_sise`)",
         exp1("eval_batch_size = 64", "eval_batch_sise = 64"),
         r"bad\.toml\[mini\]: unknown key 'eval_batch_sise'; did you mean 'eval_batch_size'\?"),
    Case("misspelt-section", "config (study 1)", "a misspelt section (`[comon]`)",
         exp1("[common]\n", "[comon]\n"), r"bad\.toml: unknown section .comon.*did you mean 'common'"),
    Case("misspelt-nested", "config (study 1)", "a misspelt nested key (`base_a.widht_mult`)",
         exp1("width_mult = 0.25", "widht_mult = 0.25"),
         r"\[mini\]\.base_a: unknown key 'widht_mult'; did you mean 'width_mult'\?"),
    Case("lr-inf", "config (study 1)", "`lr = inf` in a schedule", exp1("lr = 5e-3", "lr = inf"),
         r"\[mini\]\.base_a\.schedule\[0\]\.lr = inf: must be a finite number"),
    Case("lr-nan", "config (study 1)", "`lr = nan` in a schedule", exp1("lr = 3e-4", "lr = nan"),
         r"\.schedules\.anb_plus\[1\]\.lr = nan: must be a finite number"),
    Case("lr-huge", "config (study 1)", "`lr = 1e3` (a typo for 1e-3)", exp1("lr = 5e-3", "lr = 1e3"),
         r"\.lr = 1000\.0: must be .*10"),
    Case("eps-range", "config (study 1)", "`eps = 2.0` (pixel units are on [0, 1])", exp1("eps = 0.03", "eps = 2.0"),
         r"\[mini\]\.eps = 2\.0: must be .*1"),
    Case("blocks-invalid", "config (study 1)", "`blocks = [5]`", exp1("blocks = [4, 16]", "blocks = [5]"),
         r"\.blocks\[0\] = 5; valid: 4, 8, 12, 16"),
    Case("seeds-repeat", "config (study 1)", "`seeds = [0, 0]`", exp1("seeds = [0]", "seeds = [0, 0]"),
         r"\.seeds = \[0, 0\]: repeats 0; each value may appear once"),
    Case("seeds-negative", "config (study 1)", "`seeds = [-1]`", exp1("seeds = [0]", "seeds = [-1]"),
         r"\.seeds\[0\] = -1: must be between 0 and 2147483647"),
    Case("backends-empty", "config (study 1)", "`backends = []`", exp1("seeds = [0]", "seeds = [0]\nbackends = []"),
         r"\.backends = \[\]: must not be empty"),
    Case("backends-unknown", "config (study 1)", "`backends = [\"foolbox\"]`",
         exp1("seeds = [0]", 'seeds = [0]\nbackends = ["foolbox"]'),
         r"\.backends\[0\] = 'foolbox'; valid: 'native', 'torchattacks', 'art'"),
    Case("crosscheck-negative", "config (study 1)", "`crosscheck_subset = -1`",
         exp1("crosscheck_subset = 8", "crosscheck_subset = -1"), r"\.crosscheck_subset = -1: must be >= 0"),
    Case("one-class", "config (study 1)", "one class (`n_source_classes = 1`)",
         exp1("n_source_classes = 6", "n_source_classes = 1"), r"\.tiny\.n_source_classes = 1: must be between 2"),
    Case("one-image", "config (study 1)", "one image per class (`source_per_class = 1`)",
         exp1("source_per_class = 16", "source_per_class = 1"), r"\.tiny\.source_per_class = 1: must be between 2"),
    Case("empty-schedule", "config (study 1)", "an empty schedule",
         exp1('[[profiles.mini.schedules.bnb]]\noptimizer = "adam"\nlr = 3e-3\nepochs = 2\n',
              "[profiles.mini.schedules]\nbnb = []\n"), r"\.schedules\.bnb = \[\]: must not be empty"),
    Case("name-dotdot", "config (study 1)", "an experiment name with `../` (it would name paths)",
         exp1('name = "exp1"', 'name = "../x"'), r"bad\.toml\[experiment\]\.name = '\.\./x': must be a name of"),
    Case("name-slash", "config (study 1)", "an experiment name with a `/`",
         exp1('name = "exp1"', 'name = "a/b"'), r"\[experiment\]\.name = 'a/b': must be a name of"),
    Case("profile-slash", "config (study 1)", "a profile named `../p`",
         exp1("[profiles.mini]", '[profiles."../p"]'), r"bad\.toml.*'\.\./p'.*must be a name of"),
    Case("float-for-int", "config (study 1)", "`image_size = 16.5`", exp1("image_size = 16", "image_size = 16.5"),
         r"\.image_size = 16\.5: expected an integer"),
    Case("bool-for-int", "config (study 1)", "`batch_size = true`", exp1("batch_size = 16", "batch_size = true"),
         r"\.batch_size = True: expected an integer"),
    Case("table-for-number", "config (study 1)", "a table where a number goes (`eps = {x = 1}`)",
         exp1("eps = 0.03", "eps = {x = 1}"), r"\.eps = \{'x': 1\}: expected a number"),
    Case("list-for-table", "config (study 1)", "a list where a table goes (`split = [0.2]`)",
         exp1("[common.split]\ntest = 0.25\nval = 0.2\n", "split = [0.2]\n"),
         r"\[mini\]\.split: expected a table of keys, got an array \(\[0\.2\]\)"),
    Case("numbers-for-tables", "config (study 1)", "numbers where schedule phases go",
         exp1('[[profiles.mini.schedules.bnb]]\noptimizer = "adam"\nlr = 3e-3\nepochs = 2\n',
              "[profiles.mini.schedules]\nbnb = [1, 2]\n"), r"\.schedules\.bnb\[0\]: expected a table"),
    Case("not-utf8", "config (study 1)", "a config that is not UTF-8",
         lambda tmp: ["run", _config(tmp, MINI_EXP1.encode("utf-8").replace(b"exp1", b"exp\xff1")), "--profile",
                      "mini", "--out", str(tmp / "out")], r"bad\.toml is not UTF-8 text"),
    Case("not-toml", "config (study 1)", "a config that is not TOML", exp1("[common]", "[common"),
         r"bad\.toml is not valid TOML"),
    Case("deep-nesting", "config (study 1)", "arrays nested 1,000 levels deep",
         exp1("eval_batch_size = 64", "eval_batch_size = " + "[" * 1000 + "]" * 1000), r"bad\.toml: arrays or tables "
         r"nested too deeply"),
    Case("unknown-study", "config (study 1)", "`study = \"imagenet-transfr\"`",
         exp1('study = "imagenet-transfer"', 'study = "imagenet-transfr"'),
         r"\[experiment\]\.study: unknown study 'imagenet-transfr'; did you mean 'imagenet-transfer'\?"),
    Case("no-study", "config (study 1)", "no `study` in `[experiment]`",
         exp1('study = "imagenet-transfer"\n', ""), r"\[experiment\]: missing required key 'study'"),
    Case("pretrain-on-real-data", "config (study 1)", "Base A pretraining with real data",
         exp1('dataset = "tiny"', 'dataset = "imagenet-r"'), r"base_a\.source = 'pretrain' does not fit dataset"),
    # ------------------------------------------------------------------------------------------ study-2 config
    Case("duplicate-setting", "config (study 2)", "two settings with the same id",
         exp2("[profiles.mini]", '[[common.settings]]\nid = 1\ndataset = "cifar100"\nmodels = ["basenet"]\n'
              'trainings = ["clean"]\n[profiles.mini]'), r"\.settings: id 1 appears 2 times"),
    Case("models-empty", "config (study 2)", "`models = []`", exp2('models = ["basenet"]', "models = []"),
         r"\.settings\[0\]\.models = \[\]: must not be empty"),
    Case("no-clean", "config (study 2)", "trainings without `clean`",
         exp2('trainings = ["clean"]', 'trainings = ["pgd"]'), r"\.trainings = \['pgd'\] must include 'clean'"),
    Case("unknown-model", "config (study 2)", "`models = [\"resnet50\"]`",
         exp2('models = ["basenet"]', 'models = ["resnet50"]'), r"\.settings\[0\]\.models\[0\] = 'resnet50'"),
    Case("step-inf", "config (study 2)", "`step = -inf`", exp2("step = 0.0156863", "step = -inf"),
         r"\.step = -inf: must be a finite number"),
    Case("tiny-one-class", "config (study 2)", "a one-class stand-in (`tiny_classes.cifar10 = 1`)",
         exp2("cifar10 = 4", "cifar10 = 1"), r"\.tiny_classes\.cifar10 = 1: must be between 2"),
    Case("val-one", "config (study 2)", "`val = 1.0`", exp2("steps = 2", "steps = 2\nval = 1.0"),
         r"\.val = 1\.0: must be between 0 and 1 \(exclusive\)"),
    Case("unknown-data", "config (study 2)", "`data = \"imagenet\"`", exp2('data = "tiny"', 'data = "imagenet"'),
         r"\.data = 'imagenet'; valid: 'cifar', 'tiny', 'cifar10-jpg'"),
    Case("model-schedule-typo", "config (study 2)", "a schedule for a model that does not exist",
         exp2("[profiles.mini]", "[profiles.mini.model_schedules.basenett]\nclean = []"),
         r"\.model_schedules: unknown key 'basenett'; did you mean 'basenet'\?"),
    Case("steps-zero", "config (study 2)", "`steps = 0`", exp2("steps = 2", "steps = 0"),
         r"\.steps = 0: must be >= 1"),
    # --------------------------------------------------------------------------------------------- CLI flags
    Case("backends-flag-empty", "CLI flags", "`--backends ''`", run1("--backends", ""),
         r"--backends ''; valid: a comma-separated list of native, torchattacks, art"),
    Case("backends-flag-repeat", "CLI flags", "`--backends native,native`", run1("--backends", "native,native"),
         r"--backends 'native,native'; valid: .* without repeats"),
    Case("backends-flag-unknown", "CLI flags", "`--backends foolbox`", run1("--backends", "foolbox"),
         r"--backends 'foolbox'; valid"),
    Case("shard-zero", "CLI flags", "`--shard 0/2`", run1("--shard", "0/2"), r"--shard '0/2'; valid: K/N"),
    Case("shard-past", "CLI flags", "`--shard 3/2`", run1("--shard", "3/2"), r"--shard '3/2'; valid: K/N"),
    Case("cells-nomatch", "CLI flags", "`--cells 'zzz*'` matching no cell", run1("--cells", "zzz*"),
         r"--cells 'zzz\*' matches none of the 12 cells"),
    Case("profile-unknown", "CLI flags", "`--profile mnii`", cli("run", "exp1", "--profile", "mnii"),
         r"exp1\.toml: unknown profile 'mnii'.*valid profiles: paper, demo"),
    Case("experiment-unknown", "CLI flags", "an unknown experiment name", cli("run", "exp9", "--profile", "demo"),
         r"unknown experiment 'exp9'.*exp1, exp2"),
    Case("experiment-dotdot", "CLI flags", "the experiment `../exp1`", cli("run", "../exp1", "--profile", "demo"),
         r"'\.\./exp1'.*must be a name of.*\.toml"),
    Case("experiment-missing-file", "CLI flags", "a `.toml` path that does not exist",
         cli("run", "{tmp}/none.toml", "--profile", "demo"), r"experiment config .*none\.toml does not exist"),
    Case("device-cuda", "CLI flags", "`--device cuda` without a GPU", run1("--device", "cuda"),
         r"--device cuda: no CUDA device is visible"),
    Case("reproduce-profile", "CLI flags", "`reproduce-all --profile nope`",
         cli("reproduce-all", "--profile", "nope", "--out", "{tmp}/out"),
         r"reproduce-all --profile 'nope': no registered experiment has that profile"),
    Case("reproduce-experiment", "CLI flags", "`reproduce-all --experiments exp9`",
         cli("reproduce-all", "--profile", "demo", "--experiments", "exp9", "--out", "{tmp}/out"),
         r"unknown experiment 'exp9'"),
    Case("figures-missing", "CLI flags", "`figures --results` a folder that does not exist",
         cli("figures", "--results", "{tmp}/none"), r"--results .*none does not exist"),
    Case("argparse-n", "CLI flags", "`crosscheck --n 0`", cli("crosscheck", "--n", "0"),
         r"argument --n: '0' is not a positive integer; see `advtransfer crosscheck --help`"),
    Case("argparse-eps", "CLI flags", "`bench attacks --eps 2`", cli("bench", "attacks", "--eps", "2"),
         r"argument --eps: '2': eps is in pixel units"),
    Case("argparse-command", "CLI flags", "an unknown command", cli("trian"),
         r"argument COMMAND: invalid choice: 'trian'"),
    # -------------------------------------------------------------------------------------------------- paths
    Case("out-is-file", "paths", "`--out` is a file",
         lambda tmp: (tmp / "f").write_text("x") and [*run1()(tmp)[:-1], str(tmp / "f")],
         r"--out .*f exists and is not a directory"),
    Case("out-under-file", "paths", "`--out` under a file",
         lambda tmp: (tmp / "f").write_text("x") and [*run1()(tmp)[:-1], str(tmp / "f" / "sub")],
         r"--out .*f/sub: .*f is a file, so no folder can be created under it"),
    Case("out-proc", "paths", "`--out` on /proc", lambda tmp: [*run1()(tmp)[:-1], "/proc/advtransfer"],
         r"--out /proc/advtransfer is on the special file system /proc"),
    Case("data-fetch-source", "paths", "`data fetch cifar10-jpg --source` a folder that does not exist",
         cli("data", "fetch", "cifar10-jpg", "--source", "{tmp}/nothing", "--data-root", "{tmp}/data"),
         r"--source .*nothing does not exist"),
    # -------------------------------------------------------------------------------------------- archives
    Case("archive-dotdot", "archives", "a tarball with a `../` member",
         archive([("cifar10-jpg/train/../../evil.txt", b"x", None)]), r"Refusing to extract .*contains '\.\.'",
         before_work=False),
    Case("archive-absolute", "archives", "a tarball with an absolute member",
         archive([("/tmp/evil.txt", b"x", None)]), r"Refusing to extract .*has an absolute path", before_work=False),
    Case("archive-dangling-link", "archives", "a tarball whose hard link points nowhere",
         archive([("cifar10-jpg/train/a.jpg", None, "cifar10-jpg/train/none.jpg")]),
         r"Refusing to extract .*hard link to .*not an earlier member", before_work=False),
    Case("archive-corrupt", "archives", "a truncated tarball", archive([("a", b"x" * 5000, None)], corrupt=True),
         r"Cannot extract .*corrupt, truncated or not a tar archive", before_work=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case: Case, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    before = set(tmp_path.rglob("*"))
    argv = case.argv(tmp_path)
    created = set(tmp_path.rglob("*")) - before  # the case's own input files
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == case.code, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("advtransfer: error:")]
    assert len(errors) == 1, err
    assert re.search(case.expect, errors[0]), (case.expect, errors[0])
    if case.before_work:
        assert err.strip() == errors[0], err
        assert set(tmp_path.rglob("*")) - before - created == set()  # nothing written, no output folder
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_enough_cases_over_every_category() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert {c.category for c in CASES} >= {"config (study 1)", "config (study 2)", "CLI flags", "paths", "archives"}


# ------------------------------------------------------------------------------------------- the documentation


def docs_table() -> str:
    lines = ["# Bad input and what the kit says", "",
             "Generated from `tests/test_bad_input.py` (`ADVTRANSFER_UPDATE_DOCS=1 pytest tests/test_bad_input.py -k "
             "docs` rewrites it); every row is a test. Each input is refused with exit status 2 and one line "
             "`advtransfer: error: ...` matching the pattern; inputs refused before any work leave no output "
             "folder. The tests after the table cover state files, training health, signals, concurrent runs, a full "
             "file system and the HTML report.", "",
             "| category | input | the error line matches |", "|---|---|---|"]
    for c in CASES:
        pattern = c.expect.replace("|", "\\|")
        lines.append(f"| {c.category} | {c.what} | `{pattern}` |")
    lines += ["", "## State, training, signals, concurrency", "",
              "| situation | what happens | test |", "|---|---|---|"]
    lines += [f"| {a} | {b} | `{t}` |" for a, b, t in STATE_CASES]
    return "\n".join(lines) + "\n"


STATE_CASES = [
    ("a cell's result file is corrupt or not a cell result", "the cell is recomputed and its file replaced; the log "
     "says so", "test_corrupt_or_foreign_cell_file_is_recomputed"),
    ("a checkpoint is damaged or not a checkpoint of this kit", "one line naming the file: delete it, the training "
     "starts again from its first epoch (only the newest checkpoint is kept)", "test_bad_checkpoint_names_the_file"),
    ("a split manifest is damaged or foreign", "one line naming the file: delete it, the same seeded split is made "
     "again", "test_bad_manifest_names_the_file"),
    ("`figures` over a folder with a foreign file in cells/", "one line naming the file",
     "test_figures_refuses_a_foreign_cell_file"),
    ("a training whose loss or weights become NaN/inf", "the run stops with one line naming the cell, the epoch "
     "and the likely cause (learning rate, precision); nothing of that cell is recorded", "test_diverging_training"),
    ("SIGTERM (SLURM, docker stop) mid-cell", "one line, exit 143; the rerun resumes to the same results",
     "test_sigterm_mid_cell_says_so_and_resumes"),
    ("two identical runs at once into one --out", "each cell and each training computed once (locks naming pid "
     "and host); both exit 0; results.csv equals one run's", "test_two_runs_at_once"),
    ("the file system fills up", "one line (ENOSPC) naming the file; earlier files byte-identical, no temporary "
     "file left", "test_full_file_system"),
    ("markup in text that reaches report.html", "escaped: the page's only markup is the renderer's own",
     "test_report_html_escapes_everything"),
]


def test_docs_table_is_current() -> None:
    text = docs_table()
    if os.environ.get("ADVTRANSFER_UPDATE_DOCS"):
        DOCS.parent.mkdir(exist_ok=True)
        DOCS.write_text(text)
    assert DOCS.is_file() and DOCS.read_text() == text, "rerun with ADVTRANSFER_UPDATE_DOCS=1 to rewrite the docs"


# ----------------------------------------------------------------------------------------------- state files


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(config, results folder) of one finished study-1 mini run; tests copy it before changing it."""
    tmp = tmp_path_factory.mktemp("finished")
    config = Path(_config(tmp, MINI_EXP1, "mini.toml"))
    out = tmp / "out"
    torch.set_num_threads(1)
    assert main(["run", str(config), "--profile", "mini", "--out", str(out), "--device", "cpu"]) == 0
    return config, out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _one_error(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("advtransfer: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize("content", ['{"truncated": ', '{"a": 1}', "[]"])
def test_corrupt_or_foreign_cell_file_is_recomputed(finished, tmp_path: Path, capsys, content: str) -> None:
    config, ref = finished
    out = _copy(ref, tmp_path / "out")
    cell = out / "cells" / "exp1-intended-a4b-s0.json"
    cell.write_text(content)
    capsys.readouterr()
    assert main(["run", str(config), "--profile", "mini", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"[exp1-intended-a4b-s0] {cell} is corrupt or not a cell result of this kit: recomputing the cell" in err
    assert (out / "results.csv").read_text() == (ref / "results.csv").read_text()


@pytest.mark.parametrize("content, reason", [(b"not a checkpoint", "UnpicklingError|RuntimeError|Error"),
                                             (None, "missing model, optimizer, history, fingerprint")])
def test_bad_checkpoint_names_the_file(finished, tmp_path: Path, capsys, content, reason: str) -> None:
    config, ref = finished
    out = _copy(ref, tmp_path / "out")
    (out / "cells" / "exp1-intended-a4b-s0.json").unlink()  # the cell is rerun and resumes from its checkpoint
    ckpt = next((out / "checkpoints" / "exp1-intended-a4b-s0").glob("epoch_*.pt"))
    if content is None:
        torch.save({"something": 1}, ckpt)
    else:
        ckpt.write_bytes(content)
    capsys.readouterr()
    assert main(["run", str(config), "--profile", "mini", "--out", str(out)]) == 2
    line = _one_error(capsys.readouterr().err)
    assert re.search(rf"checkpoint {re.escape(str(ckpt))} is unreadable or not a checkpoint of this kit \(.*({reason})"
                     r".*\); delete it: the training then starts again from its first epoch", line), line
    assert ckpt.exists()  # refused, not deleted behind the user's back


@pytest.mark.parametrize("content", ["{broken", "[]", '{"settings": {}, "indices": 3}'])
def test_bad_manifest_names_the_file(finished, tmp_path: Path, capsys, content: str) -> None:
    config, ref = finished
    out = _copy(ref, tmp_path / "out")
    (out / "cells" / "exp1-intended-a4b-s0.json").unlink()
    manifest = out / "manifests" / "exp1-intended-s0.json"
    manifest.write_text(content)
    capsys.readouterr()
    code = main(["run", str(config), "--profile", "mini", "--out", str(out)])
    line = _one_error(capsys.readouterr().err)
    assert code == 2 and f"split manifest {manifest}" in line, line
    assert ("is corrupt or not a manifest of this kit: delete it and rerun" in line
            or ("was made from other data or settings" in line and "delete the folder's manifests/" in line)), line


def test_figures_refuses_a_foreign_cell_file(finished, tmp_path: Path, capsys) -> None:
    _, ref = finished
    out = _copy(ref, tmp_path / "out")
    (out / "cells" / "zzz.json").write_text('{"cell": "zzz"}')
    before = (out / "results.csv").read_bytes()
    assert main(["figures", "--results", str(out)]) == 2
    line = _one_error(capsys.readouterr().err)
    assert "result file" in line and "zzz.json" in line and "delete it" in line, line
    assert (out / "results.csv").read_bytes() == before


def test_diverging_training(tmp_path: Path, capsys, monkeypatch) -> None:
    """A model whose weights become NaN (here one is NaN from the start, as after an overflowing step): the run
    stops with one line naming the cell, the epoch and the cause; no cell is recorded."""
    from advtransfer.studies.cifar_at import cell as cell_module

    real = cell_module.basenet

    def broken(*args, **kwargs):
        net = real(*args, **kwargs)
        with torch.no_grad():
            next(net.parameters()).view(-1)[0] = float("nan")
        return net

    monkeypatch.setattr(cell_module, "basenet", broken)
    out = tmp_path / "out"
    torch.set_num_threads(1)
    assert main(["run", _config(tmp_path, MICRO_EXP2), "--profile", "mini", "--out", str(out), "--device", "cpu"]) == 2
    line = _one_error(capsys.readouterr().err)
    assert re.search(r"training exp2-e1-intended-basenet-clean-s0 diverged in epoch 1/2: the loss or a weight "
                     r"became NaN or infinite; lower the learning rate in the config's schedule \(now adam lr "
                     r"0\.003\)\. Nothing of this cell is recorded; finished cells are kept", line), line
    assert not (out / "cells").exists() or not list((out / "cells").iterdir())
    assert not list((out / "checkpoints").rglob("epoch_*.pt"))  # the diverged epoch is not saved


def test_fit_stops_a_diverging_training_and_names_bf16(tmp_path: Path) -> None:
    from advtransfer.config.common import Phase
    from advtransfer.data.images import TensorImages
    from advtransfer.engine.train import fit
    from advtransfer.errors import TrainingDiverged
    from advtransfer.models.basenet import basenet

    g = torch.Generator().manual_seed(0)
    data = TensorImages(torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g))
    with pytest.raises(TrainingDiverged, match=r"^training run diverged in epoch 1/3: .*now sgd lr 1e\+30\) or "
                                               r"train in fp32 \(--precision fp32\)\. Nothing of this cell"):
        fit(basenet(10, seed=0), (Phase("sgd", 1e30, 3),), data, None, seed=0, batch_size=16,
            ckpt_dir=tmp_path / "run", fingerprint="x", device=torch.device("cpu"), log=lambda m: None,
            precision="bf16")


# ------------------------------------------------------------------------------------- signals, concurrency


def _cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advtransfer", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=600, check=False)


def test_sigterm_mid_cell_says_so_and_resumes(finished, tmp_path: Path) -> None:
    config, ref = finished
    out = tmp_path / "out"
    args = ["run", str(config), "--profile", "mini", "--out", str(out), "--device", "cpu"]
    killed = _cli(args, {"ADVTRANSFER_KILL_AFTER_EPOCH": "1", "ADVTRANSFER_KILL_SIGNAL": "TERM"})
    assert killed.returncode == 143, killed.stderr
    assert killed.stderr.strip().splitlines()[-1] == ("advtransfer: terminated (SIGTERM); finished cells and "
                                                      "checkpoints are kept, rerun the same command to resume")
    assert "Traceback" not in killed.stderr and not list(out.rglob("*.tmp")) and not list(out.rglob("*.lock"))
    resumed = _cli(args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch_001.pt" in resumed.stderr
    assert (out / "results.csv").read_text() == (ref / "results.csv").read_text()


def test_two_runs_at_once(finished, tmp_path: Path) -> None:
    """Two identical commands into one --out: no traceback, every training happens once, and the final
    results.csv is a single run's."""
    config, ref = finished
    out = tmp_path / "out"
    args = [sys.executable, "-m", "advtransfer", "run", str(config), "--profile", "mini", "--out", str(out),
            "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
             for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert all("Traceback" not in e for e in errs)
    # 1 Base A pretraining and 10 trainings of 2 epochs each, whoever did them
    assert sum(e.count("  epoch 1/2 ") for e in errs) == 11, errs
    assert (out / "results.csv").read_text() == (ref / "results.csv").read_text()
    assert not list(out.rglob("*.lock"))


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                            check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip() or result.returncode})")


def test_full_file_system(finished, tmp_path: Path, capsys) -> None:
    config, ref = finished
    fs = tmp_path / "fs"
    _mount_tmpfs(fs, "64m")
    try:
        out = _copy(ref, fs / "out")
        shutil.rmtree(out / "checkpoints" / "exp1-intended-a4b-s0")
        (out / "cells" / "exp1-intended-a4b-s0.json").unlink()  # this cell must be trained and written again
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        with open(fs / "filler", "wb") as fh:  # fill the file system
            block = b"\0" * (1 << 20)
            try:
                while True:
                    fh.write(block)
                    fh.flush()
            except OSError:
                pass
        capsys.readouterr()
        assert main(["run", str(config), "--profile", "mini", "--out", str(out), "--device", "cpu"]) == 2
        line = _one_error(capsys.readouterr().err)
        assert re.search(r"cannot write .*: No space left on device \(ENOSPC\); free some space, or give another "
                         r"--out\. Files written before are intact; rerun to resume", line), line
        assert {p: p.read_bytes() for p in before} == before  # byte-identical
        assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(fs)], check=False)


# ---------------------------------------------------------------------------------------------------- HTML


def test_report_html_escapes_everything(finished, tmp_path: Path) -> None:
    """Text that reaches the report (here a sanity flag and a cross-check row of a cell file, and a summary line
    of the report's own form) is escaped: no markup of its own survives in report.html."""
    _, ref = finished
    out = _copy(ref, tmp_path / "out")
    path = out / "cells" / "exp1-intended-a4b-s0.json"
    doc = json.loads(path.read_text())
    doc["checks"] = [{"check": "<script>alert(1)</script>", "model": "a4b",
                      "detail": "\n<details><summary><script>alert(2)</script></summary>\n", "meaning": "<b>x</b>"}]
    doc["crosscheck"][0]["model"] = "<img src=x onerror=alert(3)>"
    path.write_text(json.dumps(doc))
    assert main(["figures", "--results", str(out)]) == 0
    page = (out / "report.html").read_text()
    for markup in ("<script", "<img src=x", "<b>x</b>", "onerror=alert(3)>"):
        assert markup not in page, markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p", "table", "thead",
               "tbody", "tr", "th", "td", "ul", "li", "code", "strong", "em", "details", "summary", "figure", "img"}
    tags = set(re.findall(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)", page))
    assert {t for _, t in tags} <= allowed | {"!DOCTYPE"}
