"""How many Hypothesis examples a property test draws: its full count in the suite, a tenth of it under mutation
testing (`nox -s mutants` sets ADVTRANSFER_MUTANTS=1), where every mutant reruns the tests of the code it changed
and a first failing example is enough to kill it."""

from __future__ import annotations

import os

UNDER_MUTANTS = os.environ.get("ADVTRANSFER_MUTANTS") == "1"


def examples(n: int) -> int:
    return max(10, n // 10) if UNDER_MUTANTS else n
