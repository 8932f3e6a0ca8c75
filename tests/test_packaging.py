"""The wheel carries the grammar and installs runtime/ as gmdsl.runtime, nothing generic."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contents_and_install(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("gmdsl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {"gmdsl", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert "gmdsl/grammar/gm.lark" in names and "gmdsl/runtime/__init__.py" in names
    # every module of every package (an editable install in the test's own environment would
    # hide a package the wheel left out from the import probe below)
    modules = {f"gmdsl/{p.relative_to(ROOT / 'gmdsl').as_posix()}" for p in (ROOT / "gmdsl").rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import gmdsl, gmdsl.runtime; print(gmdsl.__file__); "
        "print(gmdsl.load('observed x : real[1]\\np(x) = Normal(0, 1)\\n').name)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": ""},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    installed_at, name = result.stdout.split()
    assert installed_at.startswith(str(target)) and name == "model"
