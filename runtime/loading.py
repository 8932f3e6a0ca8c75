"""Loading a compiled model's source as a module, its lines registered with `linecache` so
that tracebacks from inside it show the generated code."""

from __future__ import annotations

import linecache
import types


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated source as a module named after `name`."""
    filename = f"<gmdsl-compiled {name}.py>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(f"gmdsl_compiled_{name}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module
