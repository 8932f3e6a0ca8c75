"""The code blocks of the README and of docs/, and how a test runs them.

A block runs by its language, in a fresh folder per page (the page's blocks in order, its Python
blocks sharing one namespace), with specs/ and docs/examples/ copied in and a small generated
MNIST look-alike as the MNIST cache:

- `python`: executed;
- `sh` / `bash`: every line is a `gmdsl` command, run in process, and must exit 0;
- `gm`: a whole spec, which `gmdsl check` must pass;
- `toml`: a training config, which gmdsl's settings must accept;
- no language: a `$ gmdsl ...` session, whose command must print exactly what the block shows.

A marker, an HTML comment on the line before the fence, changes that:

- `<!-- from: PATH -->`: an excerpt; its lines are lines of PATH, in order (`...` skips some);
- `<!-- file: NAME -->`: the block is written to NAME in the page's folder;
- `<!-- cwd: PATH -->`: a session run in PATH of the repository rather than the page's folder;
- `<!-- run by: tests/FILE.py -->`: that test file runs each line of it (it checks that every
  line of the blocks marked for it is one it runs);
- `<!-- not run: REASON -->`: it cannot run in a test (hours of training, a second machine);
  the reason says why, and where it names a test file, that file exists.

A page that needs a trained run of the tutorial's points before its blocks says
`<!-- docs setup: points run -->`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# docs/results is a link to results/: pages written by the renderers, checked by their own tests
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"^[ \t]*<!-- (from|file|cwd|run by|not run|example): (.+?) -->[ \t]*$")
MARKERS_ALLOWED = ("from", "file", "cwd", "run by", "not run", "example")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    body: str
    marker: str | None  # the marker's kind, or None
    value: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.match(before)
        indent = match.group("indent")
        rows = match.group("body").splitlines(True)
        body = "".join(row[len(indent) :] if row.startswith(indent) else row for row in rows)
        kind, value = (marker.group(1), marker.group(2)) if marker else (None, "")
        found.append(Block(page, line, match.group("lang"), body, kind, value))
    return found


def excerpt_problem(block: Block) -> str | None:
    """Why the block is not an excerpt of the file its marker names (None when it is)."""
    source = ROOT / block.value
    if not source.is_file():
        return f"{block.where}: `from: {block.value}` names no file"
    lines = [_code(row) for row in source.read_text(encoding="utf-8").splitlines()]
    at = 0
    for row in block.body.splitlines():
        wanted = _code(row)
        if not wanted or wanted == "...":
            continue
        try:
            at = lines.index(wanted, at) + 1
        except ValueError:
            return f"{block.where}: `{wanted}` is not in {block.value} (after the lines before it)"
    return None


def _code(row: str) -> str:
    """A line as code: its comment dropped (an excerpt may comment otherwise), spaces collapsed."""
    return " ".join(row.split("#")[0].split()) if not row.strip().startswith("...") else "..."


def prepare(folder: Path, page: str, monkeypatch) -> None:
    """The page's folder: specs, the docs' example files, tiny MNIST as the cache, and what the
    page's setup marker asks for; the test then runs in it."""
    from tiny_data import make_tiny_mnist

    shutil.copytree(ROOT / "specs", folder / "specs")
    shutil.copytree(ROOT / "docs" / "examples", folder / "docs" / "examples")
    make_tiny_mnist(folder / "cache" / "mnist")
    monkeypatch.setenv("GMDSL_DATA", str(folder / "cache"))
    monkeypatch.chdir(folder)
    if "<!-- docs setup: points run -->" in (ROOT / page).read_text(encoding="utf-8"):
        _train_points_run(folder)


def _train_points_run(folder: Path) -> None:
    from own_data import write_points

    from gmdsl import cli

    data = write_points(folder, 0.7)
    flags = ["--dataset", str(data), "--epochs", "1", "--run", "runs/points", "--no-progress"]
    assert cli.main(["train", str(folder / "points.gm"), *flags]) == 0


def run_page(page: str, capsys) -> str:
    """Run every block of `page` that runs here, in order, in the current folder (made by
    `prepare`); what its Python blocks printed."""
    from gmdsl import cli

    namespace: dict = {"__name__": "__docs__"}
    printed = io.StringIO()
    for block in blocks(page):
        if block.marker in ("not run", "run by"):
            continue
        if block.marker == "from":
            problem = excerpt_problem(block)
            assert problem is None, problem
        elif block.marker == "file":
            Path(block.value).parent.mkdir(parents=True, exist_ok=True)
            Path(block.value).write_text(block.body, encoding="utf-8")
        elif block.lang == "python":
            with contextlib.redirect_stdout(printed):
                exec(compile(block.body, block.where, "exec"), namespace)  # noqa: S102 - the docs' own example
        elif block.lang in ("sh", "bash"):
            for row in block.body.splitlines():
                words = row.split("#")[0].split()
                if not words:
                    continue
                assert words[0] == "gmdsl", f"{block.where}: `{row}` is not a gmdsl command; mark the block"
                assert cli.main(words[1:]) == 0, f"{block.where}: `{row}` failed"
                capsys.readouterr()
        elif block.lang == "gm":
            Path("block.gm").write_text(block.body, encoding="utf-8")
            code = cli.main(["check", "block.gm"])
            assert code == 0, f"{block.where}: the spec does not check: {capsys.readouterr()}"
            capsys.readouterr()
        elif block.lang == "toml":
            from gmdsl.train.settings import resolve

            Path("block.toml").write_text(block.body, encoding="utf-8")
            resolve(Path("block.toml"), {})
        elif block.lang == "" and block.body.startswith("$ gmdsl "):
            _session(block, capsys)
        else:
            raise AssertionError(f"{block.where}: a ```{block.lang} block that nothing runs; mark it")
    return printed.getvalue()


def _session(block: Block, capsys) -> None:
    from gmdsl import cli

    command, shown = block.body.split("\n", 1)
    here = Path.cwd()
    try:
        if block.marker == "cwd":
            os.chdir(ROOT / block.value)
        capsys.readouterr()
        cli.main(command.split()[2:])
        captured = capsys.readouterr()
    finally:
        os.chdir(here)
    assert captured.out + captured.err == shown, f"{block.where}: `{command[2:]}` prints otherwise"
