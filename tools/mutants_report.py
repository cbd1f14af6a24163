"""After `mutmut run`: the mutation score per module and overall, and every survivor with its reason.

Reads mutmut's results (`mutmut results --all true`), writes mutants/survivors.txt (one survivor per line, with
the reason from mutmut-survivors.md where one is given) and prints killed / (killed + survived) per module, a timeout
counting as killed (the mutant made the tests run 15 times longer than usual, or forever: mutmut's own score counts
it so). "no tests" (code none of the selected tests runs) and "not checked" are shown apart. Exits 1 when a survivor
has no reason in mutmut-survivors.md: each one is either killed by a new test or explained.
Usage: python tools/mutants_report.py [--min-score 0.85]
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REASONS = ROOT / "mutmut-survivors.md"
LINE = re.compile(r"^\s*([\w.]+__mutmut_\d+):\s*(\w[\w ]*)$")


def statuses() -> dict[str, str]:
    out = subprocess.run(["mutmut", "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return {m.group(1): m.group(2).strip() for line in out.splitlines() if (m := LINE.match(line))}


def reasons(path: Path = REASONS) -> dict[str, str]:
    """`- `name`: reason` lines of the survivors file."""
    found = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        m = re.match(r"^- `([\w.]+__mutmut_\d+)`: (.+)$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def module_of(name: str) -> str:
    return name.split("__mutmut_")[0].rsplit(".", 1)[0]  # advtransfer.results.stats.x_wilson -> the module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-score", type=float, default=0.85)
    args = parser.parse_args(argv)
    status, why = statuses(), reasons()
    per = collections.defaultdict(collections.Counter)
    for name, st in status.items():
        per[module_of(name)][st] += 1
    total = collections.Counter()
    print(f"{'module':40} {'killed':>7} {'timeout':>8} {'survived':>9} {'no tests':>9} {'unchecked':>10} {'score':>6}")
    for module in [*sorted(per), "all"]:
        c = per[module] if module != "all" else total
        if module != "all":
            total.update(c)
        detected = c["killed"] + c["timeout"]
        unchecked = sum(v for k, v in c.items() if k not in ("killed", "timeout", "survived", "no tests"))
        score = detected / max(1, detected + c["survived"])
        print(f"{module:40} {c['killed']:7} {c['timeout']:8} {c['survived']:9} {c['no tests']:9} {unchecked:10} "
              f"{score:6.1%}")
    score = (total["killed"] + total["timeout"]) / max(1, total["killed"] + total["timeout"] + total["survived"])
    survivors = sorted(n for n, st in status.items() if st == "survived")
    (ROOT / "mutants").mkdir(exist_ok=True)
    (ROOT / "mutants" / "survivors.txt").write_text(
        "".join(f"{n}\t{why.get(n, 'NO REASON GIVEN')}\n" for n in survivors))
    unexplained = [n for n in survivors if n not in why]
    print(f"{len(survivors)} survivor(s), {len(unexplained)} without a reason in {REASONS.name} "
          f"(list: mutants/survivors.txt; `mutmut show NAME` shows one)")
    return 1 if unexplained or score < args.min_score else 0


if __name__ == "__main__":
    sys.exit(main())
