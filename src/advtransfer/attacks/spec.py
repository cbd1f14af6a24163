"""One attack description, every parameter explicit (never a library's default), validated on construction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import ConfigError

ATTACKS = ("fgsm", "pgd", "fgsm_rs", "nifgsm", "vmifgsm")


@dataclass(frozen=True)
class AttackSpec:
    """An L-inf evasion attack on [0, 1] inputs; eps and step in pixel units.

    - ``fgsm``: one step of size eps along the sign of the input gradient (Goodfellow et al. 2015).
    - ``pgd``: ``steps`` signed-gradient steps of size ``step``, projected onto the eps ball (Madry et al. 2018),
      from a uniform random start in the ball if ``random_start``.
    - ``fgsm_rs``: FGSM from a uniform random start, step ``step`` (Wong et al. 2020, fast adversarial training).
    - ``nifgsm`` / ``vmifgsm``: momentum iterative attacks (study 2; torchattacks backend only).
    """

    name: str
    eps: float
    norm: str = "linf"
    step: float | None = None
    steps: int = 1
    random_start: bool = False
    targeted: bool = False
    decay: float = 1.0  # nifgsm / vmifgsm: momentum decay factor (mu)
    n_samples: int = 5  # vmifgsm: neighbourhood samples for the variance term (N)
    beta: float = 1.5  # vmifgsm: neighbourhood radius as a multiple of eps

    def __post_init__(self) -> None:
        if self.name not in ATTACKS:
            raise ConfigError(f"unknown attack {self.name!r}; valid: {', '.join(ATTACKS)}")
        if self.norm != "linf":
            raise ConfigError(f"attack norm {self.norm!r} is not supported; valid: linf")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and 0.0 <= self.eps <= 1.0):
            raise ConfigError(f"eps = {self.eps!r}: eps is in pixel units on [0, 1] inputs, so 0 <= eps <= 1")
        if self.targeted:
            raise ConfigError("targeted attacks are not supported by the kit's studies; use targeted = false")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps = {self.steps!r}: must be an integer >= 1")
        if self.name == "fgsm":
            if self.step is not None:
                raise ConfigError("fgsm's step is eps: leave step unset")
            if self.steps != 1 or self.random_start:
                raise ConfigError("fgsm is one step from the clean input: steps = 1, random_start = false "
                                  "(use 'fgsm_rs' for FGSM with a random start, 'pgd' for several steps)")
        else:
            if self.step is None or not (math.isfinite(self.step) and 0.0 < self.step <= 1.0):
                raise ConfigError(f"{self.name} needs step in (0, 1] pixel units, got {self.step!r}")
        if self.name == "fgsm_rs" and (self.steps != 1 or not self.random_start):
            raise ConfigError("fgsm_rs is one step from a random start: steps = 1, random_start = true")
        if self.name in ("nifgsm", "vmifgsm") and self.random_start:
            raise ConfigError(f"{self.name} starts from the clean input: random_start = false")
        if not (math.isfinite(self.decay) and self.decay >= 0.0):
            raise ConfigError(f"decay = {self.decay!r}: must be >= 0")
        if not isinstance(self.n_samples, int) or self.n_samples < 1:
            raise ConfigError(f"n_samples = {self.n_samples!r}: must be an integer >= 1")
        if not (math.isfinite(self.beta) and self.beta > 0.0):
            raise ConfigError(f"beta = {self.beta!r}: must be > 0")

    @classmethod
    def fgsm(cls, eps: float) -> AttackSpec:
        return cls("fgsm", eps)

    @classmethod
    def pgd(cls, eps: float, step: float, steps: int, random_start: bool = True) -> AttackSpec:
        return cls("pgd", eps, step=step, steps=steps, random_start=random_start)

    @property
    def step_size(self) -> float:
        return self.eps if self.name == "fgsm" else float(self.step)

    def key(self) -> str:
        """A stable short name for file names, CSV rows and legends."""
        if self.name == "fgsm":
            return f"fgsm-eps{self.eps:g}"
        rs = "-rs" if self.random_start else ""
        return f"{self.name}-eps{self.eps:g}-step{self.step:g}-n{self.steps}{rs}"

    def to_dict(self) -> dict:
        return asdict(self)
