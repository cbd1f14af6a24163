"""The study's paper-shaped cell for ``advtransfer bench gpu`` (:attr:`~advtransfer.studies.base.Study.bench_cell`):
experiment 3's ResNet-18 from scratch, clean then PGD adversarial training, at the sizes the benchmark fills in."""

BENCH_CELL_TOML = """# bench gpu: a paper-shaped study-2 cell (experiment 3, ResNet-18 from scratch, clean, PGD-AT).
[experiment]
study = "cifar-at"
name = "exp2"
title = "bench gpu: a paper-shaped study-2 cell"
protocols = ["intended"]

[common]
seeds = [0]
batch_size = {batch}
eval_batch_size = {batch}
eps = 0.0313725
step = 0.0078431
steps = {steps}
crosscheck_subset = 0
backends = ["native"]
resnet_input_size = {px}
vmi_samples = {vmi}
[common.robust_eval]
autoattack = false             # the paper's evaluation only: standard AutoAttack alone would exceed the budget

[[common.clean_schedule]]
optimizer = "sgd"
lr = 1e-3
epochs = {epochs}
[[common.adv_schedule]]
optimizer = "sgd"
lr = 1e-3
epochs = {epochs}
[[common.settings]]
id = 3
dataset = "cifar10"
models = ["resnet18_scratch"]
trainings = ["clean", "pgd"]

[profiles.bench]
data = "tiny"
tiny_per_class = {per_class}
[profiles.bench.resnet_pretrained]   # required with tiny data; only the transfer model (not run here) uses it
source = "pretrain"
classes = 4
per_class = 8
[[profiles.bench.resnet_pretrained.schedule]]
optimizer = "adam"
lr = 1e-3
epochs = 1
"""
