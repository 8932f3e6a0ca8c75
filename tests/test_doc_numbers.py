"""Every figure the README and docs/ quote is found in a committed results file or log.

A figure is a percentage, a time, a speed ratio, a "± spread" or a number with two or more
decimals, in the prose of a page (code blocks, inline code, links' targets and HTML comments are
not prose: code is run by tests/test_docs.py). It is found when the same number, in the same
unit, appears in some text file under results/ (the pages the renderers write, the JSON records,
the logs). A paragraph that quotes figures for another reason (a setting, an illustration) says
so with `<!-- illustration: REASON -->` on the line before it.
"""

from __future__ import annotations

import bisect
import re
from functools import cache

from doc_blocks import PAGES, ROOT

# the language reference is generated from the registry (its numbers are defaults and limits)
CHECKED = [page for page in PAGES if page != "docs/reference.md"]
UNITS = {
    "%": "%",
    "s": "s",
    "seconds": "s",
    "ms": "ms",
    "min": "min",
    "minutes": "min",
    "hours": "h",
    "h": "h",
    "x": "",  # a ratio: the results pages write 0.72 where prose says 0.72x
    "degrees": "deg",
}
FIGURE = re.compile(
    r"(?P<sign>±\s?)?(?P<number>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
    r"(?:(?P<space>\s?)(?P<unit>%|seconds|minutes|hours|degrees|ms|min|s|h|x))?(?![\w.])"
)


def prose(text: str) -> str:
    """The page without code blocks, inline code, HTML comments (with the paragraph after an
    illustration marker) and link targets."""
    text = re.sub(r"<!-- illustration: .*? -->\n.*?(\n\n|\Z)", "\n\n", text, flags=re.S)
    text = re.sub(r"^([ \t]*)```.*?^\1```", "", text, flags=re.S | re.M)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"`[^`]{0,300}`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def figures(text: str) -> list[tuple[str, str]]:
    """(number, unit) of each figure in `text`: unit '' for a bare number of two or more decimals,
    a count written with thousands separators, a ratio or a ± spread."""
    found = []
    for match in FIGURE.finditer(text):
        number, unit = match.group("number"), match.group("unit") or ""
        if unit == "x" and match.group("space"):  # 32 x 32 is a size, not a ratio
            continue
        spread = bool(match.group("sign"))
        if spread or unit or "," in number or re.fullmatch(r"\d+\.\d{2,}", number):
            found.append((number.replace(",", ""), "" if spread else UNITS[unit] if unit else ""))
    return found


@cache
def sources() -> dict[str, list[float]]:
    """Every number in the committed results and logs, sorted, by unit ('' holds them all)."""
    found: dict[str, set[float]] = {"": set()}
    for path in (ROOT / "results").rglob("*"):
        if path.suffix in (".md", ".json", ".log", ".toml", ".csv") and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for match in FIGURE.finditer(text):
                number = float(match.group("number").replace(",", ""))
                found.setdefault(UNITS.get(match.group("unit") or "", ""), set()).add(number)
                found[""].add(number)
    return {unit: sorted(numbers) for unit, numbers in found.items()}


def _found(number: str, unit: str) -> bool:
    """Whether a committed number in `unit` rounds to `number` at the decimals it is quoted to
    (1.7 hours for a record of 1.72)."""
    decimals = len(number.split(".")[1]) if "." in number else 0
    value, tolerance = float(number), 0.5 * 10**-decimals + 1e-9
    known = sources().get(unit, [])
    at = bisect.bisect_left(known, value - tolerance)
    return at < len(known) and known[at] <= value + tolerance


def test_every_quoted_figure_has_a_committed_source() -> None:
    missing = []
    for page in CHECKED:
        for number, unit in figures(prose((ROOT / page).read_text(encoding="utf-8"))):
            if not _found(number, unit):
                missing.append(f"{page}: {number}{unit}")
    assert not missing, "figures found in no committed results file or log:\n" + "\n".join(missing)


def test_the_figure_reader_sees_what_a_page_quotes() -> None:
    text = "It took 3.7 hours; 8.98 ±1.16 % at N = 100, 0.72x, 40 % and 118 s (`lr = 1e-3`, 0.5)"
    text += " on 32 x 32, 42,175 in all."
    assert figures(prose(text)) == [
        ("3.7", "h"),
        ("8.98", ""),
        ("1.16", ""),
        ("0.72", ""),
        ("40", "%"),
        ("118", "s"),
        ("42175", ""),
    ]
    assert figures(prose("<!-- illustration: a made-up run -->\n50 % of 3.25 s\n\n9 %")) == [("9", "%")]
