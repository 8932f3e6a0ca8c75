"""The README's examples run as they are written."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)  # the environment running the tests; `.venv` in a README line means it


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


_HEADINGS = ("## The first five minutes", "## Training on MNIST")


@pytest.mark.parametrize("heading", _HEADINGS)
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
    assert (run / "eval-best.json").exists() and (run / "figures" / "style_grid.png").exists()


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


def _readme_lines() -> list[str]:
    """Every command line of the README's sh and bash blocks, comments dropped."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^[ \t]*```(?:sh|bash)\n(.*?)^[ \t]*```", readme, flags=re.S | re.M)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


def _lines_starting(prefix: str) -> list[str]:
    lines = [line for line in _readme_lines() if line.startswith(prefix)]
    assert lines, f"the README shows no `{prefix}` command"
    return lines


# The README lines that the tests below run (besides the two gmdsl blocks above), by their start.
RUN_BELOW = (
    "gmdsl train specs/mnist.gm --device cpu --run runs/mnist-2",
    "torchrun ",
    "make demo",
    "make test",
    "source .venv/bin/activate",
    "gmdsl graph ",
    "gmdsl data fetch fashion-mnist",
    "gmdsl data fetch faces",
    "gmdsl data fetch multi-mnist",  # tests/test_multi_mnist.py
    "gmdsl train specs/faces.gm",
    ".venv/bin/python bench/step_time.py",
    ".venv/bin/python bench/reproduce_mnist.py",
    ".venv/bin/python bench/screen_mnist.py",
    ".venv/bin/python bench/faces_table.py",
    ".venv/bin/python bench/performance.py",
)


def test_every_readme_command_is_run_by_a_test() -> None:
    covered = {" ".join(words) for heading in _HEADINGS for words in _commands(heading)}
    missed = [line for line in _readme_lines() if line not in covered and not line.startswith(RUN_BELOW)]
    assert not missed, f"README commands that no test runs: {missed}"


def _tiny_cache(tmp_path: Path) -> dict[str, str]:
    from tiny_data import make_tiny_mnist

    make_tiny_mnist(tmp_path / "cache" / "mnist")
    return dict(os.environ, GMDSL_DATA=str(tmp_path / "cache"))


def _venv_words(line: str) -> list[str]:
    """A README line's words, with `.venv` standing for the environment running the tests."""
    return [word.replace(".venv/", f"{VENV}/", 1) if word.startswith(".venv/") else word for word in line.split()]


