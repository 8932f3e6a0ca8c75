"""Golden files: the exact output and exit code of the real CLI.

- tests/golden/bad/NAME.gm -> NAME.expected: `gmdsl check NAME.gm` (run in that folder)
- specs/NAME.gm -> tests/golden/ir/NAME.json: `gmdsl compile specs/NAME.gm --dump-ir`
- specs/NAME.gm -> tests/golden/compiled/NAME.py: `gmdsl compile specs/NAME.gm`, the PyTorch module

Refresh them all with `make golden` and review the diff like code.

The comparisons run the command line in this process (`cli.main`, all that `python -m gmdsl`
runs): some 130 fresh interpreters would cost a minute of the suite. That the real command prints
the same, byte for byte, is checked on one spec of each kind; `make golden` writes the files
from the real command.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gmdsl import cli

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "golden" / "bad"
IR = ROOT / "tests" / "golden" / "ir"
COMPILED = ROOT / "tests" / "golden" / "compiled"
UPDATE = os.environ.get("GMDSL_UPDATE_GOLDEN") == "1"


def run_real_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gmdsl", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`gmdsl ARGS` run in `cwd` in this process: its exit code and output, as the real one's."""
    if UPDATE:
        return run_real_cli(*args, cwd=cwd)
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(["gmdsl", *args], code, out.getvalue(), err.getvalue())


def compare_or_update(expected_file: Path, actual: str) -> None:
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
        return
    assert expected_file.exists(), f"no golden file {expected_file.name}: run `make golden`"
    assert actual == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("spec", sorted(p.name for p in BAD.glob("*.gm")))
def test_bad_spec_diagnostics(spec: str) -> None:
    result = run_cli("check", spec, cwd=BAD)
    actual = (
        f"$ gmdsl check {spec}\nexit code: {result.returncode}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )
    compare_or_update(BAD / spec.replace(".gm", ".expected"), actual)
    assert "Traceback" not in result.stderr


def test_golden_bad_specs_cover_every_diagnostic_code() -> None:
    from gmdsl.compiler.diagnostics import CODES

    codes = set()
    for expected in BAD.glob("*.expected"):
        codes |= {
            line.split("[")[1].split("]")[0]
            for line in expected.read_text().splitlines()
            if ": error[" in line or ": warning[" in line
        }
    assert codes == set(CODES), f"codes without a golden bad spec: {sorted(set(CODES) - codes)}"


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "specs").glob("*.gm")))
def test_compiled_ir(spec: str) -> None:
    result = run_cli("compile", f"specs/{spec}", "--dump-ir", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    compare_or_update(IR / spec.replace(".gm", ".json"), result.stdout)


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "specs").glob("*.gm")))
def test_compiled_module(spec: str) -> None:
    result = run_cli("compile", f"specs/{spec}", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    compare_or_update(COMPILED / spec.replace(".gm", ".py"), result.stdout)


@pytest.mark.parametrize(
    "args, cwd",
    [
        (("check", "many_errors.gm"), BAD),
        (("check", "empty.gm"), BAD),
        (("compile", "specs/mnist.gm", "--dump-ir"), ROOT),
        (("compile", "specs/mnist.gm"), ROOT),
    ],
    ids=["check", "check-empty", "dump-ir", "compile"],
)
def test_the_real_command_prints_what_the_golden_tests_compare(args: tuple[str, ...], cwd: Path) -> None:
    real, here = run_real_cli(*args, cwd=cwd), run_cli(*args, cwd=cwd)
    assert (real.returncode, real.stdout, real.stderr) == (here.returncode, here.stdout, here.stderr)
