"""Every spec that checks clean runs: random specs from gmdsl.testing's `spec_trees()`, each
compiled (float64) and run on a random batch of 3 rows: the objective, its gradients,
`predict` of the observed variables by q and by importance sampling, and `sample(4)`. The
contract: each step answers, or raises gmdsl's own UserError; any other exception, an ELBO of
NaN, or a drawn spec that does not check clean is a finding.

tests/test_random_specs.py runs a bounded number of specs in CI; the long run is a command:

    .venv/bin/python tests/random_spec_run.py --minutes 10      # prints specs, findings, seconds

with fresh seeds each time (or `--seed N` to repeat a run). It writes each finding's spec, the
problem above it as comments, to fuzz-findings/ (ignored by git); `--replay FILE...` runs the
property again on such files.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

import gmdsl
from gmdsl.compiler.pretty import pretty
from gmdsl.runtime.errors import UserError
from gmdsl.testing import random_batch, spec_trees

ROOT = Path(__file__).resolve().parent.parent
ROWS = 3


def finding(text: str) -> str | None:
    """None when the spec checks clean and runs, or gmdsl refuses a step with its own
    UserError; else what went wrong."""
    try:
        diagnostics = gmdsl.check(gmdsl.parse(text)).diagnostics
    except gmdsl.SpecSyntaxError as error:
        return f"a drawn spec does not parse: {error}"
    if diagnostics:
        return "a drawn spec does not check clean:\n" + "\n".join(f"{d.code} {d.message}" for d in diagnostics)
    torch.manual_seed(0)
    try:
        model = gmdsl.compile(text).double()
        batch = random_batch(model, ROWS)
        result = model.objective(batch)
        if torch.isnan(result.elbo).any():
            return f"the ELBO is NaN: {result.elbo.tolist()}"
        if any(p.requires_grad for p in model.parameters()):  # a spec without networks has nothing to differentiate
            result.loss.backward()
        observed = {v.name: batch[v.name] for v in model.variables if v.role == "observed"}
        with torch.no_grad():
            model.predict(observed, method="q")
            model.predict(observed, method="importance")
            model.sample(4)
    except UserError:
        return None
    except Exception:  # noqa: BLE001 - anything else escaping a compiled model of a clean spec is a finding
        return traceback.format_exc(limit=-4)
    return None


def run(seconds: float, seed: int, findings_folder: Path | None = None) -> tuple[int, list[tuple[str, str]]]:
    """Draw specs and run them for `seconds`; (specs tried, [(spec, problem)])."""
    found: list[tuple[str, str]] = []
    tried = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(seed)

    @settings(
        max_examples=50,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(spec_trees())
    def property_of(tree) -> None:
        nonlocal tried
        if time.monotonic() >= deadline:
            return
        text = pretty(tree)
        tried += 1
        problem = finding(text)
        if problem is not None:
            found.append((text, problem))
            if findings_folder is not None:
                findings_folder.mkdir(exist_ok=True)
                comment = "".join(f"# {line}\n" for line in problem.splitlines())
                (findings_folder / f"random-spec-{seed}-{len(found):03d}.gm").write_text(comment + text)

    while time.monotonic() < deadline:  # rounds of 50 specs, each from a seed of its own
        hypothesis_seed(rng.getrandbits(64))(property_of)()
    return tried, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=None, help="repeat a run (default: a fresh seed)")
    parser.add_argument("--replay", nargs="+", type=Path, metavar="FILE", help="run the property on these specs")
    args = parser.parse_args()
    if args.replay:
        problems = [(path, finding(path.read_text(encoding="utf-8"))) for path in args.replay]
        for path, problem in problems:
            print(f"--- {path}: {problem or 'runs'}")
        sys.exit(1 if any(problem for _, problem in problems) else 0)
    seed = random.SystemRandom().getrandbits(32) if args.seed is None else args.seed
    started = time.monotonic()
    tried, found = run(60 * args.minutes, seed, ROOT / "fuzz-findings")
    for text, problem in found[:10]:
        print(f"--- {problem}\n{text}")
    print(f"{tried} specs, {len(found)} findings, {time.monotonic() - started:.0f} s, seed {seed}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
