"""A bounded fuzz of the parser, checker and code generator (the long run: tests/spec_fuzz.py),
and of a run's files and data files (the long run: tests/run_fuzz.py). Whatever a spec, a run
file or a data file holds, gmdsl answers with its own error or does what was asked."""

from __future__ import annotations

import random
from pathlib import Path

import run_fuzz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_fuzz import corpus, finding, fuzz, mutate

from gmdsl.testing.strategies import models


def test_mutated_shipped_and_golden_specs_get_only_gmdsl_s_own_errors() -> None:
    tried, found = fuzz(seconds=10, seed=2026)
    assert tried > 200
    assert not found, f"{len(found)} of {tried} inputs got more than a gmdsl error; the first:\n{found[0][1]}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=models(max_variables=4), seed=st.integers(0, 2**32 - 1))
def test_mutated_generated_specs_get_only_gmdsl_s_own_errors(spec: str, seed: int, tmp_path: Path) -> None:
    data = mutate(spec.encode("utf-8"), random.Random(seed))
    assert finding(data, tmp_path) is None, data


def test_the_corpus_holds_every_shipped_and_golden_spec() -> None:
    root = Path(__file__).resolve().parent.parent
    files = [*root.glob("specs/*.gm"), *root.glob("tests/golden/**/*.gm")]
    assert len(corpus()) == len(set(files)) > 50


def test_mutated_run_files_and_data_files_get_only_gmdsl_s_own_errors() -> None:
    tried, found = run_fuzz.fuzz(seconds=15, seed=2026)
    assert tried > 10
    assert not found, f"{len(found)} of {tried} inputs got more than a gmdsl error; the first:\n{found[0]}"
