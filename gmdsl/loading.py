"""Loading a compiled model's source as a module. The source lives in a real file (the run's
model.py, or a cache file named by its hash) and is registered with `linecache`, so that every
traceback from inside it, Python's default one included, shows the generated lines."""

from __future__ import annotations

import hashlib
import linecache
import tempfile
import types
from pathlib import Path


def load_module(source: str, name: str, path: Path | None = None) -> types.ModuleType:
    """Execute generated source as a module named after `name`; `path` is its file, if it has one."""
    if path is None:
        digest = hashlib.sha256(source.encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / "gmdsl-compiled" / f"{name}-{digest}.py"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")
    filename = str(path)
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(f"gmdsl_compiled_{name}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module
