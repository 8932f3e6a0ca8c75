"""Loading a compiled model's source as a module. The source lives in a real file (the run's
model.py, or a cache file named by its hash) and is registered with `linecache`, so that every
traceback from inside it, Python's default one included, shows the generated lines. The module
is entered in `sys.modules` under a name with the source's hash, as torch.compile expects of the
modules whose code it traces."""

from __future__ import annotations

import hashlib
import linecache
import sys
import tempfile
import types
from pathlib import Path


def load_module(source: str, name: str, path: Path | None = None) -> types.ModuleType:
    """Execute generated source as a module named after `name`; `path` is its file, if it has one."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    if path is None:
        path = Path(tempfile.gettempdir()) / "gmdsl-compiled" / f"{name}-{digest}.py"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")
    filename = str(path)
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(f"gmdsl_compiled_{name}_{digest}")
    module.__file__ = filename
    sys.modules[module.__name__] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[module.__name__]  # a file that fails to run is not kept as a module
        raise
    return module
