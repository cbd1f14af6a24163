"""Training: a killed run resumes from its last checkpoint and ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from advtransfer.config.common import Phase
from advtransfer.data.images import TensorImages
from advtransfer.engine.train import epoch_seed, fit
from advtransfer.errors import DataError
from advtransfer.models.mobilenet import build_mobilenet_v2, wrap

CPU = torch.device("cpu")


def _data(n: int = 48, classes: int = 3, seed: int = 0) -> TensorImages:
    g = torch.Generator().manual_seed(seed)
    return TensorImages(torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, classes, (n,), generator=g))


def _model(seed: int = 0):
    # classifier has Dropout(0.2): exercises the per-epoch RNG handling too
    return wrap(build_mobilenet_v2(3, width_mult=0.25, stride8=True, seed=seed))


def _fit(model, schedule, ckpt, **kw):
    kw.setdefault("log", lambda m: None)
    return fit(model, schedule, _data(), _data(16, seed=1), seed=7, batch_size=8, ckpt_dir=ckpt, fingerprint="f",
               device=CPU, **kw)


def _same(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


SCHEDULES = {
    "one phase": (Phase("adam", 1e-3, 3),),
    "two phases": (Phase("adam", 1e-3, 2), Phase("rmsprop", 1e-4, 2)),
}


def test_resume_mid_phase_and_across_phases_is_bit_identical(tmp_path):
    for name, schedule in SCHEDULES.items():
        total = sum(p.epochs for p in schedule)
        full = _model()
        ref = _fit(full, schedule, tmp_path / name / "full")
        for stop in range(1, total):
            resumed = _model()
            first = _fit(resumed, schedule, tmp_path / name / f"stop{stop}", stop_after=stop)
            assert len(first.history) == stop
            again = _model()  # a fresh process would rebuild the model from scratch
            second = _fit(again, schedule, tmp_path / name / f"stop{stop}")
            assert second.resumed_from == stop
            _same(full, again)
            assert [h["train_loss"] for h in second.history] == [h["train_loss"] for h in ref.history]


def test_checkpoint_per_epoch_and_finished_run_is_not_retrained(tmp_path):
    schedule = SCHEDULES["two phases"]
    model = _model()
    _fit(model, schedule, tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["epoch_004.pt"]  # only the newest is kept
    again = _model(seed=99)  # different init: everything must come from the checkpoint
    result = _fit(again, schedule, tmp_path / "c")
    assert result.resumed_from == 4 and len(result.history) == 4
    _same(model, again)


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    schedule = SCHEDULES["one phase"]
    _fit(_model(), schedule, tmp_path / "c", stop_after=2)
    m = _model()
    result = fit(m, schedule, _data(), None, seed=7, batch_size=8, ckpt_dir=tmp_path / "c", fingerprint="other",
                 device=CPU, log=lambda msg: None)
    assert result.resumed_from == 0 and len(result.history) == 3


def test_training_leaves_global_rng_alone_and_is_deterministic(tmp_path):
    state = torch.get_rng_state()
    a, b = _model(), _model()
    _fit(a, SCHEDULES["one phase"], tmp_path / "a")
    _fit(b, SCHEDULES["one phase"], tmp_path / "b")
    assert torch.equal(state, torch.get_rng_state())
    _same(a, b)


def test_training_learns_and_epoch_seeds_differ(tmp_path):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (96,), generator=g)
    images = torch.rand(96, 3, 16, 16, generator=g) * 0.2 + labels.view(-1, 1, 1, 1) * 0.3  # separable by brightness
    data = TensorImages(images, labels)
    model = _model()
    result = fit(model, (Phase("adam", 3e-3, 6),), data, data, seed=0, batch_size=16, ckpt_dir=tmp_path,
                 fingerprint="f", device=CPU, log=lambda m: None)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["train_acc"] > 0.6  # (eval-mode BatchNorm statistics lag on so few steps)
    assert len({epoch_seed(0, e) for e in range(100)}) == 100


def test_adversarial_training_step_trains_on_adversarial_batches_and_resumes_exactly(tmp_path):
    """fit(adversary=...) feeds only adversarial batches to the optimizer; resume stays bit-identical."""
    from advtransfer.attacks import AttackSpec, attack

    spec = AttackSpec("fgsm_rs", 8 / 255, step=10 / 255, random_start=True)
    seen: list[float] = []

    def adversary(model, x, y, generator):
        adv = attack(model, x, y, spec, "native", generator=generator)
        seen.append((adv - x).abs().amax().item())
        assert model.training  # crafted in eval mode, then the training mode is back for the step
        return adv

    schedule = (Phase("sgd", 1e-3, 3),)
    full = _model()
    _fit(full, schedule, tmp_path / "full", adversary=adversary)
    assert seen and all(0 < d <= 8 / 255 + 1e-6 for d in seen)  # every batch perturbed, inside the ball
    resumed = _model()
    _fit(resumed, schedule, tmp_path / "r", adversary=adversary, stop_after=1)
    again = _model()
    _fit(again, schedule, tmp_path / "r", adversary=adversary)
    _same(full, again)
    clean = _model()
    _fit(clean, schedule, tmp_path / "clean")
    assert any(not torch.equal(a, b) for a, b in zip(full.state_dict().values(), clean.state_dict().values()))


def test_bf16_autocast_trains_in_fp32_weights_and_never_resumes_across_precisions(tmp_path):
    import pytest

    from advtransfer.engine.train import resolve_precision

    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="valid: auto, fp32, bf16"):
        resolve_precision("fp16", torch.device("cpu"))
    schedule = (Phase("adam", 1e-3, 1),)
    bf16 = _model()
    _fit(bf16, schedule, tmp_path, precision="bf16")
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    fp32 = _model()
    logs: list[str] = []
    fit(fp32, schedule, _data(), None, seed=7, batch_size=8, ckpt_dir=tmp_path, fingerprint="f", device=CPU,
        log=logs.append, precision="fp32")
    assert any("belong to another configuration" in m for m in logs)  # the bf16 checkpoint is not resumed
    assert any(not torch.equal(a, b) for a, b in zip(bf16.state_dict().values(), fp32.state_dict().values()))


class _Payload:
    """Unpickling this runs code: a checkpoint must never be read that way."""

    def __reduce__(self):
        return (Path.touch, (Path(os.environ["ADVTRANSFER_TEST_MARKER"]),))


@pytest.mark.parametrize("content, reason", [
    (b"not a checkpoint", "UnpicklingError: Weights only load failed."),
    (b"", "EOFError: )"),  # an exception without a message: its type alone
    ({"model": {}, "history": []}, "missing optimizer, fingerprint"),
    ([1, 2], "missing model, optimizer, history, fingerprint"),
    (_Payload(), "UnpicklingError: Weights only load failed."),
])
def test_damaged_or_foreign_checkpoint_is_one_error_and_runs_no_code(tmp_path, monkeypatch, content, reason):
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("ADVTRANSFER_TEST_MARKER", str(marker))
    ckpt = tmp_path / "c"
    ckpt.mkdir()
    path = ckpt / "epoch_002.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(DataError) as err:
        _fit(_model(), SCHEDULES["one phase"], ckpt)
    message = str(err.value)
    assert message.startswith(f"checkpoint {path} is unreadable or not a checkpoint of this kit ({reason}")
    assert message.endswith("; delete it: the training then starts again from its first epoch (only the newest "
                            "checkpoint is kept)")
    assert not marker.exists()


@pytest.mark.parametrize("name, kind, settings", [
    # Keras' epsilon, not torch's 1e-8; fused / foreach: one kernel over all parameters (the speed make_optimizer
    # documents), not a Python loop over them
    ("adam", torch.optim.Adam, {"lr": 0.003, "eps": 1e-7, "weight_decay": 0, "fused": True}),
    ("rmsprop", torch.optim.RMSprop, {"lr": 0.003, "eps": 1e-7, "alpha": 0.9, "momentum": 0, "weight_decay": 0,
                                      "foreach": True}),
    ("sgd", torch.optim.SGD, {"lr": 0.003, "momentum": 0.9, "weight_decay": 0.0, "nesterov": False, "fused": True}),
])
def test_optimizers_carry_the_protocols_hyperparameters(name: str, kind: type, settings: dict) -> None:
    """SPEC: Adam and RMSprop with Keras' defaults (eps 1e-7, rho 0.9), SGD with momentum 0.9 and no weight decay."""
    from advtransfer.engine.train import make_optimizer

    optimizer = make_optimizer(Phase(name, 0.003, 1), list(_model().parameters()))
    assert type(optimizer) is kind
    group = optimizer.param_groups[0]
    assert {k: group[k] for k in settings} == settings
    with pytest.raises(ValueError, match=r"^lbfgs$"):
        make_optimizer(_phase_named("lbfgs"), [])


