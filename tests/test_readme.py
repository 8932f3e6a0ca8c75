"""The README's examples run as they are written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _example(name: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- README example: {name} -->\n```python\n(.*?)```", readme, flags=re.S)
    assert match, f"the README has no example marked {name}"
    return match.group(1)


def test_the_python_api_example_runs_verbatim() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _example("api")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"elbo -\d+\.\d \(64, 10\) \(10, 784\)\n", result.stdout), result.stdout
