"""gmdsl: compile `.gm` specs of semi-supervised deep generative models into PyTorch.

The front end, phase by phase (each a pure function):

    parse(text, path) -> ast.Spec          gmdsl/parser.py
    check(spec)       -> [Diagnostic]      gmdsl/checker.py
    lower(spec)       -> ModelGraph        gmdsl/lowering.py  (networkx DAGs for p and q)

`load(spec)` runs all three on a path or on source text and raises `SpecError` when the
spec has errors. `compile(spec)` goes on to emit PyTorch code (gmdsl/emit.py) and returns
the model, a `torch.nn.Module` with `objective`, `predict` and `sample`.

Names are imported on first use, so that `import gmdsl.runtime` (what compiled models
import) loads neither the compiler nor networkx and Lark.
"""

from importlib import import_module

_EXPORTS = {
    "check": "checker", "Diagnostic": "errors", "InternalCompilerError": "errors", "SpecError": "errors",
    "SpecSyntaxError": "errors", "analyse": "frontend", "load": "frontend", "read_spec": "frontend",
    "ModelGraph": "lowering", "lower": "lowering", "parse": "parser",
    "compile": "build", "compile_source": "build",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gmdsl' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
