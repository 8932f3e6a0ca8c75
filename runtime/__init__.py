"""What compiled gmdsl models import at run time, installed as `gmdsl.runtime`.

It needs torch and nothing else of gmdsl's: the language's tables (`registry`) and the user
error base (`errors`) live here, on the ground floor, and the compiler and training import them
from here, never the other way round. No parser, checker, networkx, Lark or pydantic.

Names load on first use, so the compiler can read `gmdsl.runtime.registry` (plain data)
without importing torch.
"""

from importlib import import_module
from typing import Any

from .registry import DISTRIBUTIONS

_EXPORTS = {
    "BatchError": "batch",
    "UNIFORM": "distributions",
    "UserError": "errors",
    "lambert": "functions",
    "product": "functions",
    "sum": "functions",
    "difference": "functions",
    "glimpse": "functions",
    "place": "functions",
    "sigmoid": "links",
    "softplus": "links",
    "softmax": "links",
    "CompiledModel": "model",
    "Objective": "model",
    "ObjectiveOptions": "model",
    "conv": "networks",
    "deconv": "networks",
    "gru": "networks",
    "join": "networks",
    "mlp": "networks",
    "Share": "networks",
    "Generation": "trace",
    "Recognition": "trace",
    "Variable": "trace",
    **{name: "distributions" for name in DISTRIBUTIONS},  # every distribution the language knows
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gmdsl.runtime' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