@pytest.mark.parametrize("launcher", ["gmdsl train", "torchrun "])
def test_the_many_process_commands(launcher: str, tmp_path: Path) -> None:
    """The README's two ways of training in two processes, as written, on tiny data for one
    short epoch, in tmp_path."""
    (line,) = [line for line in _readme_lines() if line.startswith(launcher) and "--run runs/mnist-2" in line]
    words = _venv_words(line)
    words[0] = str(VENV / "bin" / words[0])
    short = ["--epochs", "1", "--batch-size", "64", "--labels", "20", "--no-progress"]
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    result = subprocess.run([*words, *short], cwd=tmp_path, env=_tiny_cache(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "in 2 processes" in result.stdout
    assert (tmp_path / "runs" / "mnist-2" / "checkpoint" / "epoch-0001.safetensors").exists()


def test_make_demo(tmp_path: Path) -> None:
    """`make demo` as the README has it, made small by make variables: one spec, one epoch, tiny
    data, and its run and pictures in tmp_path. The venv is already set up, so its stamp is kept."""
    (line,) = _lines_starting("make demo")
    command = [
        *line.split(),
        "-o",
        str(VENV / ".gmdsl-installed"),
        f"VENV={VENV}",
        "SPECS=specs/mnist.gm",
        "DEMO_EPOCHS=1",
        f"DEMO={tmp_path / 'build'}",
        f"DEMO_RUN={tmp_path / 'run'}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=_tiny_cache(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "build" / "mnist.py").exists() and (tmp_path / "build" / "mnist.png").exists()
    assert (tmp_path / "run" / "eval-best.json").exists() and (tmp_path / "run" / "figures" / "style_grid.png").exists()


def test_make_test_is_what_ci_runs() -> None:
    """CI (`.ci/run`) runs the README's test command, so every green CI run has run it."""
    (line,) = _lines_starting("make test")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1] == line


def test_activating_the_venv_puts_gmdsl_on_path() -> None:
    (line,) = _lines_starting("source .venv/bin/activate")
    words = _venv_words(line)
    script = f"{' '.join(words)} && command -v gmdsl && gmdsl --help"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(VENV / "bin" / "gmdsl")
    assert "Usage: gmdsl" in result.stdout


def test_the_graph_command(tmp_path: Path, monkeypatch) -> None:
    from gmdsl import cli

    (line,) = _lines_starting("gmdsl graph ")
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert cli.main(line.split()[1:]) == 0
    output = Path(line.split()[line.split().index("-o") + 1])
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    """The README's fetch line, with Debian's tools stood in for (no network in tests): the files
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
    """The README's faces line generates the dataset into the cache (two images per identity
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
    """The README's faces line on generated faces of 30 training images per identity, for one
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
    """The README's line with fewer, smaller rounds appended (the last flag wins)."""
    (line,) = _lines_starting(".venv/bin/python bench/step_time.py")
    command = [*_venv_words(line), "--rounds", "2", "--batch", "16"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"ratio compiled / hand-written: \d\.\d{3}", result.stdout), result.stdout


@pytest.mark.parametrize("line", _lines_starting(".venv/bin/python bench/reproduce_mnist.py"))
def test_the_reproduce_bench(line: str, tmp_path: Path) -> None:
    """The README's lines with a small table appended (the last flag wins): 10 labels, one seed,
    one epoch on tiny data (standing in for Fashion-MNIST too), on the CPU, written to tmp_path.
    A supervised-only baseline's row draws no style grid: its decoder is untrained."""
    from tiny_data import make_tiny_mnist

    small = ["--labels", "10", "--seeds", "1", "--epochs", "1", "--jobs", "1", "--device", "cpu"]
    outputs = ["--out", str(tmp_path / "results"), "--runs", str(tmp_path / "runs")]
    command = [*_venv_words(line), *small, *outputs]
    env = _tiny_cache(tmp_path)
    make_tiny_mnist(tmp_path / "cache" / "fashion-mnist")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    stem = "fashion" if "fashion-mnist" in line else "mnist"
    table = (tmp_path / "results" / f"{stem}.md").read_text(encoding="utf-8")
    assert "checkpoint chosen on validation" in table
    baseline = "--supervised-only" in line
    assert ("supervised-only baseline" in table) == baseline
    assert (tmp_path / "results" / f"{stem}_style.png").exists() != baseline
    setting = json.loads((tmp_path / "results" / f"{stem}.json").read_text())["settings"][-1]
    assert setting["selection"] == "validation" and setting["runs"][0]["chosen_epoch"] == 1


@pytest.mark.parametrize("line", _lines_starting(".venv/bin/python bench/screen_mnist.py"))
def test_the_screen_bench(line: str, tmp_path: Path) -> None:
    """The README's line with a small screen appended (the last flag wins): two recipes, one seed,
    one epoch on tiny data, written to tmp_path; the table ranks them on validation error."""
    small = ["--only", "baseline", "rho-0.1", "--labels", "10", "--seeds", "0", "--epochs", "1", "--device", "cpu"]
    outputs = ["--out", str(tmp_path / "screens"), "--runs", str(tmp_path / "runs")]
    command = [*_venv_words(line), *small, *outputs]
    result = subprocess.run(command, cwd=ROOT, env=_tiny_cache(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    table = (tmp_path / "screens" / "README.md").read_text(encoding="utf-8")
    assert "| **baseline**" in table and "| **rho-0.1**" in table and "best validation error" in table


def test_the_performance_report(tmp_path: Path) -> None:
    """The README's line with every section but --compile's (a minute of torch.compile) made
    small (the last flag wins), on tiny data, written to tmp_path; Pyro's row says why it did not
    run where pyro-ppl is not installed."""
    (line,) = _lines_starting(".venv/bin/python bench/performance.py")
    small = ["--sections", "steps", "epochs", "accuracy", "scaling", "--rounds", "1", "--batch", "16"]
    small += ["--labels", "20", "--evaluate-every", "2", "--gmdsl-budget", "0.5", "--pyro-budget", "0.5"]
    command = [*_venv_words(line), *small, "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=_tiny_cache(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = (tmp_path / "performance.md").read_text(encoding="utf-8")
    for heading in ("## A training step", "## An epoch of every shipped MNIST spec", "## Time to accuracy", "## How"):
        assert heading in report
    assert "| `mnist_wide.gm` |" in report and (tmp_path / "performance.png").exists()


def test_the_readme_config_is_valid_and_names_every_setting() -> None:
    from gmdsl.train.settings import TrainSettings, tomllib

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    values = tomllib.loads(block)
    TrainSettings(**values)  # raises on a wrong key or type
    assert set(values) == set(TrainSettings.model_fields)