def _phase_named(name: str) -> Phase:
    phase = Phase("adam", 0.001, 1)
    object.__setattr__(phase, "optimizer", name)  # past the config reader, which refuses it
    return phase


def test_resolve_precision() -> None:
    """``auto`` is bf16 on CUDA and fp32 on every CPU: which CPU a run lands on never changes its numbers."""
    from advtransfer.engine import train

    for device, auto in (("cpu", "fp32"), ("cuda", "bf16"), ("meta", "fp32")):
        assert train.resolve_precision("auto", torch.device(device)) == auto, device
        assert train.resolve_precision("fp32", torch.device(device)) == "fp32"
        assert train.resolve_precision("bf16", torch.device(device)) == "bf16"
    with pytest.raises(ValueError, match=r"^precision 'fp16'; valid: auto, fp32, bf16$"):
        train.resolve_precision("fp16", torch.device("cpu"))


def test_epoch_seeds_are_pinned() -> None:
    """The per-epoch seeds decide every shuffle and random start: a change to how they are derived changes every
    result, so their values are pinned (63-bit, per run seed and epoch, and per DDP rank)."""
    assert epoch_seed(0, 0) == 8026248942142792572
    assert epoch_seed(7, 3) == 6961207608856179310
    assert epoch_seed(7, 3, rank=1) == 783066588937660392
    assert all(0 <= epoch_seed(s, e) < 2**63 for s in range(5) for e in range(5))


