"""docs/tutorial.md runs as it is written: its Python blocks (one namespace, in order), the
files it shows, and every `gmdsl` command, in a fresh folder."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- tutorial: (python|sh|file [\w.]+) -->\n```\w*\n(.*?)```", flags=re.S)


def test_the_tutorial_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    from gmdsl import cli

    text = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    blocks = BLOCK.findall(text)
    assert len(blocks) == text.count("<!-- tutorial:") and len(blocks) >= 8  # no marked block is skipped
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = io.StringIO()
    for kind, body in blocks:
        if kind == "python":
            with contextlib.redirect_stdout(printed):
                exec(compile(body, "docs/tutorial.md", "exec"), namespace)  # noqa: S102 - the doc's own example
        elif kind == "sh":
            for line in body.splitlines():
                words = line.split("#")[0].split()
                assert words and words[0] == "gmdsl", line
                assert cli.main(words[1:]) == 0, line
        else:
            Path(kind.split()[1]).write_text(body, encoding="utf-8")
    assert re.search(r"test error \d+\.\d %; class means \(3, 16\)", printed.getvalue()), printed.getvalue()
    assert Path("runs/points/eval-best.json").exists() and Path("predictions.csv").exists()
    assert Path("runs/points-csv/eval-best.json").exists() and Path("shapes.csv").exists()
    assert Path("runs/points/figures/latents.png").exists() and Path("runs/shapes/figures/latents.png").exists()
    assert Path("predictions-csv.npz").exists()
    with open("shapes.csv") as handle:
        assert set(next(csv.DictReader(handle))["y"].split()) <= {"circle", "square", "star"}
