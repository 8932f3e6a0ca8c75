"""bench/remake_figures.py: every committed figure drawn from trained weights is remade on tiny data
by the same path as a real remake (the committed run's config and spec, `gmdsl train`, the code
that drew the figure); each figure's committed runs are found in results/; docs/figures.md's
commands name real figures, and its times are the committed runs'."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from doc_blocks import blocks
from tiny_data import make_tiny_mnist

from gmdsl.data import faces, multi_mnist

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import remake_figures  # noqa: E402 - bench/ is a folder of scripts, importable once on the path

MARK = "tests/test_remake_figures.py"
PAGE = "docs/figures.md"
SCRIPT = ".venv/bin/python bench/remake_figures.py"
COMMITTED = (
    "mnist_style",
    "fashion_style",
    "faces_relit",
    "faces_identities",
    "faces_light",
    "multi_mnist_reconstructions",
    "multi_mnist_scenes",
)


def _page_commands(marker: str) -> list[list[str]]:
    """The arguments of each remake command in the page's blocks with `marker`."""
    rows = [row.split("#")[0].strip() for b in blocks(PAGE) if b.marker == marker for row in b.body.splitlines()]
    assert all(row.startswith(SCRIPT) for row in rows if row), rows
    return [row.split()[2:] for row in rows if row]


def committed_runs() -> list[str]:
    return [name for d in remake_figures.DRAWINGS for name in d.runs(remake_figures.table(d))]


def test_every_figure_is_listed_with_the_committed_runs_it_is_drawn_from(capsys) -> None:
    assert sorted(remake_figures.FIGURES) == sorted(COMMITTED)
    (listed,) = _page_commands("run by")  # the page's --list, run as it is written
    remake_figures.main(listed)
    listing = capsys.readouterr().out
    assert all(figure in listing for figure in COMMITTED)
    assert len(committed_runs()) == 5
    for name in committed_runs():
        assert (ROOT / "results" / "logs" / f"{name}.config.json").exists(), name
        assert (ROOT / remake_figures.committed_spec(name)).exists(), name
        # the time stated is that of the whole run: every epoch its config asks for is logged
        metrics = (ROOT / "results" / "logs" / f"{name}.metrics.jsonl").read_text().splitlines()
        assert len(metrics) == remake_figures.committed_config(name)["epochs"], name
        assert f"{name} (specs/" in listing
    assert "min of training on x86_64 CPU, 2 cores, 2 runs at once, 1 thread each" in listing


def test_the_page_remakes_every_figure_and_states_the_committed_times() -> None:
    commands = _page_commands("not run")
    remade = [figure for words in commands for figure in remake_figures.arguments(words).figures]
    assert sorted(remade) == sorted(COMMITTED)
    page = (ROOT / PAGE).read_text(encoding="utf-8")
    for name in committed_runs():
        metrics = (ROOT / "results" / "logs" / f"{name}.metrics.jsonl").read_text().splitlines()
        seconds = sum(json.loads(line)["seconds"] for line in metrics)
        assert f"`{name}`" in page and f"{seconds:.2f}" in page, name


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


def remake(tmp_path: Path, figures: list[str], dataset: Path, *flags: str) -> None:
    """Remake `figures` on `dataset` for one epoch into tmp_path, and check each is a PNG the size of
    the committed one, from runs with the committed settings but those replaced."""
    out, runs = tmp_path / "out", tmp_path / "runs"
    common = ["--dataset", str(dataset), "--epochs", "1", *flags, "--runs", str(runs), "--out", str(out)]
    remake_figures.main([*figures, *common])
    for figure in figures:
        assert png_size(out / f"{figure}.png") == png_size(ROOT / "results" / f"{figure}.png"), figure
    replaced = {"dataset", "epochs", "labels"}
    for drawing in {remake_figures.FIGURES[figure] for figure in figures}:
        for name in drawing.runs(remake_figures.table(drawing)):
            committed = remake_figures.committed_config(name)
            made = json.loads((runs / name / "config.json").read_text())
            assert {k: made[k] for k in committed if k not in replaced} == {
                k: v for k, v in committed.items() if k not in replaced
            }


def test_the_style_grid_is_remade(tmp_path: Path) -> None:
    data = make_tiny_mnist(tmp_path / "mnist")
    remake(tmp_path, ["mnist_style"], data)
    # a run of other settings under the same name is not resumed
    again = ["mnist_style", "--dataset", str(data), "--labels", "50", "--runs", str(tmp_path / "runs")]
    with pytest.raises(SystemExit, match="trained with another labels"):
        remake_figures.main([*again, "--out", str(tmp_path / "out")])


def test_the_faces_figures_are_remade(tmp_path: Path) -> None:
    data = tmp_path / "faces.npz"
    np.savez_compressed(data, **faces.generate(train_per_identity=3, test_per_identity=1, seed=3))
    remake(tmp_path, ["faces_relit", "faces_identities", "faces_light"], data, "--labels", "38")


def test_the_multi_mnist_figures_are_remade(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def digits(count: int) -> tuple[np.ndarray, np.ndarray]:
        return (rng.random((count, 28, 28)) < 0.3).astype(np.uint8) * 255, np.arange(count) % 10

    data = tmp_path / "multi-mnist.npz"
    np.savez_compressed(data, **multi_mnist.generate(digits(100), digits(40), train=60, test=16, seed=3))
    figures = ["multi_mnist_reconstructions", "multi_mnist_scenes"]
    remake(tmp_path, figures, data, "--labels", "20")
    # run again with more epochs, the run goes on from its last saved epoch (the later --epochs wins)
    remake(tmp_path, figures, data, "--labels", "20", "--epochs", "2")
    metrics = (tmp_path / "runs" / remake_figures.MULTI_MNIST_RUN / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in metrics] == [1, 2]