def test_accuracy_counts_every_batch_and_divides_by_the_images() -> None:
    from advtransfer.engine.train import accuracy

    model, data = _model().eval(), _data(21)  # 21 images in batches of 8: the last batch is short
    with torch.no_grad():
        want = (model(data.images).argmax(1) == data.labels).sum().item() / 21
    assert accuracy(model, data, 8, CPU) == pytest.approx(want, abs=1e-12) and 0 < want < 1
    one = TensorImages(data.images[:1], model(data.images[:1]).argmax(1))  # one image, predicted right
    assert accuracy(model, one, 8, CPU) == 1.0
    assert accuracy(model, TensorImages(data.images[:0], data.labels[:0]), 8, CPU) == 0.0  # no images: 0, no error


def test_phase_of_each_epoch() -> None:
    from advtransfer.engine.train import _phase_of

    schedule = (Phase("adam", 1e-3, 2), Phase("rmsprop", 1e-4, 3))
    assert [_phase_of(schedule, e) for e in range(5)] == [0, 0, 1, 1, 1]
    with pytest.raises(IndexError, match=r"^5$"):
        _phase_of(schedule, 5)


def test_validation_accuracy_of_each_epoch_is_the_models_on_the_validation_set(tmp_path) -> None:
    from advtransfer.engine.train import accuracy

    model = _model()
    result = _fit(model, SCHEDULES["one phase"], tmp_path)
    assert [sorted(h) for h in result.history] == [sorted(["epoch", "phase", "optimizer", "lr", "train_loss",
                                                           "train_acc", "val_acc", "seconds"])] * 3
    assert result.history[-1]["val_acc"] == accuracy(model, _data(16, seed=1), 256, CPU)  # the last epoch's model
    without = fit(_model(), SCHEDULES["one phase"], _data(), None, seed=7, batch_size=8, ckpt_dir=tmp_path / "n",
                  fingerprint="f", device=CPU, log=lambda m: None)
    assert all("val_acc" not in h for h in without.history)


