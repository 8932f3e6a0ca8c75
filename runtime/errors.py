"""The base of every mistake a user can fix: a bad spec, config, dataset, run or batch.

It lives on the ground floor (gmdsl.runtime) because compiled models raise it too
(`BatchError`); the compiler, training and the CLI all import it from here, and the CLI
catches it in one place. Anything else that escapes is a bug in gmdsl. `did_you_mean` is the
one spelling helper every such message uses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake the user can fix. `code` names its kind (a diagnostic code such as E0102 for
    a spec, or a word: config, data, run, batch, training); `location` says where to look
    (a file, a file:line:column, a run directory, a batch entry), when there is one place.
    The message itself already says where and how to fix it; `location` is for tools."""

    code: str = "error"
    exit_code: int = 1  # what the `gmdsl` command exits with

    def __init__(self, message: str, *, location: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `help:` text proposing the closest candidate, or None when nothing is close."""
    pool = sorted(set(candidates))
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            matches = [lowered[name.lower()]]
    return f"did you mean `{matches[0]}`?" if matches else None
