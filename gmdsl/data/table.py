"""Tables: .csv, .tsv (tab-separated) and .parquet files, read with pyarrow. A header row names
the columns; each further row is one example.

- A column NAME is a field NAME of shape [N]. Columns NAME_0, NAME_1, ..., NAME_{k-1} (or
  NAME[0], NAME[1], ...) together are one field NAME of shape [N, k], in index order: 16-D
  points as x_0..x_15. Their indices run from 0 without a gap, and every one of them holds
  numbers; indexed columns without an index 0 (q_1, q_2) stay fields of their own.
- An optional column `split` says `train` or `test` in every row. Without it every row is a
  training example and there is no test split (nor is there when no row says `test`).
- Integer columns are int64, floating-point ones float32, true/false ones bool. A text column
  holds class names: it reads as class indices (int64) into its distinct names, sorted, which
  `Dataset.classes` records. A text column holding numbers (words among numbers, or numbers
  written a way pyarrow cannot read, such as 1,5) is an error, as is any other type (dates,
  lists, ...).
- A missing value is an empty cell (or NA, NaN, null, N/A: pyarrow's null markers): -1 in an
  integer or text column (no class), NaN in a floating-point one. A true/false column has no
  way to mark one, and neither has a label mask: a column NAME_observed beside a field NAME,
  true/false (or 1/0) in every row, True where NAME's value is given.
- Negative integers other than an empty cell are kept as written (binding a field reports them).
- Rows are named by their line in a .csv or .tsv (the header is line 1), by their index from 0
  in a .parquet file.
"""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch

from .dataset import OBSERVED_SUFFIX, DataError, Dataset, consistent

SPLIT = "split"
_INDEXED = re.compile(r"(?P<base>.+)(?:_(?P<underscore>\d+)|\[(?P<bracket>\d+)\])")
# a number however it is spelled: decimal points or commas, thousands separators (once blanks,
# apostrophes and underscores are taken out)
_NUMBER = re.compile(r"[+-]?[\d.,]*\d[\d.,]*(?:[eE][+-]?\d+)?")
_SEPARATORS = re.compile(r"[\s'_]")


@dataclass(frozen=True)
class _Source:
    path: Path
    lines: bool  # a text file, whose rows messages name by line

    def row(self, index: int) -> str:
        return f"line {index + 2}" if self.lines else f"row {index}"


def read_table(path: Path) -> Dataset:
    """The table at `path` (.csv, .tsv or .parquet) as a dataset: one field per column, or per
    group of indexed columns, split by its `split` column (see the module's docstring)."""
    source = _Source(path, path.suffix.lower() != ".parquet")
    table = _read(source)
    try:
        columns = table.column_names
    except UnicodeDecodeError:  # pyarrow decodes the names only when asked
        raise DataError(f"{path}'s header is not UTF-8 text: save the table as UTF-8") from None
    _check_header(columns, source)
    if table.num_rows == 0:
        raise DataError(f"{path} has no rows: add one row per example below the header")
    is_test = _split(table.column(SPLIT), source) if SPLIT in columns else None
    if is_test is not None and bool(is_test.all()):
        raise DataError(
            f"every row of {path} says test in column `{SPLIT}`, so there are no rows to train on: write train in "
            "the rows to train on"
        )
    layout = _layout([name for name in columns if name != SPLIT], source)
    if not layout:
        raise DataError(f"{path} has no columns besides `{SPLIT}`: add a column per field")
    values: dict[str, torch.Tensor] = {}
    classes: dict[str, list[str]] = {}
    for name, group in layout.items():
        base = name[: -len(OBSERVED_SUFFIX)]
        if group != [name]:
            values[name] = _group(name, group, table, source)
        elif name.endswith(OBSERVED_SUFFIX) and base in layout:
            values[name] = _mask(name, base, table.column(name), source)
        else:
            values[name], names = _column(name, table.column(name), source)
            if names is not None:
                classes[name] = names
    if is_test is None or not bool(is_test.any()):
        train, test = values, {}
    else:
        train = {name: tensor[~is_test] for name, tensor in values.items()}
        test = {name: tensor[is_test] for name, tensor in values.items()}
    resolved = path.resolve()
    dataset = Dataset(path.stem, train, test, "table", resolved, classes=classes, files=[resolved])
    return consistent(dataset, path)


def _read(source: _Source) -> pa.Table:
    path = source.path
    ragged: list[pacsv.InvalidRow] = []

    def skip(row: pacsv.InvalidRow) -> str:  # noted, and reported once the file is read
        ragged.append(row)
        return "skip"

    try:
        if not source.lines:
            return pq.read_table(path)
        _require_utf8(path)  # before pyarrow, whose handling of a ragged row fails on other bytes
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),  # so that a ragged row knows its line
            parse_options=pacsv.ParseOptions(
                delimiter="\t" if path.suffix.lower() == ".tsv" else ",", invalid_row_handler=skip
            ),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except (pa.ArrowException, OSError) as exc:
        how = (
            "save it as UTF-8 text with a header row naming the columns"
            if source.lines
            else "write it with pandas' DataFrame.to_parquet or pyarrow.parquet.write_table"
        )
        raise DataError(f"cannot read {path} ({_one_line(exc)}): {how}") from None
    if ragged:
        row = ragged[0]
        raise DataError(
            f"line {row.number} of {path} has {row.actual_columns} cells but the header has "
            f"{row.expected_columns} columns: give every line one cell per column (an empty cell for a missing value)"
        )
    return table


