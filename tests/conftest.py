"""Shared fixtures, and the hypothesis profiles: `ci` (default, bounded so the suite stays
fast) and `thorough` for local runs: `HYPOTHESIS_PROFILE=thorough make test`."""

import os
from collections.abc import Callable

# Under pytest-xdist (`-n auto` in pyproject.toml: a worker per core) each worker computes on one
# thread, and so does every process a test starts (gmdsl train, torchrun's workers): two workers of
# two threads each on two cores spend most of their time waiting on each other's threads, not
# computing. Set before torch is imported, and again through torch for a torch already imported.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    import torch

    torch.set_num_threads(1)

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
