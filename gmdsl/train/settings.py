"""Training settings: one pydantic model, `TrainSettings`, from which everything derives.

- the flags of `gmdsl train` (`settings_options`: one click option per field, its type, choices
  and help taken from the field);
- the TOML file (`--config`) and its errors (an unknown or mistyped key names itself);
- the run's saved configuration (RUN/config.json) and what `--resume` may change;
- the training loop's schedule, which reads the settings themselves.

Adding a setting is one edit: a field here.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from gmdsl.files import FileError, read_json, regular_file
from gmdsl.runtime.errors import UserError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


MAX_CONFIG_BYTES = 1 << 20


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message says which key and why."""

    code = "config"


def _setting(
    default: Any,
    description: str,
    *,
    flag: bool = True,
    resumable: bool = False,
    shown: str | None = None,
    **constraints: Any,
) -> Any:
    """A field of TrainSettings. `flag`: also a `gmdsl train --NAME` option; `resumable`: may
    change when a run is resumed; `shown`: the default as --help tells it, where None stands
    for something else than the spec's value."""
    extra: dict[str, Any] = {"flag": flag, "resumable": resumable} | ({"shown": shown} if shown else {})
    return Field(default, description=description, json_schema_extra=extra, **constraints)


class TrainSettings(BaseModel):
    """Everything `gmdsl train` needs besides the model. `samples` and `alpha` default to the spec's.
    The recipe of a run (how labels enter, their weight, the schedule, samples, prediction) is
    all here, so a recipe is a config file rather than code."""

    # strict: a TOML `epochs = "5"`, `true` or `2.0` is a mistake to name, not a value to coerce
    # and no infinite or NaN number: `learning_rate = inf` passes `> 0` and ruins a run
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    dataset: str = _setting(
        "mnist",
        "mnist, fashion-mnist, faces, multi-mnist, or your own data: an .npz, a .csv/.tsv/.parquet table, a folder "
        "of images (a subfolder per class) or of IDX files (docs/data.md).",
    )
    fields: dict[str, str] = _setting(
        {}, "Which dataset field feeds a variable, where the names differ: VAR=FIELD,VAR=FIELD.", shown="by name"
    )
    validation: int | None = _setting(
        None,
        "Training examples held out to choose the checkpoint on: class-stratified, the same for every "
        "seed, never trained on (0: none).",
        shown="a sixth of the train split, 10,000 of MNIST's 60,000",
        ge=0,
    )
    labels: int | None = _setting(
        None,
        "Keep this many of the training examples the data labels, class-balanced, and hide the rest (0: none).",
        shown="every label the data gives",
        ge=0,
    )
    # 0.5 measured better than 0.1 on MNIST with 100 labels: 39.8% vs 59.7% test error after 3 epochs
    label_fraction: float = _setting(
        0.5, "Share of each batch drawn from the labelled examples (the paper's supervision rate).", ge=0, le=1
    )
    label_weight: Literal["row", "dataset"] = _setting(
        "row",
        "row: every row of a batch counts once (the paper's objective); dataset: the batch estimates the "
        "whole training set's objective, each labelled example's ELBO counting as one of N and its "
        "log q(y | x) term alpha times a batch mean (Kingma et al.'s alpha N / N_labelled per label).",
    )
    supervised_only: bool = _setting(
        False,
        "The supervised-only baseline: train q's networks for the supervised variables on the labelled "
        "examples alone, by log q(labels | x); no unlabelled data, and no gradient reaches the generative "
        "model. Its epochs are as long as a full run's (the labelled examples cycle).",
    )
    label_seed: int = _setting(0, "Seed of the labelled subset.", ge=0, le=2**63 - 1)
    epochs: int = _setting(5, "Epochs to train (a resumed run goes on to this many).", ge=1, resumable=True)
    batch_size: int = _setting(128, "Examples per batch.", ge=2)
    learning_rate: float = _setting(1e-3, "Adam's learning rate (the start of a schedule).", gt=0)
    lr_schedule: Literal["constant", "cosine", "step", "restarts"] = _setting(
        "constant",
        "constant; cosine: decay to 0 over the run's epochs; step: times lr_decay every lr_period epochs; "
        "restarts: a cosine decay to 0 over every lr_period epochs, then back to learning_rate.",
    )
    lr_decay: float = _setting(0.5, "The factor of each step of the step schedule.", gt=0, le=1)
    lr_period: int = _setting(10, "Epochs between steps (step) or restarts (restarts).", ge=1)
    kl_warmup: int = _setting(
        0, "Epochs over which the objective's beta rises linearly from 0 to the spec's (0: none).", ge=0
    )
    explore_epochs: int = _setting(
        0,
        "Epochs over which the values of a variable summed by enumeration keep a share of each row's weight "
        "whatever q gives them: nearly all of it (every value alike) at the start, falling linearly to none, so that "
        "values q first finds unlikely (a count's later steps) still learn (0: none).",
        ge=0,
    )
    select: str = _setting(
        "auto",
        "What chooses the best checkpoint on validation: NAME (a supervised variable's error, or RMSE for a real "
        "one), elbo, or several, comma-separated, the later breaking the earlier's ties. auto: every supervised "
        "variable in the spec's order, then the ELBO; the ELBO alone where none is labelled.",
        pattern=r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*(,\s*[A-Za-z_][A-Za-z0-9_]*\s*)*$",
    )
    directions: list[str] = _setting(
        [],
        "Supervised real vectors that are directions (a light's, say): validation and eval also report the angle "
        "between predicted and true. VAR,VAR.",
        shown="none",
        resumable=True,
    )
    samples: int | None = _setting(None, "Importance samples per example in training.", ge=1)
    alpha: float | None = _setting(None, "Weight of the labelled log q(y | x) term.", ge=0)
    prediction: Literal["q", "importance"] = _setting(
        "q",
        "How validation and eval predict a label: q, the recognition model's q(y | x); importance, the "
        "model's posterior p(y | x), q's draws weighted by p / q (a relaxed label is summed exactly).",
        resumable=True,
    )
    predict_samples: int | None = _setting(
        None, "Samples per prediction in validation and eval.", ge=1, resumable=True, shown="the spec's samples"
    )
    seed: int = _setting(0, "Seed of initial weights, batch order and sampling.", ge=0, le=2**63 - 1)
    device: Literal["auto", "cpu", "cuda"] = _setting(
        "auto", "Where to train: auto (a GPU if torch sees one), cpu or cuda.", resumable=True
    )
    precision: Literal["auto", "fp32", "bf16"] = _setting(
        "fp32",
        "What the networks compute in. fp32; bf16: mixed precision, the networks' matrix products and convolutions "
        "in bf16, the weights, log-densities and the objective's sums in fp32 (results/performance.md has its "
        "speed and accuracy); auto: bf16 where the device has bf16 matrix units (a CPU whose flags list bf16 "
        "instructions, a GPU of compute capability 8.0 or later), else fp32. The run records the precision it "
        "used, and a resumed run keeps it.",
    )
    eval_samples: int = _setting(
        100, "Samples of the importance-weighted log-likelihood in `gmdsl eval`.", ge=1, resumable=True
    )
    checkpoint_every: int = _setting(
        0,
        "Also checkpoint every N steps within an epoch, so a killed run loses at most N steps (0: at epoch ends only).",
        ge=0,
        resumable=True,
    )
    checkpoint_minutes: float = _setting(
        0,
        "Also checkpoint within an epoch once this many minutes passed since the last one (0: never).",
        ge=0,
        resumable=True,
    )
    compile: bool = _setting(  # noqa: A003 - the flag users know from torch: --compile
        False,
        "torch.compile the training step (for GPUs; on CPUs it measured slower, see results/performance.md).",
    )  # not resumable: compiled steps round differently, and a resumed run must end as the uninterrupted one


