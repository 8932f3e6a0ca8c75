"""The long fuzz runs, each logged to results/fuzz/ with its command, commit and machine, so the
counts the docs quote (inputs tried, findings, seconds) come from a committed log:

    .venv/bin/python bench/fuzz_runs.py --minutes 5                 # all three, one after another
    .venv/bin/python bench/fuzz_runs.py --minutes 10 --only specs   # one of them

specs: tests/spec_fuzz.py (byte mutations of every shipped and golden spec, compiled);
runs: tests/run_fuzz.py (byte mutations of a real run's files and of data files, read back);
random-specs: tests/random_spec_run.py (fresh random specs that check clean must run).
Findings go to fuzz-findings/ as each script says; the log keeps what the script printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import mnist_runs

ROOT = mnist_runs.ROOT
FUZZERS = {
    "specs": "tests/spec_fuzz.py",
    "runs": "tests/run_fuzz.py",
    "random-specs": "tests/random_spec_run.py",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", nargs="+", choices=list(FUZZERS), default=list(FUZZERS))
    parser.add_argument("--out", default="results/fuzz")
    args = parser.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        command = [sys.executable, FUZZERS[name], "--minutes", str(args.minutes), "--seed", str(args.seed)]
        shown = " ".join([".venv/bin/python", *command[1:]])
        machine = mnist_runs.describe(mnist_runs.hardware(1, 1))
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        load = os.getloadavg()[0]  # other work on the machine slows the run and shrinks its counts
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=mnist_runs.thread_env(1))
        log = out / f"{name}.log"
        log.write_text(
            f"$ {shown}\ncommit {mnist_runs.commit()}, {machine}, torch {mnist_runs.hardware(1, 1)['torch']}, "
            f"started {started}, load average {load:.1f}\n{result.stdout}{result.stderr}exit {result.returncode}\n",
            encoding="utf-8",
        )
        print(f"{name}: {result.stdout.strip().splitlines()[-1] if result.stdout.strip() else 'no output'} -> {log}")


if __name__ == "__main__":
    main()