def _fingerprint_of(ckpt: Path) -> str:
    (path,) = ckpt.glob("epoch_*.pt")
    return torch.load(path, weights_only=True)["fingerprint"]


def test_checkpoint_fingerprint_is_the_callers_in_fp32_and_names_any_other_precision(tmp_path) -> None:
    """fp32 checkpoints carry the caller's fingerprint unchanged (those written before precision existed resume);
    another precision is appended, so a run never resumes across precisions; ``auto`` is resolved first."""
    schedule = (Phase("adam", 1e-3, 1),)
    for precision, ckpt, want in (("fp32", "a", "f"), ("auto", "b", "f"), ("bf16", "c", "f/bf16")):
        _fit(_model(), schedule, tmp_path / ckpt, precision=precision)
        assert _fingerprint_of(tmp_path / ckpt) == want, precision


def test_health_check_names_the_training_epoch_and_fix(monkeypatch) -> None:
    from advtransfer.engine.train import _check_health
    from advtransfer.errors import TrainingDiverged

    model, phase = _model(), Phase("rmsprop", 0.01, 4)
    assert _check_health(model, 1.5, "cell-a", 2, 4, phase, "fp32") is None
    with pytest.raises(TrainingDiverged) as err:
        _check_health(model, float("nan"), "cell-a", 2, 4, phase, "fp32")  # weights finite, loss not
    assert str(err.value) == ("training cell-a diverged in epoch 2/4: the loss or a weight became NaN or infinite; "
                              "lower the learning rate in the config's schedule (now rmsprop lr 0.01). Nothing of "
                              "this cell is recorded; finished cells are kept")
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("inf"))
    with pytest.raises(TrainingDiverged) as err:
        _check_health(model, 1.5, "cell-b", 3, 4, phase, "bf16")  # loss finite, a weight not
    assert str(err.value) == ("training cell-b diverged in epoch 3/4: the loss or a weight became NaN or infinite; "
                              "lower the learning rate in the config's schedule (now rmsprop lr 0.01) or train in "
                              "fp32 (--precision fp32). Nothing of this cell is recorded; finished cells are kept")


def test_fit_stops_a_diverging_training_naming_its_folder_epoch_and_phase(tmp_path) -> None:
    from advtransfer.errors import TrainingDiverged

    calls = []

    def poison_third_epoch(model, x, y, generator):  # 6 batches an epoch: NaN inputs from epoch 3 on
        calls.append(len(y))
        return x * float("nan") if len(calls) > 12 else x

    with pytest.raises(TrainingDiverged) as err:
        _fit(_model(), SCHEDULES["two phases"], tmp_path / "cell-x", adversary=poison_third_epoch)
    assert str(err.value) == ("training cell-x diverged in epoch 3/4: the loss or a weight became NaN or infinite; "
                              "lower the learning rate in the config's schedule (now rmsprop lr 0.0001). Nothing of "
                              "this cell is recorded; finished cells are kept")
    assert len(calls) == 18  # stopped at the end of epoch 3