def _extra(field: FieldInfo, key: str) -> bool:
    extra = field.json_schema_extra
    return bool(extra.get(key)) if isinstance(extra, dict) else False


FLAGS = [name for name, field in TrainSettings.model_fields.items() if _extra(field, "flag")]
RESUMABLE = [name for name, field in TrainSettings.model_fields.items() if _extra(field, "resumable")]


def click_type(name: str) -> Any:
    """The click type of a setting, for commands that take it on their own (eval's --device)."""
    return _click_type(TrainSettings.model_fields[name].annotation)


def _click_type(annotation: Any) -> Any:
    """The click type of a field: its choices for a Literal, a comma-separated string for a
    list or a mapping (`_listed` reads it), else int, float or str."""
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Literal:
        return click.Choice([str(a) for a in arguments])
    if typing.get_origin(annotation) in (list, dict):
        return str
    if arguments:  # `int | None`
        return _click_type(arguments[0])
    return annotation


def settings_options(command: Callable) -> Callable:
    """Decorate a click command with one `--NAME` option per flag setting, its help and default
    taken from the field. Each is None when not given, so a config file's value stands."""
    for name in reversed(FLAGS):
        field = TrainSettings.model_fields[name]
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        shown = extra.get("shown") or ("the spec's" if field.default is None else str(field.default).lower())
        flag = f"--{name.replace('_', '-')}"
        switch = field.annotation is bool  # --NAME/--no-NAME rather than --NAME VALUE
        command = click.option(
            f"{flag}/--no-{flag[2:]}" if switch else flag,
            name,
            type=None if switch else _click_type(field.annotation),
            default=None,
            show_default=False,  # the default is the setting's, not the flag's (None: not given)
            help=f"{field.description}  [default: {shown}]",
        )(command)
    return command


