"""Every code block of the README and of docs/ runs as it is written, or says why it does not
(tests/doc_blocks.py says how each kind of block runs and what its markers mean)."""

from __future__ import annotations

import re

import pytest
from doc_blocks import MARKERS_ALLOWED, PAGES, ROOT, blocks, excerpt_problem, prepare, run_page

# pages with a test of their own that runs every block and checks more (what they print, files)
OWN_TEST = {"docs/tutorial.md": "tests/test_tutorial.py"}
RUNS_HERE = ("python", "sh", "bash", "gm", "toml")


def _runs_something(page: str) -> bool:
    return any(b.marker not in ("not run", "run by") and (b.lang in RUNS_HERE or b.marker) for b in blocks(page))


def test_every_block_runs_or_says_why_not() -> None:
    problems = []
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for marker in re.findall(r"<!-- ([\w .-]+): ", text):
            if marker not in (*MARKERS_ALLOWED, "docs setup", "illustration", "demo"):
                problems.append(f"{page}: unknown marker `{marker}`")
        for block in blocks(page):
            if block.marker == "not run":
                if len(block.value.split()) < 3:
                    problems.append(f"{block.where}: `not run` needs a reason")
                for named in re.findall(r"tests/[\w/]+\.py", block.value):
                    if not (ROOT / named).is_file():
                        problems.append(f"{block.where}: the reason names {named}, which does not exist")
            elif block.marker == "run by":
                # that file's own test checks that it runs every line of the blocks marked for it
                source = (ROOT / block.value).read_text(encoding="utf-8") if (ROOT / block.value).is_file() else ""
                if f'MARK = "{block.value}"' not in source:
                    problems.append(f"{block.where}: {block.value} runs no marked docs lines")
            elif block.marker == "from":
                problems.append(excerpt_problem(block) or "")
            elif block.marker is None and block.lang not in RUNS_HERE:
                if not (block.lang == "" and block.body.startswith("$ gmdsl ")):
                    problems.append(f"{block.where}: a ```{block.lang} block that nothing runs and no marker explains")
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.parametrize("page", [p for p in PAGES if p not in OWN_TEST and _runs_something(p)])
def test_the_page_runs_as_written(page: str, tmp_path, monkeypatch, capsys) -> None:
    prepare(tmp_path, page, monkeypatch)
    run_page(page, capsys)


@pytest.mark.parametrize("page, test", OWN_TEST.items())
def test_pages_with_their_own_test_are_run_by_it(page: str, test: str) -> None:
    source = (ROOT / test).read_text(encoding="utf-8")
    assert f'run_page("{page}"' in source
