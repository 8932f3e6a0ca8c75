"""The docs' commands that need more than a run in a fresh folder (tests/doc_blocks.py): many
processes, `make`, a shell, fetching, hours of training cut short by flags appended to the line as
written. Every line of a block marked `<!-- run by: tests/test_docs_commands.py -->` starts as one
of RUN_HERE."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import PAGES, blocks

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)  # the environment running the tests; `.venv` in a docs line means it
MARK = "tests/test_docs_commands.py"


def _marked_lines() -> list[str]:
    """Every command line of the docs' blocks marked as run here, comments dropped."""
    marked = [b for page in PAGES for b in blocks(page) if b.marker == "run by" and b.value == MARK]
    lines = [row.split("#")[0].strip() for b in marked for row in b.body.splitlines()]
    return [line for line in lines if line]


def _lines_starting(prefix: str) -> list[str]:
    lines = [line for line in _marked_lines() if line.startswith(prefix)]
    assert lines, f"no docs block marked as run here shows a `{prefix}` command"
    return lines


# The lines the tests below run, by their start.
RUN_HERE = (
    "gmdsl train specs/mnist.gm --device cpu --run runs/mnist-2",
    "torchrun ",
    "make demo",
    "make test",
    "make docs",
    "source .venv/bin/activate",
    "gmdsl data fetch fashion-mnist",
    "gmdsl data fetch faces",
    "gmdsl train specs/faces.gm",
    ".venv/bin/python bench/step_time.py",
    ".venv/bin/python bench/reproduce_mnist.py",
    ".venv/bin/python bench/screen_mnist.py",
    ".venv/bin/python bench/performance.py",
)


def test_every_line_marked_as_run_here_is() -> None:
    missed = [line for line in _marked_lines() if not line.startswith(RUN_HERE)]
    assert not missed, f"docs lines marked as run by {MARK} that no test here runs: {missed}"


def _tiny_cache(tmp_path: Path) -> dict[str, str]:
    from tiny_data import make_tiny_mnist

    make_tiny_mnist(tmp_path / "cache" / "mnist")
    return dict(os.environ, GMDSL_DATA=str(tmp_path / "cache"))


def _venv_words(line: str) -> list[str]:
    """A docs line's words, with `.venv` standing for the environment running the tests."""
    return [word.replace(".venv/", f"{VENV}/", 1) if word.startswith(".venv/") else word for word in line.split()]


