"""Every help that says exactly what to write leads to a spec that checks: for each golden bad
spec, each diagnostic whose help is a mechanical edit (a spelling to take, a parent to add or
remove, a word to write in place of the marked text, a clause to drop) is applied to the text,
and the edited spec no longer has that mistake and has no new one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gmdsl.compiler.checker import check
from gmdsl.compiler.diagnostics import Diagnostic, SpecSyntaxError
from gmdsl.compiler.parser import parse

BAD = sorted((Path(__file__).parent / "golden" / "bad").glob("*.gm"))


def _diagnostics(text: str) -> list[Diagnostic]:
    try:
        return list(check(parse(text)).diagnostics)
    except SpecSyntaxError as error:
        return list(error.diagnostics)


def _offsets(text: str, diagnostic: Diagnostic) -> tuple[int, int]:
    lines = text.split("\n")
    span = diagnostic.span
    start = sum(len(line) + 1 for line in lines[: span.line - 1]) + span.column - 1
    end = sum(len(line) + 1 for line in lines[: span.end_line - 1]) + span.end_column - 1
    return start, end


def _head(line: str) -> tuple[int, int] | None:
    """Where the factor head `p(x | y)` of a line starts and ends."""
    match = re.search(r"\b[pq]\([^)]*\)", line)
    return match.span() if match else None


def edited(text: str, diagnostic: Diagnostic) -> str | None:
    """The text with the diagnostic's help applied, where the help is mechanical; else None."""
    help_text = diagnostic.help or ""
    start, end = _offsets(text, diagnostic)
    if match := re.fullmatch(r"did you mean `([^`]+)`\?", help_text):
        # the name throughout its statement: an unknown parent is reported once, where it is listed
        line_start, line_end = text.rfind("\n", 0, start) + 1, text.find("\n", end) % (len(text) + 1)
        line = re.sub(rf"\b{re.escape(text[start:end])}\b", match.group(1), text[line_start:line_end])
        return text[:line_start] + line + text[line_end:]
    if match := re.fullmatch(r"add it to the parents: `([pq]\([^`]*\))`", help_text):
        line_start = text.rfind("\n", 0, start) + 1
        head = _head(text[line_start:])
        assert head is not None
        return text[: line_start + head[0]] + match.group(1) + text[line_start + head[1] :]
    if help_text.startswith(("pass it to a network of this factor, or remove it from", "remove it from the parents")):
        before = text[:start].rstrip()
        if before.endswith(","):  # `| a, b` -> `| a`
            return before[:-1] + text[end:]
        after = text[end:].lstrip()
        if after.startswith(","):  # `| b, a` -> `| a`
            return text[:start] + after[1:].lstrip()
        return before.rstrip("|").rstrip() + text[end:]  # the only parent: `p(x | y)` -> `p(x)`
    if match := re.match(r"write `([^`.]+)`(:|,|$)", help_text):
        snippet, marked = match.group(1), text[start:end]
        if text[start] == "[":  # a step is marked: the name before it is rewritten with it
            start = re.search(r"\w+$", text[:start]).start()  # type: ignore[union-attr]
        elif marked in snippet and text[:start].endswith(snippet[: snippet.index(marked)]):
            start -= snippet.index(marked)  # the snippet rewrites what comes before the marked text too
        return text[:start] + snippet + text[end:]
    if match := re.fullmatch(r"write a number: `\w+ = (\S+)`", help_text):
        return text[:start] + match.group(1) + text[end:]
    if match := re.fullmatch(r"enumeration is .*; use `(by relaxation)`", help_text):
        return text[:start] + match.group(1) + text[end:]
    if help_text.endswith("remove the `by` clause") or help_text.endswith("through an estimator; remove it"):
        return text[:start].rstrip() + text[end:]
    return None


def _count(diagnostics: list[Diagnostic], mistake: tuple[str, str]) -> int:
    return sum((d.code, d.message) == mistake for d in diagnostics)


def _mistakes(diagnostics: list[Diagnostic]) -> set[tuple[str, str]]:
    return {(d.code, d.message) for d in diagnostics}


CASES = [
    pytest.param(path, index, id=f"{path.stem}-{index}")
    for path in BAD
    for index, diagnostic in enumerate(_diagnostics(path.read_text(encoding="utf-8", errors="replace")))
    if edited(path.read_text(encoding="utf-8", errors="replace"), diagnostic) is not None
]


@pytest.mark.parametrize(("path", "index"), CASES)
def test_a_mechanical_help_fixes_its_mistake_and_adds_none(path: Path, index: int) -> None:
    text = path.read_text(encoding="utf-8")
    before = _diagnostics(text)
    diagnostic = before[index]
    fixed = edited(text, diagnostic)
    assert fixed is not None
    after = _diagnostics(fixed)
    same = (diagnostic.code, diagnostic.message)
    assert _count(after, same) < _count(before, same), f"the help did not fix it:\n{fixed}"
    new = {(d.code, d.message) for d in after if d.is_error} - _mistakes(before)
    assert not new, f"following `{diagnostic.help}` made new errors {sorted(new)}:\n{fixed}"


def test_most_goldens_with_a_help_get_a_mechanical_edit() -> None:
    """The edits above are not a handful: a help that names what to write is the common case."""
    assert len(CASES) >= 25
