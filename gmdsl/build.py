"""From a spec to a live PyTorch model: emit the module's source, register it with
`linecache` (so tracebacks show the generated lines), execute it and instantiate `Model`."""

from __future__ import annotations

import builtins
import linecache
import os
import types

from .emit import emit
from .frontend import load


def compile_source(spec: str | os.PathLike) -> str:
    """The Python source of the compiled model of a spec (a path or the spec's text)."""
    return emit(load(spec))


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated source as a module named `name`, its lines visible to tracebacks."""
    filename = f"<gmdsl-compiled {name}.py>"
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    module = types.ModuleType(f"gmdsl_compiled_{name}")
    module.__file__ = filename
    exec(builtins.compile(source, filename, "exec"), module.__dict__)
    return module


def compile(spec: str | os.PathLike):  # noqa: A001 - the public name users were promised
    """Compile a spec (a path or the spec's text) into a fresh `torch.nn.Module`.

        model = gmdsl.compile("specs/mnist.gm")
        result = model.objective({"x": images, "y": labels, "y_observed": mask})
        result.elbo  # [B]
    """
    model_graph = load(spec)
    return load_module(emit(model_graph), model_graph.name).Model()
