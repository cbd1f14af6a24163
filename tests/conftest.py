"""Shared fixtures: a miniature study-1 config that runs end to end in seconds on a CPU."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# The kit's tests never use a GPU, and never reach the network: keep torch on the CPU even where CUDA exists.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One process per run unless a test asks for --jobs: in-process runs stay in-process (monkeypatches apply, no
# worker start-up cost); tests/test_jobs.py runs workers explicitly.
os.environ.setdefault("ADVTRANSFER_JOBS", "1")

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SHARED = REPO_ROOT.parent / "shared"
sys.path.insert(0, str(TESTS_DIR))  # tests/httpserver.py and friends
pytest_plugins = ["skipcheck"]  # CI: every skip on tests/skip_allowlist.txt (tests/skipcheck.py)

from budget import UNDER_MUTANTS  # noqa: E402 (needs the path above)

if UNDER_MUTANTS:  # `nox -s mutants`: property tests without an explicit count draw fewer examples too
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("mutants", max_examples=10, deadline=None)
    _hypothesis_settings.load_profile("mutants")


def pytest_sessionstart(session) -> None:
    """Under mutmut every mutant's tests run in a process forked from one that has imported (and may have run) the
    unmutated code: empty advtransfer's functools caches first (the config reader checks each schema once), or a
    mutant of what they cache never runs and "survives"."""
    if not UNDER_MUTANTS:
        return
    for name, module in list(sys.modules.items()):
        if name == "advtransfer" or name.startswith("advtransfer."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()

MINI_EXP1 = """
[experiment]
study = "imagenet-transfer"
name = "exp1"
protocols = ["intended", "as-run"]

[common]
seeds = [0]
blocks = [4, 16]
eval_batch_size = 64
figure_eps = [0.03, 0.1]
pgd_steps = 2
crosscheck_subset = 8
[common.split]
test = 0.25
val = 0.2

[profiles.mini]
dataset = "tiny"
image_size = 16
batch_size = 16
eps = 0.03
eps_sweep = [0.1]
figure_class = "0"
[profiles.mini.tiny]
n_source_classes = 6
n_target_classes = 3
source_per_class = 16
target_per_class = 24
seed = 0
[profiles.mini.base_a]
source = "pretrain"
width_mult = 0.25
stride8 = true
[[profiles.mini.base_a.schedule]]
optimizer = "adam"
lr = 5e-3
epochs = 2
[[profiles.mini.schedules.bnb]]
optimizer = "adam"
lr = 3e-3
epochs = 2
[[profiles.mini.schedules.anb]]
optimizer = "adam"
lr = 3e-3
epochs = 2
[[profiles.mini.schedules.anb_plus]]
optimizer = "adam"
lr = 3e-3
epochs = 1
[[profiles.mini.schedules.anb_plus]]
optimizer = "rmsprop"
lr = 3e-4
epochs = 1
"""


# The modules whose tests take longest in all (module-scoped mini runs, multi-process runs): scheduled first, so no
# long module is left running alone at the end.
HEAVY_MODULES = ("test_study2", "test_cli_exp1", "test_jobs", "test_bad_input", "test_progress_logs", "test_scale",
                 "test_architectures", "test_studies", "test_bench_gpu", "test_backends")
# The slow tests (minutes each, or a browser): each is its own unit of work for the xdist workers. Names, because the
# xdist controller that schedules sees node ids only; pytest_collection_modifyitems checks them against the marker.
SOLO_TESTS = frozenset({
    "test_demo_profile_learns_and_fgsm_hurts", "test_demo_adversarial_training_is_more_robust_under_whitebox_pgd",
    "test_html_report_renders_with_its_figures_in_chromium", "test_html_report_shows_training_curves_of_both_studies"})


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")


def xdist_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its module (a module-scoped fixture, e.g. a trained mini grid, is then
    built by one worker only), or the test alone for the slow ones."""
    name = nodeid.split("::", 1)[-1].split("[", 1)[0]
    return nodeid if name in SOLO_TESTS else nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Module units in collection order (see pytest_collection_modifyitems). Not xdist's own loadgroup: with
    pytest 9.2 the group suffix it writes into a node id no longer reaches the id (pytest keeps ids in `_id`), so
    every test was its own unit and both workers rebuilt the same module fixtures (about 150 worker-seconds)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_unit(nodeid)

    config.option.loadscopereorder = False  # keep the order below, not largest unit first
    return ModuleScheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # after pytest-randomly's shuffle, before xdist reads the collection
def pytest_collection_modifyitems(config, items) -> None:
    """Order for two or more xdist workers: the slow demo-profile tests first, one per worker (each is minutes
    long), then each module's tests together (one unit, see xdist_unit), the heaviest modules first. Within a module
    pytest-randomly's order is kept."""
    for item in items:
        slow = item.get_closest_marker("slow") is not None
        if slow != (item.originalname in SOLO_TESTS):
            raise pytest.UsageError(f"{item.nodeid}: a test marked slow must be named in conftest.SOLO_TESTS, and "
                                    "every test named there marked slow")
    slow = sorted((i for i in items if i.get_closest_marker("slow")),
                  key=lambda i: (_module(i.nodeid) != "test_cli_exp1", _module(i.nodeid) != "test_study2", i.nodeid))
    rest = [i for i in items if not i.get_closest_marker("slow")]
    rank = {name: k for k, name in enumerate(HEAVY_MODULES)}
    rest.sort(key=lambda i: rank.get(_module(i.nodeid), len(rank)))  # stable: the shuffled order stays within a module
    items[:] = slow + rest


@pytest.fixture
def mini_exp1(tmp_path: Path) -> Path:
    """Path to a miniature exp1 config (profile ``mini``): 6 source / 3 target classes, 16 px, N in {4, 16}."""
    path = tmp_path / "exp1_mini.toml"
    path.write_text(MINI_EXP1)
    return path


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is faster, and far faster when other processes share the 2 cores.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads_per_module() -> Iterator[None]:
    """As :func:`_restore_torch_threads`, for module-scoped fixtures that set the count for their own runs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """Every test leaves torch's thread count as it found it: a run in this process and one in a subprocess are
    bit-identical only at the same thread count (float reduction order), so a count left behind by one test would
    make another's in-process vs subprocess comparison fail for the wrong reason."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)



def copy_run_without_autoattack(run: Path, out: Path) -> dict[Path, tuple[int, int]]:
    """A copy of a finished run folder as a run from before AutoAttack existed: its cells without AutoAttack rows,
    everything else hard-linked. Returns each checkpoint's (inode, mtime), to show a rerun rewrites none."""
    import json
    import shutil

    shutil.copytree(run, out, ignore=shutil.ignore_patterns("cells"), copy_function=os.link)
    (out / "cells").mkdir()
    for path in (run / "cells").iterdir():
        doc = json.loads(path.read_text())
        doc["evaluations"] = [r for r in doc["evaluations"] if r["attack"] != "autoattack"]
        (out / "cells" / path.name).write_text(json.dumps(doc))
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "checkpoints").rglob("*.pt")}