def _require_utf8(path: Path) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path} is not UTF-8 text (byte {done + exc.start} is not): save the table as UTF-8"
                ) from None
            if not chunk:
                return
            done += len(chunk)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:200] + "..."


def _check_header(columns: list[str], source: _Source) -> None:
    path = source.path
    if source.lines and len(columns) == 1 and any(mark in columns[0] for mark in ";,\t"):
        raise DataError(
            f"{path} reads as a single column `{columns[0]}`: gmdsl reads .csv files separated by commas and "
            ".tsv files separated by tabs; save it that way, or give it the suffix that matches"
        )
    for index, name in enumerate(columns):
        if not name:
            raise DataError(
                f"column {index + 1} of {path} has no name: name it in the header row (or remove a trailing "
                "separator from every line)"
            )
        if columns.index(name) != index:
            raise DataError(f"{path} has two columns named `{name}`: rename one")


def _split(values: pa.ChunkedArray, source: _Source) -> torch.Tensor:
    """[N] bool: which rows are test examples."""
    values = _decoded(values)
    if not _is_text(values.type):
        raise DataError(
            f"column `{SPLIT}` of {source.path} holds {_describe(values.type)}: write train or test in every row "
            f"(or rename the column if it is a field)"
        )
    other = pc.fill_null(pc.invert(pc.is_in(values, value_set=pa.array(["train", "test"]))), True)
    if pc.any(other).as_py():
        index = pc.index(other, True).as_py()
        found = values[index].as_py()
        what = "an empty cell" if found is None else f"`{found}`"
        raise DataError(
            f"column `{SPLIT}` of {source.path} holds {what} in {source.row(index)}: write train or test in every row"
        )
    return _tensor(pc.equal(values, "test"))


def _layout(columns: list[str], source: _Source) -> dict[str, list[str]]:
    """Each field's name and its columns, in the order of the file."""
    groups: dict[str, dict[int, str]] = {}
    for column in columns:
        match = _INDEXED.fullmatch(column)
        if match:
            index = int(match["underscore"] or match["bracket"])
            group = groups.setdefault(match["base"], {})
            if index in group:
                raise DataError(
                    f"columns `{group[index]}` and `{column}` of {source.path} are both component {index} of "
                    f"field `{match['base']}`: rename one"
                )
            group[index] = column
    grouped = {base for base, group in groups.items() if 0 in group}
    for base in sorted(grouped):
        group = groups[base]
        gap = next(index for index in range(len(group) + 1) if index not in group)
        if gap < max(group):
            raise DataError(
                f"{source.path} has columns `{group[0]}`..`{group[max(group)]}` but no `{base}_{gap}`: the columns "
                f"of field `{base}` are numbered from 0 without a gap"
            )
        if base in columns:
            raise DataError(
                f"{source.path} has a column `{base}` and columns `{group[0]}`... that make a field `{base}` too: "
                "rename one"
            )
    layout: dict[str, list[str]] = {}
    for column in columns:
        match = _INDEXED.fullmatch(column)
        if match and match["base"] in grouped:
            group = groups[match["base"]]
            layout[match["base"]] = [group[index] for index in range(len(group))]
        else:
            layout[column] = [column]
    return layout


def _column(name: str, values: pa.ChunkedArray, source: _Source) -> tuple[torch.Tensor, list[str] | None]:
    """A single column's values, and its class names where it holds text."""
    values = _decoded(values)
    kind = values.type
    if values.null_count == len(values):
        raise DataError(f"column `{name}` of {source.path} is empty in every row: fill it in, or remove it")
    if pa.types.is_boolean(kind):
        if values.null_count:
            index = pc.index(pc.is_null(values), True).as_py()
            raise DataError(
                f"column `{name}` of {source.path} holds true/false but is empty in {source.row(index)}: fill it "
                "in, or write the column as 1/0 with an empty cell for a missing value"
            )
        return _tensor(values), None
    if pa.types.is_integer(kind):
        return _ints(name, values, source), None
    if _is_real(kind):
        return _floats(values), None
    if _is_text(kind):
        return _classes(name, values, source)
    raise DataError(
        f"column `{name}` of {source.path} holds {_describe(kind)}: gmdsl reads numbers, true/false and class "
        "names; convert it, or remove it"
    )


