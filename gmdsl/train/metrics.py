"""A run's per-epoch metrics: metrics.jsonl (one record per epoch) and metrics.csv."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from gmdsl.files import write_atomically


def write_metrics(run: Path, log: list[dict]) -> None:
    """metrics.jsonl (one record per epoch) and metrics.csv, rewritten whole each epoch."""
    write_atomically(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in log))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for r in log for k in r)))
    writer.writeheader()
    writer.writerows(log)
    write_atomically(run / "metrics.csv", table.getvalue())