def test_one_image_epoch_reports_that_images_loss_and_accuracy(tmp_path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))
    scored = []

    def score(model, x, y, generator):
        with torch.no_grad():
            logits = model(x)
        scored.append((F.cross_entropy(logits, y).item(), float((logits.argmax(1) == y).item())))
        return x

    data = _data(1)
    for wanted_label in (0, 1, 2):  # one of the three labels is the one predicted: accuracy 1.0 once at least
        data.labels[0] = wanted_label
        scored.clear()
        history = fit(net, (Phase("sgd", 0.0, 1),), data, None, seed=3, batch_size=8,
                      ckpt_dir=tmp_path / str(wanted_label), fingerprint="f", device=CPU, log=lambda m: None,
                      adversary=score).history
        assert [(h["train_loss"], h["train_acc"]) for h in history] == [pytest.approx(scored[0])]


def test_each_epochs_seconds_are_its_wall_time_on_the_clock(tmp_path, monkeypatch) -> None:
    """The clock (the boundary) is the test's: each batch advances it 0.1234 s, so an epoch of 6 batches took
    0.7404 s, rounded to 0.74 in the history and 0.7s in the log; the whole fit took 3 epochs of it."""
    import types

    import advtransfer.engine.train as train_module

    now = [100.0]
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))

    def tick(model, x, y, generator):
        now[0] += 0.1234
        return x

    lines: list[str] = []
    result = _fit(_model(), SCHEDULES["one phase"], tmp_path, adversary=tick, log=lines.append)
    assert [h["seconds"] for h in result.history] == [0.74, 0.74, 0.74]
    assert all(line.endswith(" (0.7s)") for line in lines) and len(lines) == 3
    assert result.seconds == pytest.approx(18 * 0.1234)


def test_fit_hands_the_model_back_in_eval_mode_and_the_default_memory_layout(tmp_path) -> None:
    # Training runs channels_last (faster convolutions); the caller gets the layout it gave, as every attack
    # library and a saved state_dict expect.
    model = _model()
    _fit(model, SCHEDULES["one phase"], tmp_path)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous() for p in convs) and not model.training


def test_fit_holds_the_training_lock_on_the_main_rank_only(tmp_path, monkeypatch) -> None:
    """The main process trains holding checkpoints/<key>/.lock (another process needing the same training waits);
    under torchrun only rank 0 takes it, and another rank trains the same without it."""
    import json

    from advtransfer.engine import distributed
    from advtransfer.engine.train import EPOCH_HOOK

    seen: list[tuple[str, int | None, int]] = []

    def hook(name: str, entry: dict) -> None:  # called after every epoch (the TensorBoard writer's hook)
        lock = tmp_path / name / ".lock"
        seen.append((name, json.loads(lock.read_text())["pid"] if lock.exists() else None, entry["epoch"]))

    token = EPOCH_HOOK.set(hook)
    try:
        main, main_lines = _model(), []
        ref = _fit(main, SCHEDULES["one phase"], tmp_path / "main", log=main_lines.append)
        monkeypatch.setattr(distributed, "is_main", lambda: False)
        other, rank_lines = _model(), []
        got = _fit(other, SCHEDULES["one phase"], tmp_path / "rank1", log=rank_lines.append)
    finally:
        EPOCH_HOOK.reset(token)
    assert seen == [("main", os.getpid(), e) for e in (1, 2, 3)] + [("rank1", None, e) for e in (1, 2, 3)]
    assert not (tmp_path / "main" / ".lock").exists()  # released after training
    _same(main, other)
    assert [h["val_acc"] for h in got.history] == [h["val_acc"] for h in ref.history]
    # the caller's log on every rank, one line an epoch (the seconds aside)
    untimed = [re.sub(r" \([0-9.]+s\)$", "", line) for line in main_lines]
    assert len(main_lines) == 3 and [re.sub(r" \([0-9.]+s\)$", "", line) for line in rank_lines] == untimed