def _describe(error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        hint = did_you_mean(str(error["loc"][0]), TrainSettings.model_fields)
        return f"unknown key `{key}`" + (
            f" ({hint})" if hint else f"; keys are {', '.join(TrainSettings.model_fields)}"
        )
    return f"`{key}`: {error['msg'].lower()} (got {error.get('input')!r})"


def resolve(file: Path | None, overrides: dict[str, Any], base: dict[str, Any] | None = None) -> TrainSettings:
    """The settings: `base` (a resumed run's), then `file` (TOML, optional), then `overrides`
    (flags; None = not given)."""
    values: dict[str, Any] = dict(base or {})
    where = "the command line"
    if file is not None:
        where = str(file)
        try:
            if regular_file(Path(file)).stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{file} is larger than a config file ever is (1 MiB)", location=str(file))
            values.update(tomllib.loads(Path(file).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"no such config file: {file}", location=str(file)) from None
        except FileError as exc:
            raise ConfigError(f"config file {exc}", location=str(file)) from None
        except RecursionError:
            raise ConfigError(f"{file} nests its tables too deep to be a gmdsl config", location=str(file)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}", location=str(file)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read config file {file} ({exc}); it should be UTF-8 TOML text", location=str(file)
            ) from None
    values.update({k: _listed(k, v) for k, v in overrides.items() if v is not None})
    try:
        return TrainSettings(**values)
    except ValidationError as exc:
        raise ConfigError(f"bad training configuration in {where}:\n{_problems(exc)}", location=where) from None


def _listed(name: str, value: Any) -> Any:
    """A flag's value as its setting takes it: `--fields x=a,y=b` a mapping, `--directions a,b` a list."""
    field = TrainSettings.model_fields.get(name)
    if field is None or not isinstance(value, str):
        return value
    origin = typing.get_origin(field.annotation)
    if origin is dict:
        from gmdsl.data.binding import parse_fields

        return parse_fields(value)
    if origin is list:
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def load_saved(file: Path) -> TrainSettings:
    """A run's saved config.json (which a person may have edited). A run saved before the
    precision setting existed trained in fp32."""
    try:
        saved = read_json(file)
        if isinstance(saved, dict):
            saved.setdefault("precision", "fp32")
        return TrainSettings.model_validate(saved)
    except FileError as exc:
        raise ConfigError(f"{exc}; fix it, or start a new run", location=str(file)) from None
    except ValidationError as exc:
        raise ConfigError(
            f"{file} is not a valid run configuration:\n{_problems(exc)}\n"
            "fix it (`gmdsl train --help` lists the settings), or start a new run",
            location=str(file),
        ) from None


def changed_on_resume(saved: TrainSettings, asked: TrainSettings) -> list[str]:
    """The settings a resumed run was asked to change but may not."""
    return [
        name
        for name in TrainSettings.model_fields
        if name not in RESUMABLE and getattr(asked, name) != getattr(saved, name)
    ]


def _problems(exc: ValidationError) -> str:
    return "\n".join(f"  {_describe(e)}" for e in exc.errors())
