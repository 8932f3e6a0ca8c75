"""What compiled gmdsl models import at run time, installed as `gmdsl.runtime`.

It needs torch, and of the compiler only its table `gmdsl.registry` (plain Python): never the
parser, the checker, networkx or Lark.
"""

from .batch import BatchError
from .distributions import (
    UNIFORM,
    Bernoulli,
    Beta,
    Categorical,
    ContinuousBernoulli,
    Gamma,
    Laplace,
    LogNormal,
    Normal,
)
from .model import CompiledModel, Objective, ObjectiveOptions
from .networks import conv, deconv, join, mlp
from .trace import Generation, Recognition, Variable

__all__ = [
    "UNIFORM", "BatchError", "Bernoulli", "Beta", "Categorical", "CompiledModel", "ContinuousBernoulli", "Gamma",
    "Generation", "Laplace", "LogNormal", "Normal", "Objective", "ObjectiveOptions", "Recognition", "Variable",
    "conv", "deconv", "join", "mlp",
]