def test_fit_waits_for_another_process_training_the_same_folder_and_says_so(tmp_path) -> None:
    """A live holder of the folder's lock (here: this test's parent process, as if it were training) makes fit
    wait with one line naming it, then train once the holder is gone."""
    import json
    import socket
    import threading

    ckpt = tmp_path / "shared-pretrain"
    ckpt.mkdir()
    lock = ckpt / ".lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started": "then"}))
    threading.Timer(0.5, lock.unlink).start()  # the holder finishes
    logs: list[str] = []
    result = fit(_model(), SCHEDULES["one phase"], _data(), None, seed=7, batch_size=8, ckpt_dir=ckpt,
                 fingerprint="f", device=CPU, log=logs.append)
    assert logs[0] == (f"[shared-pretrain] waiting for pid {os.getppid()} on {socket.gethostname()} (since then) "
                       f"to finish it ({lock})")
    assert len(result.history) == 3


def test_each_epoch_shuffles_with_its_own_seed_and_draws_random_starts_from_it(tmp_path) -> None:
    """Epoch e's batches follow ``torch.randperm`` from a generator seeded with ``epoch_seed(seed, e)``, and the
    adversary's random starts draw from a generator seeded the same way (so a resumed epoch replays them)."""
    data = _data()
    seen: list[tuple[torch.Tensor, int]] = []

    def record(model, x, y, generator):
        seen.append((x.clone(), generator.initial_seed()))
        return x

    fit(_model(), SCHEDULES["one phase"], data, None, seed=7, batch_size=8, ckpt_dir=tmp_path, fingerprint="f",
        device=CPU, log=lambda m: None, adversary=record)
    want = []
    for e in range(3):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch_seed(7, e)))
        want += [(data.images[order[i:i + 8]], epoch_seed(7, e)) for i in range(0, len(data), 8)]
    assert len(seen) == len(want) == 18
    assert all(torch.equal(x, wx) and s == ws for (x, s), (wx, ws) in zip(seen, want))


