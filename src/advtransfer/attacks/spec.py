"""One attack description, every parameter explicit (never a library's default), validated on construction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import ConfigError

ATTACKS = ("fgsm", "pgd", "fgsm_rs", "nifgsm", "vmifgsm", "apgd_ce", "autoattack")
AUTOATTACK_VERSIONS = ("standard",)
# APGD's checkpoint threshold rho (Croce & Hein 2020, section 3.2): ART 1.20.1 hardcodes it, so it is not a parameter.
APGD_RHO = 0.75
# The fields every attack had before APGD and AutoAttack: an attack's identity (training fingerprints) is these,
# plus the APGD / AutoAttack fields for those two attacks only, so existing adversarial-training checkpoints resume.
_CORE_FIELDS = ("name", "eps", "norm", "step", "steps", "random_start", "targeted", "decay", "n_samples", "beta")
_APGD_FIELDS = ("restarts",)
_AUTOATTACK_FIELDS = ("restarts", "version", "n_classes", "target_classes", "seed", "fab_steps", "square_queries")


@dataclass(frozen=True)
class AttackSpec:
    """An L-inf evasion attack on [0, 1] inputs; eps and step in pixel units.

    - ``fgsm``: one step of size eps along the sign of the input gradient (Goodfellow et al. 2015).
    - ``pgd``: ``steps`` signed-gradient steps of size ``step``, projected onto the eps ball (Madry et al. 2018),
      from a uniform random start in the ball if ``random_start``.
    - ``fgsm_rs``: FGSM from a uniform random start, step ``step`` (Wong et al. 2020, fast adversarial training).
    - ``nifgsm`` / ``vmifgsm``: momentum iterative attacks (study 2; torchattacks backend only).
    - ``apgd_ce``: Auto-PGD on the cross-entropy loss (Croce & Hein 2020): ``steps`` iterations from a random start
      in the ball, the step size adapted per example (starting at 2 eps, halved at the checkpoints where the loss
      stopped rising, rho = 0.75), ``restarts`` random restarts on the examples still correctly classified; no
      ``step`` (the schedule sets it). torchattacks ``APGD`` and ART ``AutoProjectedGradientDescent``.
    - ``autoattack``: the standard L-inf AutoAttack suite (Croce & Hein 2020), each attack run on the examples the
      ones before left correct: APGD-CE (``steps`` iterations, ``restarts`` restarts), APGD-T (DLR loss,
      ``steps`` iterations, one run per target class), FAB-T (``fab_steps`` iterations per target class) and
      Square (``square_queries`` queries, black-box). ``n_classes``: the model's number of classes;
      ``target_classes``: how many runner-up classes APGD-T and FAB-T target (the original: 9, at most
      ``n_classes - 1``); ``seed``: the library seed of every component when no generator is given (with one, each
      call's seed is drawn from the generator, as other attacks' random starts are). torchattacks only.
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
    restarts: int = 1  # apgd_ce / autoattack: APGD random restarts (AutoAttack standard: 1)
    version: str = "standard"  # autoattack: the suite (L-inf standard: APGD-CE, APGD-T, FAB-T, Square)
    n_classes: int = 0  # autoattack: the model's number of classes (required)
    target_classes: int = 9  # autoattack: target classes of APGD-T and FAB-T (standard: 9)
    seed: int = 0  # autoattack: library seed when attack() gets no generator
    fab_steps: int = 100  # autoattack: FAB-T iterations per target class (standard: 100)
    square_queries: int = 5000  # autoattack: Square's query budget (standard: 5000)

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
        elif self.name not in ("apgd_ce", "autoattack"):
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
        if self.name in ("apgd_ce", "autoattack"):
            self._check_apgd()

    def _check_apgd(self) -> None:
        what = self.name
        if self.step is not None:
            raise ConfigError(f"{what} sets its own step size (2 eps, halved when the loss stalls): leave step unset")
        if not self.random_start:
            raise ConfigError(f"{what} starts from a random point in the eps ball: random_start = true")
        for field in ("restarts", *(("seed", "fab_steps", "square_queries") if what == "autoattack" else ())):
            value = getattr(self, field)
            if field == "seed":
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
                    raise ConfigError(f"{what}: seed = {value!r}: must be an integer in [0, 2**63)")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{what}: {field} = {value!r}: must be an integer >= 1")
        if what == "apgd_ce":
            return
        if self.version not in AUTOATTACK_VERSIONS:
            raise ConfigError(f"autoattack version {self.version!r} is not supported; valid: "
                              f"{', '.join(AUTOATTACK_VERSIONS)} (the L-inf suite APGD-CE, APGD-T, FAB-T, Square)")
        if not isinstance(self.n_classes, int) or isinstance(self.n_classes, bool) or self.n_classes < 4:
            raise ConfigError(f"autoattack: n_classes = {self.n_classes!r}: the model's number of classes, at least "
                              "4 (APGD-T's DLR loss reads the third and fourth largest logits)")
        if not isinstance(self.target_classes, int) or not 1 <= self.target_classes <= self.n_classes - 1:
            raise ConfigError(f"autoattack: target_classes = {self.target_classes!r}: must be between 1 and "
                              f"n_classes - 1 = {self.n_classes - 1}")

    @classmethod
    def fgsm(cls, eps: float) -> AttackSpec:
        return cls("fgsm", eps)

    @classmethod
    def pgd(cls, eps: float, step: float, steps: int, random_start: bool = True) -> AttackSpec:
        return cls("pgd", eps, step=step, steps=steps, random_start=random_start)

    @classmethod
    def apgd_ce(cls, eps: float, steps: int, restarts: int = 1) -> AttackSpec:
        return cls("apgd_ce", eps, steps=steps, random_start=True, restarts=restarts)

    @classmethod
    def autoattack(cls, eps: float, n_classes: int, *, steps: int, restarts: int, target_classes: int,
                   fab_steps: int, square_queries: int, seed: int = 0) -> AttackSpec:
        """The standard L-inf AutoAttack; ``steps``: APGD-CE and APGD-T iterations. The original's standard
        setting: steps 100, restarts 1, target_classes 9, fab_steps 100, square_queries 5000."""
        return cls("autoattack", eps, steps=steps, random_start=True, restarts=restarts, version="standard",
                   n_classes=n_classes, target_classes=target_classes, seed=seed, fab_steps=fab_steps,
                   square_queries=square_queries)

    @property
    def step_size(self) -> float:
        """The step (fgsm: eps); APGD and AutoAttack: the initial step, 2 eps."""
        if self.name in ("apgd_ce", "autoattack"):
            return 2.0 * self.eps
        return self.eps if self.name == "fgsm" else float(self.step)

    def key(self) -> str:
        """A stable short name for file names, CSV rows and legends."""
        if self.name == "fgsm":
            return f"fgsm-eps{self.eps:g}"
        if self.name == "apgd_ce":
            return f"apgd_ce-eps{self.eps:g}-n{self.steps}-r{self.restarts}"
        if self.name == "autoattack":
            return (f"autoattack-{self.version}-eps{self.eps:g}-c{self.n_classes}-n{self.steps}-r{self.restarts}"
                    f"-t{self.target_classes}-fab{self.fab_steps}-sq{self.square_queries}-seed{self.seed}")
        rs = "-rs" if self.random_start else ""
        return f"{self.name}-eps{self.eps:g}-step{self.step:g}-n{self.steps}{rs}"

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """The fields that define this attack, for training fingerprints: the ones every attack has, plus APGD's
        and AutoAttack's own only for those attacks. A PGD spec's identity is what its whole ``to_dict()`` was
        before APGD and AutoAttack were added, so adversarial-training checkpoints written then still resume."""
        extra = _AUTOATTACK_FIELDS if self.name == "autoattack" else _APGD_FIELDS if self.name == "apgd_ce" else ()
        full = asdict(self)
        return {k: full[k] for k in (*_CORE_FIELDS, *extra)}