def _group(name: str, columns: list[str], table: pa.Table, source: _Source) -> torch.Tensor:
    """[N, k]: the columns NAME_0..NAME_{k-1}, floats if any of them is, else integers."""
    parts = [_decoded(table.column(column)) for column in columns]
    for column, values in zip(columns, parts, strict=True):
        if not (pa.types.is_integer(values.type) or _is_real(values.type)) or values.null_count == len(values):
            what = "no values" if values.null_count == len(values) else _describe(values.type)
            raise DataError(
                f"column `{column}` of {source.path} is part of field `{name}` ({columns[0]}..{columns[-1]}) but "
                f"holds {what}: every column of a field holds numbers"
            )
    if any(_is_real(values.type) for values in parts):
        return torch.stack([_floats(values) for values in parts], dim=1)
    return torch.stack([_ints(column, values, source) for column, values in zip(columns, parts, strict=True)], dim=1)


def _mask(name: str, base: str, values: pa.ChunkedArray, source: _Source) -> torch.Tensor:
    """A label mask's flags, true/false or 1/0 in every row."""
    values = _decoded(values)
    where = f"column `{name}` of {source.path} is the label mask of `{base}`"
    if not (pa.types.is_boolean(values.type) or pa.types.is_integer(values.type)):
        raise DataError(f"{where} but holds {_describe(values.type)}: write true/false (or 1/0) in every row")
    if values.null_count:
        index = pc.index(pc.is_null(values), True).as_py()
        raise DataError(
            f"{where} but is empty in {source.row(index)}: write true where `{base}` is given, false where not"
        )
    if pa.types.is_integer(values.type):
        other = pc.invert(pc.is_in(values, value_set=pa.array([0, 1], values.type)))
        if pc.any(other).as_py():
            index = pc.index(other, True).as_py()
            raise DataError(
                f"{where} but holds {values[index].as_py()} in {source.row(index)}: write true/false (or 1/0)"
            )
        values = pc.equal(values, 1)
    return _tensor(values)


def _classes(name: str, values: pa.ChunkedArray, source: _Source) -> tuple[torch.Tensor, list[str]]:
    """Class indices into the column's distinct names, sorted; -1 for an empty cell."""
    values = values.cast(pa.string())
    names = sorted(text for text in pc.unique(values).to_pylist() if text and text.strip())  # blank: no class
    if not names:
        raise DataError(f"column `{name}` of {source.path} is empty in every row: fill it in, or remove it")
    numbers = [text for text in names if _NUMBER.fullmatch(_SEPARATORS.sub("", text))]
    if numbers:
        words = sorted(set(names) - set(numbers))
        if not words:
            index = pc.index(values, numbers[0]).as_py()
            raise DataError(
                f"column `{name}` of {source.path} holds numbers written as text (`{numbers[0]}` in "
                f"{source.row(index)}): write numbers with a decimal point and nothing else (1.5, not 1,5 or "
                "1 500), or class names that are not numbers"
            )
        odd = words[0] if len(numbers) >= len(words) else numbers[0]  # the rarer kind is the slip
        index = pc.index(values, odd).as_py()
        raise DataError(
            f"column `{name}` of {source.path} mixes numbers and text (`{odd}` in {source.row(index)}): write only "
            "numbers or only class names, and an empty cell for a missing value"
        )
    indices = pc.index_in(values, value_set=pa.array(names, pa.string()))
    return _tensor(pc.fill_null(indices, -1).cast(pa.int64())), names


def _ints(name: str, values: pa.ChunkedArray, source: _Source) -> torch.Tensor:
    try:
        values = values.cast(pa.int64())
    except pa.ArrowInvalid:  # uint64 beyond int64's range
        raise DataError(
            f"column `{name}` of {source.path} holds integers too large for int64: store them as floats"
        ) from None
    return _tensor(pc.fill_null(values, -1))


def _floats(values: pa.ChunkedArray) -> torch.Tensor:
    return _tensor(pc.fill_null(values.cast(pa.float64()), math.nan)).float()


def _tensor(values: pa.ChunkedArray) -> torch.Tensor:
    return torch.tensor(values.to_numpy())  # a copy: arrow's buffers are read-only


def _decoded(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary-encoded column (pandas' categoricals in parquet) as its plain values."""
    kind = values.type
    return values.cast(kind.value_type) if pa.types.is_dictionary(kind) else values


def _is_real(kind: pa.DataType) -> bool:
    return bool(pa.types.is_floating(kind) or pa.types.is_decimal(kind))


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _describe(kind: pa.DataType) -> str:
    if pa.types.is_null(kind):
        return "no values"
    if _is_text(kind):
        return "text"
    if pa.types.is_boolean(kind):
        return "true/false"
    if pa.types.is_integer(kind) or _is_real(kind):
        return "numbers"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "bytes that are not UTF-8 text (save the file as UTF-8)"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return f"lists ({kind}; a field of k numbers is k columns NAME_0..NAME_k-1)"
    if pa.types.is_temporal(kind):
        return f"dates or times ({kind})"
    return f"values of type {kind}"
