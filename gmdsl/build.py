"""The one driver: spec -> checked spec -> IR -> module source -> live model.

The CLI and the Python API (`gmdsl.load`, `gmdsl.compile`) both call it; nothing else strings
the phases together. Each phase runs once: `check_spec` parses and checks, `compile_spec` goes
on to the IR (a `Compilation`, whose source is emitted when first asked for), and
`load_model_class` executes a module's source once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from .compiler.checked import CheckedSpec
from .compiler.checker import check
from .compiler.diagnostics import SpecError
from .compiler.emit import emit
from .compiler.hoisting import hoist
from .compiler.ir import ModelIR
from .compiler.lowering import lower
from .compiler.parser import parse
from .files import regular_file
from .loading import load_module
from .runtime.errors import UserError

if TYPE_CHECKING:
    from .runtime.model import CompiledModel
    from .runtime.trace import Variable


class ModelClass(Protocol):
    """A compiled module's `Model`: a CompiledModel subclass that builds its own encoder and decoder."""

    name: str
    variables: tuple[Variable, ...]

    def __call__(self) -> CompiledModel: ...


def read_spec(spec: str | os.PathLike) -> tuple[str, str]:
    """(source text, path for messages). A string naming a file, or ending in `.gm`, is a
    path; any other string is the spec's text itself. A missing file raises
    FileNotFoundError("no such spec file: ...")."""
    is_path = isinstance(spec, os.PathLike) or ("\n" not in spec and (spec.endswith(".gm") or _is_file(spec)))
    if not is_path:
        return str(spec), "<string>"
    path = Path(spec)
    try:
        return regular_file(path).read_text(encoding="utf-8"), str(spec)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such spec file: {spec}") from None


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # too long, or a NUL byte: not a file name at all
        return False


def check_spec(spec: str | os.PathLike) -> CheckedSpec:
    """Parse and check; a syntax error raises `SpecSyntaxError`, other findings are in
    `.diagnostics` of the result."""
    source, path = read_spec(spec)
    return check(parse(source, path))


@dataclass(frozen=True)
class Compilation:
    """A spec taken through the compiler: what the checker found (warnings included), the IR,
    and, when first asked for, the module's source."""

    checked: CheckedSpec
    model: ModelIR

    @cached_property
    def source(self) -> str:
        return emit(self.model)

    def new_model(self) -> CompiledModel:
        """A fresh `torch.nn.Module` of this model."""
        return load_model_class(self.source, self.model.name)()


def compile_checked(checked: CheckedSpec, hoisting: bool = True) -> Compilation:
    """Lower a checked spec and run the IR passes (`hoisting=False` skips invariance hoisting,
    to compare against); any error in it raises `SpecError` with every diagnostic."""
    if not checked.ok:
        raise SpecError(checked.diagnostics, checked.spec.path, checked.spec.source)
    model = lower(checked)
    return Compilation(checked, hoist(model) if hoisting else model)


def compile_spec(spec: str | os.PathLike, hoisting: bool = True) -> Compilation:
    """Parse, check and lower a spec (a path or its text); raises `SpecError`."""
    return compile_checked(check_spec(spec), hoisting)


def compile_text(text: str, path: str) -> Compilation:
    """Compile a spec's text, naming it `path` in messages and in the module's comments."""
    return compile_checked(check(parse(text, path)))


def load(spec: str | os.PathLike) -> ModelIR:
    """The typed model graph (IR) of a spec (a path or its text); raises `SpecError`."""
    return compile_spec(spec).model


def compile_source(spec: str | os.PathLike) -> str:
    """The Python source of the compiled model of a spec (a path or the spec's text)."""
    return compile_spec(spec).source


def compile(spec: str | os.PathLike) -> CompiledModel:  # noqa: A001 - the public name users were promised
    """Compile a spec (a path or the spec's text) into a fresh `torch.nn.Module`.

    model = gmdsl.compile("specs/mnist.gm")
    result = model.objective({"x": images, "y": labels, "y_observed": mask})
    result.elbo  # [B]
    """
    return compile_spec(spec).new_model()


def load_model_class(source: str, name: str, path: Path | None = None) -> ModelClass:
    """Execute compiled source once and return its `Model` class; source that is not a
    compiled gmdsl model raises `NotACompiledModel`."""
    from .runtime.model import CompiledModel

    try:
        model_class = getattr(load_module(source, name, path), "Model", None)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the file does wrong (exit() too), it is not a compiled model
        raise NotACompiledModel(f"{path or name} is not a compiled gmdsl model ({type(exc).__name__}: {exc})") from None
    if not (isinstance(model_class, type) and issubclass(model_class, CompiledModel)):
        raise NotACompiledModel(
            f"{path or name} is not a compiled gmdsl model (it defines no Model); "
            "write one with `gmdsl compile SPEC -o DIR`"
        )
    return cast(ModelClass, model_class)


class NotACompiledModel(UserError, ValueError):
    """A Python file given where a compiled model was expected."""

    code = "model"
