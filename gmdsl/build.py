"""From a spec to a live PyTorch model: emit the module's source, load it (registered with
`linecache`, so tracebacks show the generated lines) and instantiate `Model`."""

from __future__ import annotations

import os

from .emit import emit
from .frontend import load
from .lowering import ModelGraph
from .runtime.loading import load_module


def compile_source(spec: str | os.PathLike) -> str:
    """The Python source of the compiled model of a spec (a path or the spec's text)."""
    return emit(load(spec))


def compile(spec: str | os.PathLike):  # noqa: A001 - the public name users were promised
    """Compile a spec (a path or the spec's text) into a fresh `torch.nn.Module`.

        model = gmdsl.compile("specs/mnist.gm")
        result = model.objective({"x": images, "y": labels, "y_observed": mask})
        result.elbo  # [B]
    """
    return instantiate(load(spec))


def instantiate(model_graph: ModelGraph):
    """A fresh `torch.nn.Module` of a checked model graph."""
    return load_module(emit(model_graph), model_graph.name).Model()
