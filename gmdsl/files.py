"""Files as gmdsl writes and reads them: written so that a reader sees the old one or the new
one, never half of either (runs, checkpoints, the dataset cache), and read only when they are
regular files and, for JSON, plain finite data of a sane size and depth."""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gmdsl.runtime.errors import UserError


def write_atomically(path: Path, content: str | bytes | Callable[[str], None]) -> None:
    """Write under a temporary name, then rename: a reader sees the old file or the new one.
    `content` is the text or bytes, or a function that writes the file at the path it is given.
    A file that cannot be written (a full disk, a read-only folder, a folder in its place) is a
    FileError that names it, and leaves no part of it behind."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        if isinstance(content, bytes):
            temporary.write_bytes(content)
        elif isinstance(content, str):
            temporary.write_text(content, encoding="utf-8")
        else:
            content(str(temporary))
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise FileError(
            f"cannot write {path} ({exc.strerror or exc}): free space or make the folder writable, then run again",
            location=str(path),
        ) from None


class FileError(UserError, ValueError):
    """A file gmdsl reads that is not what it should be: not a regular file, too large, or JSON
    that is not plain finite data."""

    code = "file"


MAX_JSON_BYTES = 64 << 20  # a run's JSON files hold indices and settings: far less
MAX_JSON_DEPTH = 64


def regular_file(path: Path) -> Path:
    """`path`, once it names a regular file: opening a FIFO or a device would wait forever or
    never end. A missing file raises FileNotFoundError, for the caller to explain."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "not a regular file"
        raise FileError(f"{path} is {kind}; gmdsl reads only regular files there", location=str(path))
    return path


def read_json(path: Path) -> Any:
    """A JSON file's data: a regular file of at most MAX_JSON_BYTES, UTF-8, nested at most
    MAX_JSON_DEPTH deep, its numbers finite. Anything else raises FileError (a missing file
    FileNotFoundError)."""
    regular_file(path)
    if path.stat().st_size > MAX_JSON_BYTES:
        raise FileError(f"{path} is larger than gmdsl's JSON files ever are ({MAX_JSON_BYTES >> 20} MiB)")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise FileError(f"{path} is not UTF-8 text", location=str(path)) from None
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise FileError(f"{path} is not valid JSON ({str(exc).splitlines()[0][:200]})", location=str(path)) from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise FileError(f"{path} is nested deeper than gmdsl's JSON files ever are", location=str(path))
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large to be a finite number")
    return value


def _depth(data: Any) -> int:
    stack, deepest = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return deepest
