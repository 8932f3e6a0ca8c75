"""gmdsl: compile `.gm` specs of semi-supervised deep generative models into PyTorch.

The front end, phase by phase (each a pure function):

    parse(text, path) -> ast.Spec          gmdsl.parse
    check(spec)       -> [Diagnostic]      gmdsl.check
    lower(spec)       -> ModelGraph        gmdsl.lower  (networkx DAGs for p and q)

`load(spec)` runs all three on a path or on source text and raises `SpecError` when the
spec has errors.
"""

from .check import check
from .errors import Diagnostic, InternalCompilerError, SpecError, SpecSyntaxError
from .frontend import analyse, load, read_spec
from .lower import ModelGraph, lower
from .parse import parse

__all__ = [
    "Diagnostic", "InternalCompilerError", "ModelGraph", "SpecError", "SpecSyntaxError",
    "analyse", "check", "load", "lower", "parse", "read_spec",
]
