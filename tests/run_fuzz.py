"""Fuzzing what gmdsl reads besides specs: byte-level mutations of a real run directory's files
(its JSON, its safetensors weights and training state) fed to `gmdsl eval`, `predict` and
`train --resume`, and of data files (.npz, .csv, IDX) fed to `gmdsl data inspect`. The contract
is spec_fuzz.py's: gmdsl answers with its own error (exit 1, or 2 for bad usage) or does what
was asked (exit 0); an internal error (exit 3), anything escaping the CLI, or any other exit is
a finding.

tests/test_fuzz.py runs a bounded fuzz in CI; the long run is a command:

    .venv/bin/python tests/run_fuzz.py --minutes 10           # prints inputs, findings, seconds

and writes each finding (the mutated file and the command) to fuzz-findings/ (ignored by git).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_data import write_points  # noqa: E402 - the tests' own helpers, beside this file
from spec_fuzz import mutate  # noqa: E402
from tiny_data import make_tiny_mnist  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

RUN_FILES = [
    "config.json", "data.json", "run.json", "validation.json", "labelled.json", "metrics.jsonl",
    "checkpoint/latest.json", "checkpoint/best.json", "checkpoint/best.safetensors",
    "checkpoint/epoch-0001.safetensors", "checkpoint/epoch-0001.state.json",
    "checkpoint/epoch-0001.state.safetensors",
]  # fmt: skip
JSON_TOKENS = [b"1e999", b"NaN", b"-1", b'"', b"{", b"[", b"null", b"true", b"99999999999999999999", b"0.5", b"[[[["]


def _cli(*args: str) -> tuple[int | None, str]:
    from gmdsl import cli

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    except BaseException as exc:  # noqa: BLE001 - anything escaping the CLI is a finding
        return None, f"{type(exc).__name__} escaped the CLI: {exc}"
    return code, err.getvalue()


def prepare(folder: Path) -> dict[str, Path]:
    """A trained run of the points and the data files to mutate: the seeds of the fuzz."""
    data = write_points(folder, 0.5)
    run = folder / "run"
    code, err = _cli("train", str(folder / "points.gm"), "--dataset", str(data), "--run", str(run), "--epochs", "1",
                     "--batch-size", "32", "--no-progress")  # fmt: skip
    assert code == 0, err
    arrays = np.load(data)
    with open(folder / "points.csv", "w") as handle:
        handle.write("split,y," + ",".join(f"x_{i}" for i in range(16)) + "\n")
        for split in ("train", "test"):
            for x, y in zip(arrays[f"x_{split}"][:40], arrays[f"y_{split}"][:40], strict=True):
                handle.write(f"{split},{'' if y < 0 else y}," + ",".join(f"{v:.3f}" for v in x) + "\n")
    make_tiny_mnist(folder / "idx", train=20, test=10)
    return {"run": run, "npz": data, "csv": folder / "points.csv", "idx": folder / "idx", "spec": folder / "points.gm"}


def _mutated(data: bytes, rng: random.Random) -> bytes:
    out = mutate(data, rng) if data else bytes([rng.randrange(256)])
    if rng.random() < 0.3:  # a JSON-minded edit too: numbers at the edges, brackets, quotes
        at = rng.randrange(len(out) + 1)
        out = out[:at] + rng.choice(JSON_TOKENS) + out[at:]
    return out


def one(seeds: dict[str, Path], scratch: Path, rng: random.Random) -> tuple[str, str] | None:
    """One mutated input and command; (what was done, what gmdsl printed) when it is a finding."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    if rng.random() < 0.6:
        run = scratch / "run"
        shutil.copytree(seeds["run"], run)
        target = run / rng.choice(RUN_FILES)
        target.write_bytes(_mutated(target.read_bytes(), rng))
        command = rng.choice([
            ["eval", str(run), "--samples", "2", "--rows", "5"],
            ["predict", str(run), "-o", str(scratch / "out.csv")],
            ["train", "--resume", str(run), "--epochs", "2", "--no-progress"],
        ])  # fmt: skip
    else:
        kind = rng.choice(["npz", "csv", "idx"])
        if kind == "idx":
            folder = scratch / "idx"
            shutil.copytree(seeds["idx"], folder)
            target = rng.choice(sorted(folder.iterdir()))
            data = folder
        else:
            target = data = scratch / seeds[kind].name
            shutil.copy(seeds[kind], target)
        target.write_bytes(_mutated(target.read_bytes(), rng))
        command = ["data", "inspect", str(data), str(seeds["spec"])]
    code, printed = _cli(*command)
    if code in (0, 1, 2):
        return None
    return f"{' '.join(command)} after mutating {target.relative_to(scratch)}", f"exit {code}\n{printed}"


def fuzz(seconds: float, seed: int, findings_folder: Path | None = None) -> tuple[int, list[tuple[str, str]]]:
    """Mutate and run for `seconds`; (inputs tried, [(what was done, what gmdsl printed)])."""
    rng = random.Random(seed)
    found: list[tuple[str, str]] = []
    tried = 0
    with tempfile.TemporaryDirectory() as folder:
        seeds = prepare(Path(folder) / "seeds")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            tried += 1
            problem = one(seeds, Path(folder) / "work", rng)
            if problem is not None:
                found.append(problem)
                if findings_folder is not None:
                    kept = findings_folder / f"run-finding-{len(found):03d}"
                    shutil.copytree(Path(folder) / "work", kept, dirs_exist_ok=True)
                    (kept / "COMMAND").write_text(problem[0] + "\n" + problem[1])
    return tried, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    tried, found = fuzz(60 * args.minutes, args.seed, ROOT / "fuzz-findings")
    for what, problem in found[:10]:
        print(f"--- {what}\n{problem}")
    print(f"{tried} inputs, {len(found)} findings, {time.monotonic() - started:.0f} s, seed {args.seed}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
