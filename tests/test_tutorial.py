"""docs/tutorial.md runs as it is written (its Python blocks in one namespace, in order, the files
it shows, every `gmdsl` command, in a fresh folder: tests/doc_blocks.py), and leaves what it says."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from doc_blocks import blocks, prepare, run_page


def test_the_tutorial_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    assert len(blocks("docs/tutorial.md")) >= 10  # its data, spec, commands and Python
    prepare(tmp_path, "docs/tutorial.md", monkeypatch)
    printed = run_page("docs/tutorial.md", capsys)
    assert re.search(r"test error \d+\.\d %; class means \(3, 16\)", printed), printed
    assert Path("runs/points/eval-best.json").exists() and Path("predictions.csv").exists()
    assert Path("runs/points-csv/eval-best.json").exists() and Path("shapes.csv").exists()
    assert Path("runs/points/figures/latents.png").exists() and Path("runs/shapes/figures/latents.png").exists()
    assert Path("predictions-csv.npz").exists()
    with open("shapes.csv") as handle:
        assert set(next(csv.DictReader(handle))["y"].split()) <= {"circle", "square", "star"}
