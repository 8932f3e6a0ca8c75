"""Shared fixtures, and the hypothesis profiles: `ci` (default, bounded so the suite stays
fast) and `thorough` for local runs: `HYPOTHESIS_PROFILE=thorough make test`."""

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

from gmdsl import cli

settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def gmdsl_cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """`gmdsl_cli("check", SPEC)` runs the command line in process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
