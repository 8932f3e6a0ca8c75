"""The front end as one call: spec (a path or source text) -> parse -> check -> lower."""

from __future__ import annotations

import os
from pathlib import Path

from . import ast
from .checker import check
from .errors import Diagnostic, SpecError
from .lowering import ModelGraph, lower
from .parser import parse


def read_spec(spec: str | os.PathLike) -> tuple[str, str]:
    """(source text, path for messages). A string naming a file, or ending in `.gm`, is a
    path; any other string is the spec's text itself."""
    is_path = isinstance(spec, os.PathLike) or ("\n" not in spec and (spec.endswith(".gm") or _is_file(spec)))
    if not is_path:
        return spec, "<string>"
    path = Path(spec)
    try:
        return path.read_text(encoding="utf-8"), str(spec)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such spec file: {spec}") from None


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # too long, or a NUL byte: not a file name at all
        return False


def analyse(spec: str | os.PathLike) -> tuple[ast.Spec, list[Diagnostic]]:
    """Parse and check; a syntax error raises `SpecSyntaxError`, other findings are returned."""
    source, path = read_spec(spec)
    tree = parse(source, path)
    return tree, check(tree)


def load(spec: str | os.PathLike) -> ModelGraph:
    """The model graph of a spec; any error in it raises `SpecError` with every diagnostic."""
    tree, diagnostics = analyse(spec)
    if any(d.is_error for d in diagnostics):
        raise SpecError(diagnostics, tree.path, tree.source)
    return lower(tree)
