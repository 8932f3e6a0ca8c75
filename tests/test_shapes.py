"""runtime/shapes.py agrees with torch.broadcast_shapes, results and refusals alike."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gmdsl.runtime.shapes import broadcast_shapes

shapes = st.lists(st.lists(st.integers(0, 3), max_size=4).map(tuple), min_size=1, max_size=4)


@given(shapes)
def test_broadcast_shapes_is_torchs(cases: list[tuple[int, ...]]) -> None:
    try:
        expected = torch.broadcast_shapes(*cases)
    except RuntimeError:
        with pytest.raises(RuntimeError, match="do not broadcast"):
            broadcast_shapes(*cases)
    else:
        assert broadcast_shapes(*cases) == expected
