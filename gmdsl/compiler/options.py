"""Checking `key = value` options (of networks, estimators and the objective) against the
registry's `OptionSpec`s: one routine, so every option error reads the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gmdsl.runtime.registry import LARGEST_WHOLE_OPTION, OptionSpec

from . import ast
from .diagnostics import Diagnostic, did_you_mean, error


def resolve_options(
    options: tuple[ast.Option, ...],
    specs: tuple[OptionSpec, ...],
    owner: str,
    code: str,
    report: Callable[[Diagnostic], None],
) -> dict[str, Any]:
    """The options with defaults filled in; each bad one is reported and left at its default.

    `owner` names what the options belong to in messages, e.g. "network builder `mlp`".
    """
    by_name = {s.name: s for s in specs}
    values = {s.name: s.default for s in specs}
    seen: dict[str, ast.Option] = {}
    for option in options:
        key = option.key.name
        spec = by_name.get(key)
        if spec is None:
            known = ", ".join(f"`{s.name}`" for s in specs) or "none"
            hint = did_you_mean(key, by_name)
            report(
                error(code, f"{owner} has no option `{key}`", option.key.span, help=hint or f"its options are: {known}")
            )
            continue
        if key in seen:
            first = seen[key].span
            report(
                error(
                    code,
                    f"option `{key}` is given twice",
                    option.key.span,
                    note=f"first given at {first.line}:{first.column}",
                )
            )
            continue
        seen[key] = option
        value = _convert(option.value, spec)
        if value is None:
            report(
                error(
                    code,
                    f"option `{key}` of {owner} must be {spec.describe()}",
                    option.value.span,
                    help=_choice_hint(option.value, spec),
                )
            )
            continue
        values[key] = value
    return values


def _choice_hint(value: ast.Literal, spec: OptionSpec) -> str | None:
    if spec.kind == "choice" and isinstance(value, ast.Word):
        return did_you_mean(value.word, spec.choices)
    if spec.kind == "int_list" and isinstance(value, ast.Number):
        return f"write a list: `{spec.name} = [{value.value}]`"
    return None


def _convert(value: ast.Literal, spec: OptionSpec) -> Any:
    """The Python value of an option, or None when it does not fit the spec."""
    if spec.kind == "choice":
        return value.word if isinstance(value, ast.Word) and value.word in spec.choices else None
    if spec.kind == "int_list":
        if not isinstance(value, ast.ListLiteral):
            return None
        items = [_number(item, integer=True, spec=spec) for item in value.items]
        return tuple(items) if all(i is not None for i in items) else None
    return _number(value, integer=spec.kind == "int", spec=spec)


def _number(value: ast.Literal, integer: bool, spec: OptionSpec) -> int | float | None:
    if not isinstance(value, ast.Number):
        return None
    number = value.value
    if integer and not (isinstance(number, int) and number <= LARGEST_WHOLE_OPTION):
        return None
    if spec.minimum is not None and number < spec.minimum:
        return None
    if spec.exclusive_minimum is not None and number <= spec.exclusive_minimum:
        return None
    return number
