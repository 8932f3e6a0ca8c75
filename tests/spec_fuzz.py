"""Fuzzing the parser, checker and code generator: byte-level mutations of every shipped and
golden spec, fed to `gmdsl compile` (which parses, checks, lowers and emits). The contract:
whatever the bytes, gmdsl answers with its own error (exit 1; exit 2 for a file that is not
UTF-8 text, a usage error) or compiles the spec (exit 0); an internal error (exit 3), a
traceback or any other exit is a finding.

tests/test_fuzz.py runs a bounded fuzz in CI; the long run is a command:

    .venv/bin/python tests/spec_fuzz.py --minutes 30          # prints inputs, findings, seconds

and writes each finding's input to fuzz-findings/ (ignored by git) to reproduce with
`gmdsl compile FILE`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Fragments the grammar gives meaning to, and numbers at the edges: mutations that splice these
# in reach deeper than random bytes, which the lexer mostly rejects at once.
TOKENS = [
    *"()[]{},=|:~#.\n",
    "p(", "q(", "let ", "net ", "model ", "observed ", "latent ", "supervised ", "objective ",
    "real", "binary", "onehot", "unit", "positive", "by enumeration", "by relaxation(temperature = 0.5)",
    "Normal(", "Bernoulli(", "Categorical(", "uniform", "mlp(", "conv(", "deconv(", "lambert(", "product(",
    "hidden = [", "channels = [", "samples = ", "alpha = ", "scale = ", "logits = ", "probs = ",
    "0", "-1", "1e999", "1e-999", "nan", "inf", "99999999999999999999", "65537", "0.0", "1_0", "\u00e9", "\x00",
]  # fmt: skip


def corpus() -> list[bytes]:
    """Every spec the project ships or keeps as a golden file, good and bad."""
    files = sorted({*ROOT.glob("specs/*.gm"), *ROOT.glob("tests/golden/**/*.gm")})
    return [f.read_bytes() for f in files]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: a byte changed, a span deleted, duplicated or moved, a grammar
    fragment inserted, or lines spliced in from another place of the input."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        kind = rng.randrange(6)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            del out[at : at + rng.randint(1, 40)]
        elif kind == 2:
            out[at:at] = out[at : at + rng.randint(1, 40)]
        elif kind == 3:
            out[at:at] = rng.choice(TOKENS).encode("utf-8")
        elif kind == 4:
            lines = bytes(out).split(b"\n")
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
            out = bytearray(b"\n".join(lines))
        else:
            start = rng.randrange(len(out) + 1)
            piece = out[start : start + rng.randint(1, 60)]
            del out[start : start + len(piece)]
            out[at:at] = piece
    return bytes(out)


def finding(data: bytes, folder: Path) -> str | None:
    """None when gmdsl answers `data` (as a spec file) as it should; else what it printed."""
    from gmdsl import cli

    spec = folder / "fuzzed.gm"
    spec.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["compile", str(spec), "-o", str(folder / "out")])
    except BaseException as exc:  # noqa: BLE001 - anything escaping the CLI is a finding
        return f"{type(exc).__name__} escaped the CLI: {exc}"
    # by its exit code, not its words: a message may quote the spec, and the spec anything
    return None if code in (0, 1, 2) else f"exit {code}\n{err.getvalue()}"


def fuzz(seconds: float, seed: int, findings_folder: Path | None = None) -> tuple[int, list[tuple[bytes, str]]]:
    """Mutate and compile for `seconds`; (inputs tried, [(input, what gmdsl printed)])."""
    rng = random.Random(seed)
    seeds = corpus()
    found: list[tuple[bytes, str]] = []
    tried = 0
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory() as scratch:
        while time.monotonic() < deadline:
            data = mutate(rng.choice(seeds), rng)
            tried += 1
            problem = finding(data, Path(scratch))
            if problem is not None:
                found.append((data, problem))
                if findings_folder is not None:
                    findings_folder.mkdir(exist_ok=True)
                    (findings_folder / f"finding-{len(found):03d}.gm").write_bytes(data)
    return tried, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    tried, found = fuzz(60 * args.minutes, args.seed, ROOT / "fuzz-findings")
    for data, problem in found[:10]:
        print(f"--- input {data[:200]!r}\n{problem}")
    print(f"{tried} inputs, {len(found)} findings, {time.monotonic() - started:.0f} s, seed {args.seed}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