def test_each_epochs_train_loss_and_accuracy_are_the_means_over_its_images(tmp_path) -> None:
    """The history's train_loss and train_acc: mean cross-entropy and accuracy over the epoch's training batches
    (a short last batch weighted by its size), recomputed here from the logits each batch's step starts from."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))  # no BatchNorm, no dropout
    data = _data(44)  # batches of 8: the last has 4 images
    sums: list[list[float]] = [[0.0, 0.0]]

    def score(model, x, y, generator):
        with torch.no_grad():  # the same weights the step's forward sees
            logits = model(x)
        sums[-1][0] += F.cross_entropy(logits, y, reduction="sum").item()
        sums[-1][1] += (logits.argmax(1) == y).sum().item()
        return x

    history = []
    for epochs in (1, 2):  # epoch 2 resumes from epoch 1's checkpoint: its sums start from zero again
        sums.append([0.0, 0.0])
        history = fit(net, (Phase("adam", 1e-2, 2),), data, None, seed=3, batch_size=8, ckpt_dir=tmp_path,
                      fingerprint="f", device=CPU, log=lambda m: None, adversary=score, stop_after=epochs).history
    assert len(history) == 2
    for entry, (loss, correct) in zip(history, sums[1:]):
        assert entry["train_loss"] == pytest.approx(loss / 44, rel=1e-6)
        assert entry["train_acc"] == correct / 44


def test_history_checkpoint_and_log_lines_name_each_epoch_and_phase(tmp_path) -> None:
    """Each epoch's history entry, checkpoint and log line carry its 1-based number, phase and optimizer; a resume
    says where it starts from."""
    schedule = SCHEDULES["two phases"]
    logs: list[str] = []
    result = fit(_model(), schedule, _data(), _data(16, seed=1), seed=7, batch_size=8, ckpt_dir=tmp_path,
                 fingerprint="f", device=CPU, log=logs.append, stop_after=3)
    assert [(h["epoch"], h["phase"], h["optimizer"], h["lr"]) for h in result.history] == [
        (1, 0, "adam", 1e-3), (2, 0, "adam", 1e-3), (3, 1, "rmsprop", 1e-4)]
    assert torch.load(tmp_path / "epoch_003.pt", weights_only=True)["epoch"] == 3
    for line, h, head in zip(logs, result.history, ("1/4 adam lr 0.001", "2/4 adam lr 0.001", "3/4 rmsprop lr 0.0001")):
        assert line == (f"  epoch {head}: loss {h['train_loss']:.4f} train_acc {h['train_acc']:.4f} "
                        f"val_acc {h['val_acc']:.4f} ({h['seconds']:.1f}s)")
    assert 0 < result.history[0]["seconds"] < 600
    logs.clear()
    fit(_model(), schedule, _data(), None, seed=7, batch_size=8, ckpt_dir=tmp_path, fingerprint="f", device=CPU,
        log=logs.append)
    assert logs[0] == "  resumed from epoch_003.pt (3/4 epochs done)"
    h = torch.load(tmp_path / "epoch_004.pt", weights_only=True)["history"][-1]
    assert logs[1] == (f"  epoch 4/4 rmsprop lr 0.0001: loss {h['train_loss']:.4f} train_acc {h['train_acc']:.4f} "
                       f"({h['seconds']:.1f}s)")  # no validation set: no val_acc


def test_a_checkpoint_of_another_architecture_under_the_same_fingerprint_is_one_error(tmp_path) -> None:
    _fit(_model(), SCHEDULES["one phase"], tmp_path, stop_after=1)
    other = wrap(build_mobilenet_v2(5, width_mult=0.25, stride8=True, seed=0))  # 5 classes: another head
    with pytest.raises(DataError) as err:
        _fit(other, SCHEDULES["one phase"], tmp_path)
    assert str(err.value) == (
        f"checkpoint {tmp_path / 'epoch_001.pt'} is unreadable or not a checkpoint of this kit (Error(s) in loading "
        "state_dict for ImageClassifier:); delete it: the training then starts again from its first epoch (only the "
        "newest checkpoint is kept)")


def test_compile_model_trains_through_torch_compile_to_the_same_weights(tmp_path, monkeypatch) -> None:
    """``compile_model`` (``--compile``) trains through ``torch.compile(model)``; the weights are the eager
    run's. (Compiled here with dynamo's eager backend: inductor needs a C++ toolchain and minutes on a CPU.)"""
    calls: list[torch.nn.Module] = []
    real = torch.compile

    def eager(module, **kwargs):
        calls.append(module)
        return real(module, backend="eager")

    monkeypatch.setattr(torch, "compile", eager)
    compiled, plain = _model(), _model()
    _fit(compiled, SCHEDULES["one phase"], tmp_path / "compiled", compile_model=True)
    _fit(plain, SCHEDULES["one phase"], tmp_path / "plain")
    assert calls == [compiled]
    for (name, a), b in zip(compiled.state_dict().items(), plain.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name



class _Files(torch.utils.data.Dataset):
    """A dataset that is not in-memory tensors (as image files are), so it goes through a DataLoader; with
    ``only_in_workers`` an item read outside a loader worker fails, as training that ignored ``workers`` would."""

    def __init__(self, data: TensorImages, only_in_workers: bool) -> None:
        self.data, self.only_in_workers = data, only_in_workers

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        if self.only_in_workers and torch.utils.data.get_worker_info() is None:
            raise RuntimeError("an image was read in the main process, not in a loader worker")
        return self.data.images[i], self.data.labels[i]


def test_workers_read_the_training_and_validation_images_to_the_same_weights(tmp_path) -> None:
    schedule, models, results = (Phase("adam", 1e-3, 1),), [], []
    for workers in (0, 1):
        models.append(_model())
        results.append(fit(models[-1], schedule, _Files(_data(), workers > 0), _Files(_data(16, seed=1), workers > 0),
                           seed=7, batch_size=8, ckpt_dir=tmp_path / str(workers), fingerprint="f", device=CPU,
                           log=lambda m: None, workers=workers))
    _same(*models)
    assert [h["val_acc"] for h in results[0].history] == [h["val_acc"] for h in results[1].history]
