"""The README's examples run as they are written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def _commands(heading: str) -> list[list[str]]:
    """The `gmdsl ...` lines of the first sh block under a README heading, comments dropped."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(heading) :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block, f"no sh block under {heading}"
    lines = [line.split("#")[0].split() for line in block.group(1).splitlines()]
    return [words for words in lines if words and words[0] == "gmdsl"]


@pytest.mark.parametrize("heading", ["## The first five minutes", "## Training on MNIST"])
def test_the_readme_commands_run_as_written(heading: str, tmp_path: Path, monkeypatch) -> None:
    """Every `gmdsl` command of these README blocks, word for word, in order, with a small
    generated MNIST look-alike standing in for MNIST in the data cache."""
    from tiny_data import make_tiny_mnist

    from gmdsl import cli

    make_tiny_mnist(tmp_path / "cache" / "mnist")
    monkeypatch.setenv("GMDSL_DATA", str(tmp_path / "cache"))
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    commands = _commands(heading)
    assert any(words[1] == "train" for words in commands)
    for words in commands:
        assert cli.main(words[1:]) == 0, " ".join(words)
    run = next(Path(words[words.index("--run") + 1]) for words in commands if "--run" in words)
    assert (run / "eval.json").exists() and (run / "figures" / "style_grid.png").exists()


def _quoted_sessions() -> list[tuple[str, str]]:
    """(command, output) of each README block that shows a `$ gmdsl ...` session."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\n\$ (gmdsl [^\n]*)\n(.*?)```", readme, flags=re.S)
    return [(command, output) for command, output in blocks]


@pytest.mark.parametrize("command, shown", _quoted_sessions(), ids=lambda value: value.split("\n")[0][:40])
def test_the_readme_shows_real_output(command: str, shown: str, capsys, monkeypatch) -> None:
    """What the README shows a command printing is what it prints (stdout and stderr together)."""
    from gmdsl import cli

    if command.startswith("gmdsl check many_errors.gm"):
        monkeypatch.chdir(ROOT / "tests" / "golden" / "bad")
    else:
        monkeypatch.chdir(ROOT)
    cli.main(command.split()[1:])
    captured = capsys.readouterr()
    assert captured.out + captured.err == shown
