"""gmdsl: compile `.gm` specs of semi-supervised deep generative models into PyTorch.

The compiler, phase by phase (each a pure function; gmdsl/compiler/):

    parse(text, path) -> ast.Spec          gmdsl/compiler/parser.py
    check(spec)       -> CheckedSpec       gmdsl/compiler/checker.py   (.diagnostics, .ok)
    lower(checked)    -> ModelIR           gmdsl/compiler/lowering.py  (the typed model graph)

`load(spec)` runs all three on a path or on source text and raises `SpecError` when the
spec has errors. `compile(spec)` goes on to emit PyTorch code and returns the model, a
`torch.nn.Module` with `objective`, `predict` and `sample`. Both go through gmdsl/build.py,
the one driver, as the `gmdsl` command does. `open_run(path)` gives a trained run: its model
with the chosen weights, in eval mode, its settings and its data splits (docs/python.md).

Names are imported on first use, so that `import gmdsl.runtime` (what compiled models
import) loads neither the compiler nor networkx and Lark.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "check": "compiler.checker",
    "CheckedSpec": "compiler.checked",
    "Diagnostic": "compiler.diagnostics",
    "InternalCompilerError": "compiler.diagnostics",
    "SpecError": "compiler.diagnostics",
    "SpecSyntaxError": "compiler.diagnostics",
    "ModelIR": "compiler.ir",
    "lower": "compiler.lowering",
    "parse": "compiler.parser",
    "check_spec": "build",
    "compile": "build",
    "compile_spec": "build",
    "Compilation": "build",
    "compile_source": "build",
    "load": "build",
    "read_spec": "build",
    "UserError": "runtime.errors",
    "open_run": "train.runs",
    "Run": "train.runs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gmdsl' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