@pytest.mark.parametrize("launcher", ["gmdsl train", "torchrun "])
def test_the_many_process_commands(launcher: str, tmp_path: Path) -> None:
    """The docs' two ways of training in two processes, as written, on tiny data for one
    short epoch, in tmp_path."""
    (line,) = [line for line in _marked_lines() if line.startswith(launcher) and "--run runs/mnist-2" in line]
    words = _venv_words(line)
    words[0] = str(VENV / "bin" / words[0])
    short = ["--epochs", "1", "--batch-size", "64", "--labels", "20", "--no-progress"]
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    result = subprocess.run([*words, *short], cwd=tmp_path, env=_tiny_cache(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "in 2 processes" in result.stdout
    assert (tmp_path / "runs" / "mnist-2" / "checkpoint" / "epoch-0001.safetensors").exists()


def test_make_demo(tmp_path: Path) -> None:
    """`make demo` as the docs have it, made small by make variables: one spec compiled, one epoch
    on tiny data, its run, pictures, kept records and README (a copy) in tmp_path. The venv is
    already set up, so its stamp is kept. The README's demo block is rewritten with the run's own
    numbers."""
    (line,) = _lines_starting("make demo")
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    command = [
        *line.split(),
        "-o",
        str(VENV / ".gmdsl-installed"),
        f"VENV={VENV}",
        "SPECS=specs/mnist.gm",
        "DEMO_EPOCHS=1",
        f"DEMO={tmp_path / 'build'}",
        f"DEMO_RUN={tmp_path / 'run'}",
        f"DEMO_README={readme}",
        f"DEMO_KEEP={tmp_path / 'kept'}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=_tiny_cache(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "build" / "mnist.py").exists() and (tmp_path / "build" / "mnist.png").exists()
    assert (tmp_path / "run" / "eval-best.json").exists() and (tmp_path / "run" / "figures" / "style_grid.png").exists()
    test_error = json.loads((tmp_path / "run" / "eval-best.json").read_text())["test_error_y"]
    block = readme.read_text(encoding="utf-8").split("<!-- demo:start")[1].split("<!-- demo:end -->")[0]
    assert f"**{test_error:.2f} % test error**" in block and "for 1 epoch instead of the table's 50" in block
    assert block.split("-->\n", 1)[1] in result.stdout  # make demo prints what it wrote
    kept = tmp_path / "kept"
    assert json.loads((kept / "eval-best.json").read_text())["test_error_y"] == test_error
    assert (kept / "figures" / "style_grid.png").exists() and (kept / "demo.json").exists()


def test_make_test_is_what_ci_runs() -> None:
    """CI (`.ci/run`) runs the docs' test command, so every green CI run has run it."""
    (line,) = _lines_starting("make test")
    assert line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_make_docs_is_run_by_ci() -> None:
    """CI builds the docs site with the docs' command (warnings as errors, mkdocs.yml's strict)."""
    (line,) = _lines_starting("make docs")
    assert line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_activating_the_venv_puts_gmdsl_on_path() -> None:
    (line,) = _lines_starting("source .venv/bin/activate")
    words = _venv_words(line)
    script = f"{' '.join(words)} && command -v gmdsl && gmdsl --help"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(VENV / "bin" / "gmdsl")
    assert "Usage: gmdsl" in result.stdout


def _fake_debian_tools(bin_dir: Path, unpacked: Path) -> None:
    """`apt-get download` and `dpkg-deb -x` stand-ins: the first leaves a package file, the second
    unpacks the gzipped IDX files of `unpacked` where Debian's package keeps them."""
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(
        '#!/bin/sh\n[ "$1" = download ] && echo package > "${2}_1.0-1_all.deb"\n', encoding="utf-8"
    )
    target = "$3/usr/share/datasets/fashion-mnist"
    (bin_dir / "dpkg-deb").write_text(
        f'#!/bin/sh\n[ "$1" = -x ] && mkdir -p "{target}" && cp {unpacked}/*.gz "{target}"\n', encoding="utf-8"
    )
    for tool in ("apt-get", "dpkg-deb"):
        (bin_dir / tool).chmod(0o755)


def test_fetching_fashion_mnist(tmp_path: Path, monkeypatch) -> None:
    """The docs' fetch line, with Debian's tools stood in for (no network in tests): the files
    land gzipped in the cache and open as a dataset."""
    from tiny_data import make_tiny_mnist

    from gmdsl import cli
    from gmdsl.data import open_dataset

    (line,) = _lines_starting("gmdsl data fetch fashion-mnist")
    raw = make_tiny_mnist(tmp_path / "raw")
    unpacked = tmp_path / "deb"
    unpacked.mkdir()
    for idx in raw.iterdir():
        (unpacked / f"{idx.name}.gz").write_bytes(gzip.compress(idx.read_bytes()))
    _fake_debian_tools(tmp_path / "bin", unpacked)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GMDSL_DATA", str(tmp_path / "cache"))
    assert cli.main(line.split()[1:]) == 0
    dataset = open_dataset("fashion-mnist", fetch_missing=False)
    assert dataset.train["image"].shape[0] == 400 and dataset.test["label"].shape[0] == 100


def test_fetching_faces(tmp_path: Path, monkeypatch) -> None:
    """The docs' faces line generates the dataset into the cache (two images per identity
    here, for speed; tests/test_faces.py checks the full set)."""
    import functools

    from gmdsl import cli
    from gmdsl.data import faces, open_dataset

    (line,) = _lines_starting("gmdsl data fetch faces")
    monkeypatch.setattr(faces, "generate", functools.partial(faces.generate, train_per_identity=2, test_per_identity=1))
    monkeypatch.setenv("GMDSL_DATA", str(tmp_path / "cache"))
    assert cli.main(line.split()[1:]) == 0
    dataset = open_dataset("faces", fetch_missing=False)
    assert dataset.train["image"].shape == (76, 1, 32, 32) and dataset.test["identity"].tolist() == list(range(38))


def test_training_the_faces_spec(tmp_path: Path, monkeypatch) -> None:
    """The docs' faces line on generated faces of 30 training images per identity, for one
    epoch (the last --epochs wins): it trains and chooses a checkpoint on identity error."""
    import functools

    from gmdsl import cli
    from gmdsl.data import faces

    (line,) = _lines_starting("gmdsl train specs/faces.gm")
    monkeypatch.setattr(
        faces, "generate", functools.partial(faces.generate, train_per_identity=30, test_per_identity=1)
    )
    monkeypatch.setenv("GMDSL_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)
    run = tmp_path / "run"
    assert cli.main([*line.split("#")[0].split()[1:], "--epochs", "1", "--run", str(run), "--no-progress"]) == 0
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert {"validation_error_identity", "validation_rmse_light", "validation_angle_light"} <= set(record)
    assert json.loads((run / "checkpoint" / "best.json").read_text())["metric"] == "validation_error_identity"


def test_the_step_time_bench() -> None:
    """The docs' line with fewer, smaller rounds appended (the last flag wins)."""
    (line,) = _lines_starting(".venv/bin/python bench/step_time.py")
    command = [*_venv_words(line), "--rounds", "2", "--batch", "16"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"ratio compiled / hand-written: \d\.\d{3}", result.stdout), result.stdout


def _effective(words: list[str]) -> tuple:
    """A bench line's options as argparse ends up with them: each flag's last values."""
    options: dict[str, tuple[str, ...]] = {}
    flag = ""
    for word in words[1:]:
        if word.startswith("--"):
            flag = word
            options[flag] = ()
        else:
            options[flag] = (*options.get(flag, ()), word)
    return (words[0], tuple(sorted(options.items())))


def _distinct(prefix: str, small: list[str]) -> list[str]:
    """The docs' lines starting with `prefix`, one of each that `small` (appended) makes the same
    command: a GPU variant of a line differs only in --jobs and --device, which the test sets."""
    kept: dict[tuple, str] = {}
    for line in _lines_starting(prefix):
        kept.setdefault(_effective([*line.split(), *small]), line)
    return list(kept.values())


def _run_small(line: str, small: list[str], tmp_path: Path, out: str) -> subprocess.CompletedProcess:
    """A bench line run with `small` and outputs in tmp_path appended, on tiny MNIST (standing
    in for Fashion-MNIST too)."""
    from tiny_data import make_tiny_mnist

    outputs = ["--out", str(tmp_path / out), "--runs", str(tmp_path / "runs")]
    env = _tiny_cache(tmp_path)
    make_tiny_mnist(tmp_path / "cache" / "fashion-mnist")
    result = subprocess.run([*_venv_words(line), *small, *outputs], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


SMALL_TABLE = ["--labels", "10", "--seeds", "1", "--epochs", "1", "--jobs", "1", "--device", "cpu"]


@pytest.mark.parametrize("line", _distinct(".venv/bin/python bench/reproduce_mnist.py", SMALL_TABLE))
def test_the_reproduce_bench(line: str, tmp_path: Path) -> None:
    """The docs' lines with a small table appended (the last flag wins): 10 labels, one seed,
    one epoch on tiny data, on the CPU, written to tmp_path. A supervised-only baseline's row
    draws no style grid: its decoder is untrained. A Fashion-MNIST table trains on that dataset
    into its own files, with its own label counts and no MNIST reference rows."""
    _run_small(line, SMALL_TABLE, tmp_path, "results")
    results = tmp_path / "results"
    fashion = "fashion-mnist" in line
    stem = "fashion" if fashion else "mnist"
    table = (results / f"{stem}.md").read_text(encoding="utf-8")
    assert "checkpoint chosen on validation" in table
    baseline = "--supervised-only" in line
    assert ("supervised-only baseline" in table) == baseline
    assert (results / f"{stem}_style.png").exists() != baseline
    setting = json.loads((results / f"{stem}.json").read_text())["settings"][-1]
    assert setting["selection"] == "validation" and setting["runs"][0]["chosen_epoch"] == 1
    config = json.loads((results / "logs" / f"{setting['runs'][0]['name']}.config.json").read_text())
    assert config["dataset"] == ("fashion-mnist" if fashion else "mnist")
    title = "Fashion-MNIST" if fashion else "MNIST"
    assert table.startswith(f"# {title} test error (%) with N labelled examples")
    assert ("Siddharth" in table) != fashion and not (results / f"{'mnist' if fashion else 'fashion'}.md").exists()


@pytest.mark.parametrize("line", _lines_starting(".venv/bin/python bench/screen_mnist.py"))
def test_the_screen_bench(line: str, tmp_path: Path) -> None:
    """The docs' line with a small screen appended (the last flag wins): the first two recipes of
    its recipes file, one seed, one epoch on tiny data, written to tmp_path; the table ranks
    them on validation error."""
    from gmdsl.train.settings import tomllib

    words = line.split()
    recipes_file = words[words.index("--recipes") + 1] if "--recipes" in words else "bench/screens.toml"
    first_two = list(tomllib.loads((ROOT / recipes_file).read_text(encoding="utf-8")))[:2]
    small = ["--only", *first_two, "--labels", "10", "--seeds", "0", "--epochs", "1", "--device", "cpu"]
    _run_small(line, small, tmp_path, "screens")
    table = (tmp_path / "screens" / "README.md").read_text(encoding="utf-8")
    assert all(f"| **{name}**" in table for name in first_two) and "best validation error" in table


def test_the_performance_report(tmp_path: Path) -> None:
    """The docs' line with every section but --compile's (a minute of torch.compile) made
    small (the last flag wins), on tiny data, written to tmp_path (the precision section's runs
    too); Pyro's row says why it did not run where pyro-ppl is not installed."""
    (line,) = _lines_starting(".venv/bin/python bench/performance.py")
    small = ["--sections", "steps", "epochs", "accuracy", "scaling", "precision", "--rounds", "1", "--batch", "16"]
    small += ["--labels", "20", "--evaluate-every", "2", "--gmdsl-budget", "0.5", "--pyro-budget", "0.5"]
    small += ["--precision-epochs", "1", "--precision-seeds", "1", "--precision-runs", str(tmp_path / "runs")]
    command = [*_venv_words(line), *small, "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=_tiny_cache(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = (tmp_path / "performance.md").read_text(encoding="utf-8")
    headings = ["## A training step", "## An epoch of every shipped MNIST spec", "## Time to accuracy", "## How"]
    for heading in [*headings, "## Precision: bf16 against fp32"]:
        assert heading in report
    assert "| bf16 |" in report and (tmp_path / "precision" / "bf16-seed0.metrics.jsonl").exists()
    assert "| `mnist_wide.gm` |" in report and (tmp_path / "performance.png").exists()


def test_the_property_testing_pages_pytest_file_passes(monkeypatch) -> None:
    """docs/property-testing.md's pytest file, run from the repository: each of its tests, called
    as pytest would call it, runs its hypothesis examples and passes."""
    (block,) = [b for b in blocks("docs/property-testing.md") if b.marker == "file" and b.value == "test_my_model.py"]
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(block.body, block.where, "exec"), namespace)  # noqa: S102 - the docs' own example
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()


def test_the_training_pages_config_names_every_setting() -> None:
    """docs/training.md's config block (which its page run checks is valid) lists every setting."""
    from gmdsl.train.settings import TrainSettings, tomllib

    (block,) = [b for b in blocks("docs/training.md") if b.lang == "toml"]
    assert set(tomllib.loads(block.body)) == set(TrainSettings.model_fields)
