"""What compiled gmdsl models import at run time, installed as `gmdsl.runtime`.

It needs torch and nothing else of gmdsl's: the language's tables (`registry`) and the user
error base (`errors`) live here, on the ground floor, and the compiler and training import them
from here, never the other way round. No parser, checker, networkx, Lark or pydantic.

Names load on first use, so the compiler can read `gmdsl.runtime.registry` (plain data)
without importing torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "BatchError": "batch",
    "UNIFORM": "distributions",
    "Bernoulli": "distributions",
    "Beta": "distributions",
    "Categorical": "distributions",
    "ContinuousBernoulli": "distributions",
    "Gamma": "distributions",
    "Laplace": "distributions",
    "LogNormal": "distributions",
    "Normal": "distributions",
    "UserError": "errors",
    "lambert": "functions",
    "product": "functions",
    "glimpse": "functions",
    "place": "functions",
    "sigmoid": "links",
    "softplus": "links",
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
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gmdsl.runtime' has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
