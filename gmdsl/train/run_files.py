"""The JSON files of a run directory, each read through one pydantic model: whatever a file
holds (hand-edited, truncated, another program's), reading it either gives data of the right
shape or says which file is damaged and how, never a crash further on."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gmdsl.files import FileError, read_json


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class Indices(_Record):
    """RUN/validation.json, RUN/labelled.json: rows of the dataset's train split."""

    indices: list[int]


class Origin(_Record):
    """RUN/run.json: what the run was trained from."""

    trained_from: Literal["spec.gm", "model.py"]


class Source(_Record):
    kind: str
    location: str
    fingerprint: str


class DataRecord(_Record):
    """RUN/data.json: the run's data, and how it binds to the model."""

    dataset: str
    source: Source | None = None  # runs from before fingerprints have none
    fields: dict[str, str]
    field_shapes: dict[str, list[int]] = {}
    classes: dict[str, list[str]] = {}


class Latest(_Record):
    """checkpoint/latest.json: the newest complete checkpoint."""

    epoch: int = Field(ge=0)
    step: int = Field(0, ge=0)


class Best(_Record):
    """checkpoint/best.json: the epoch chosen on validation, and by what."""

    epoch: int = Field(ge=1)
    metric: str
    value: float
    select: str = "auto"
    tie_breakers: dict[str, float] = {}


Record = TypeVar("Record", bound=_Record)


def read_record(path: Path, model: type[Record]) -> Record:
    """The file's data as `model`; FileError names the file and what is wrong with it (a missing
    file raises FileNotFoundError, for the caller to say what it means)."""
    data = read_json(path)
    try:
        record = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the whole file'}: {e['msg'].lower()}" for e in exc.errors()[:3]
        )
        raise FileError(f"{path} is damaged ({problems}); restore it, or train a new run", location=str(path)) from None
    if isinstance(record, Indices) and any(not 0 <= i < 2**62 for i in record.indices):
        raise FileError(f"{path} is damaged (a row index out of range); restore it, or train a new run")
    return record
