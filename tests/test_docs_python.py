"""docs/python.md's example runs as written on a trained run of the tutorial's points."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from own_data import write_points

ROOT = Path(__file__).resolve().parent.parent


def test_the_python_page_example_runs_on_a_trained_run(gmdsl_cli, tmp_path: Path) -> None:
    text = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    example = re.search(r"<!-- python.md example -->\n```python\n(.*?)```", text, flags=re.S)
    assert example
    data = write_points(tmp_path, 0.7)
    flags = ["--dataset", str(data), "--epochs", "1", "--run", str(tmp_path / "runs" / "points"), "--no-progress"]
    assert gmdsl_cli("train", str(tmp_path / "points.gm"), *flags)[0] == 0
    result = subprocess.run(
        [sys.executable, "-c", example.group(1)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "(8,) (3, 16) (8, 16) (8, 2) (8,)\n"
