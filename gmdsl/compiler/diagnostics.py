"""Diagnostics: what the compiler tells a user about their spec, and how it is shown.

A diagnostic renders like a good compiler's:

    specs/bad.gm:7:8: error[E0102]: unknown distribution `Normall`
        7 | p(z) = Normall(0, 1)
          |        ^^^^^^^
          = help: did you mean `Normal`?

User mistakes are `SpecError`s carrying diagnostics (a `UserError`, like every mistake a
user can fix); a bug in gmdsl itself is an `InternalCompilerError`, which the CLI reports as
such, never as the user's fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from gmdsl.runtime.errors import UserError, did_you_mean

from .ast import Span

# Every diagnostic code, with what it means (docs/reference.md is generated from this).
CODES: dict[str, str] = {
    "E0001": "syntax error: the text does not follow the grammar",
    "E0101": "a name is declared twice (variables, `let` nodes and networks share one namespace)",
    "E0102": "unknown distribution",
    "E0103": "unknown variable, or a network used where a variable belongs",
    "E0104": "unknown network",
    "E0105": "unknown type",
    "E0106": "a reserved word used as a name",
    "E0107": "`model NAME` is not the first statement, or is given twice",
    "E0108": "the model has no observed variable",
    "E0109": "a number too large to represent",
    "E0201": "an observed variable has a q factor",
    "E0202": "a variable has no p factor",
    "E0203": "a latent or supervised variable has no q factor",
    "E0204": "a variable has two p (or two q) factors",
    "E0205": "p or q has a cycle",
    "E0206": "a factor reads a variable that is not one of its parents",
    "E0207": "a bad parent list: the variable itself, a repeat, or a `let` node",
    "E0208": "a `by` clause in p, or on a continuous distribution",
    "E0209": "a factor for a `let` node",
    "E0301": "the distribution's support does not fit the variable's type",
    "E0302": "unknown distribution parameter",
    "E0303": "a distribution parameter is missing",
    "E0304": "too many positional arguments, or a parameter given twice",
    "E0305": "a number breaks its parameter's constraint (e.g. scale > 0)",
    "E0306": "`uniform` where it means nothing",
    "E0307": "a variable passed as a parameter has the wrong type or shape",
    "E0308": "parameters from two parameterisations (`probs` and `logits`)",
    "E0309": "a list of constants or a value that does not fit its parameter (one per element, class or component)",
    "E0310": "a bad distribution option (`rank`, `components`)",
    "E0311": "a distribution that q cannot draw (no reparameterised draw and no estimator) in a q factor",
    "E0312": "the `probs` lists of a variable's p and q factors together rule out every class",
    "E0401": "unknown network builder",
    "E0402": "a bad network option",
    "E0403": "one network used with two different widths",
    "E0404": "a `conv` input or `deconv` output that is not an image [C, H, W]",
    "E0405": "a network called with no inputs",
    "E0406": "a built-in function called in a distribution instead of a `let`",
    "E0407": "a network named like a built-in function",
    "E0408": "a built-in function's arguments do not fit its signature",
    "E0409": "a `let` of a built-in function not declared as the `real` shape the function gives",
    "E0410": "a recurrent cell (`gru`) whose last input is not a state as wide as its output",
    "E0501": "a bad shape (a size below 1, more than 16,777,216 values, a onehot with fewer than 2 categories)",
    "E0502": "a `let` node or a `param` of a discrete type",
    "E0503": "a `param`'s start outside its type's range, or not one number per element",
    "E0601": "unknown estimator",
    "E0602": "a bad estimator option",
    "E0603": "`by enumeration` over too many values",
    "E0701": "unknown objective",
    "E0702": "a bad objective option",
    "E0703": "the objective is given twice",
    "E0801": "a `repeat` without its bound (`repeat k < count`)",
    "E0802": "a `repeat`'s bound is not a onehot[K_max + 1] variable declared outside it",
    "E0803": "a statement that cannot repeat: `model`, `net`, `objective` or a `repeat` inside a `repeat`",
    "E0804": "a step index (`name[k]`) outside its `repeat`, naming another index, or on a name that does not repeat",
    "E0805": "a step that reads a later step, or one further back than `name[k - 1]`",
    "E0806": "a factor written on the other side of its variable's `repeat`",
    "E0807": "a repeated variable that is observed, or one summed by enumeration",
    "E0808": "the step before (zeros at step 1) passed bare where 0 is outside the parameter's range",
    "W0201": "a declared parent is never read",
    "W0202": "a `let` node is never used",
    "W0203": "a network is never used",
    "W0204": "a `param` is never used",
}


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" | "warning"
    code: str
    message: str
    span: Span
    help: str | None = None
    note: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple:
        return (self.span.line, self.span.column, self.code)


# error(code, message, span, help=..., note=...) and warning(...) make a Diagnostic of that severity
error = partial(Diagnostic, "error")
warning = partial(Diagnostic, "warning")


class SpecError(UserError):
    """The spec is wrong; `diagnostics` says where and why (errors and warnings, sorted).
    `code` and `location` are those of the first error."""

    def __init__(self, diagnostics: Iterable[Diagnostic], path: str, source: str):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        self.path = path
        self.source = source
        first = next((d for d in self.diagnostics if d.is_error), None)
        location = f"{path}:{first.span.line}:{first.span.column}" if first else path
        super().__init__(render_all(self.diagnostics, path, source), location=location)
        self.code = first.code if first else "spec"


class SpecSyntaxError(SpecError):
    """The spec does not parse. Always exactly one error diagnostic."""


class InternalCompilerError(Exception):
    """A bug in gmdsl, not in the user's spec."""


def unknown(code: str, what: str, name: str, span: Span, known: Iterable[str]) -> Diagnostic:
    """`unknown WHAT `name``, helped by the closest known name or else the list of them."""
    known = list(known)
    listing = f"{what}s are " + ", ".join(f"`{k}`" for k in known)
    return error(code, f"unknown {what} `{name}`", span, help=did_you_mean(name, known) or listing)


def render(diagnostic: Diagnostic, path: str, source: str) -> str:
    """One diagnostic as text: header, the source line with a caret underline, help, note."""
    span = diagnostic.span
    header = f"{path}:{span.line}:{span.column}: {diagnostic.severity}[{diagnostic.code}]: {diagnostic.message}"
    lines = source.splitlines()
    out = [header]
    if 1 <= span.line <= len(lines):
        text = lines[span.line - 1].expandtabs(1)
        gutter = " " * len(str(span.line))
        end = span.end_column if span.end_line == span.line else len(text) + 1
        width = max(1, end - span.column)
        out.append(f"    {span.line} | {text}")
        out.append(f"    {gutter} | {' ' * (span.column - 1)}{'^' * width}")
        prefix = f"    {gutter} = "
    else:
        prefix = "    = "
    if diagnostic.help:
        out.append(f"{prefix}help: {diagnostic.help}")
    if diagnostic.note:
        out.append(f"{prefix}note: {diagnostic.note}")
    return "\n".join(out)


def render_all(diagnostics: Iterable[Diagnostic], path: str, source: str) -> str:
    return "\n".join(render(d, path, source) for d in diagnostics)


def summary(diagnostics: Iterable[Diagnostic], path: str) -> str:
    """The closing line: `specs/bad.gm: 2 errors, 1 warning`."""
    diagnostics = list(diagnostics)
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    parts = [f"{errors} error{'s' * (errors != 1)}"] if errors else []
    if warnings:
        parts.append(f"{warnings} warning{'s' * (warnings != 1)}")
    return f"{path}: {', '.join(parts) if parts else 'ok'}"
