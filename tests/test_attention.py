"""The attention functions `glimpse` (read a window of an image) and `place` (write a patch
onto a window of a canvas): closed forms on aligned windows, leading dimensions, gradients,
and their shape checks in a spec."""

from __future__ import annotations

import pytest
import torch

import gmdsl
from gmdsl.compiler.diagnostics import SpecError
from gmdsl.runtime.functions import glimpse, place

CANVAS, PATCH = (1, 8, 8), (1, 4, 4)


def test_glimpse_of_the_whole_image_is_the_image() -> None:
    image = torch.rand(2, 64)
    whole = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(glimpse(image, whole, shapes=(CANVAS, (3,), CANVAS)), image)


def test_glimpse_of_a_pixel_aligned_quarter_is_that_quarter() -> None:
    """A window of half the side, centred at (-0.5, -0.5) in [-1, 1] coordinates, covers the
    top-left 4 x 4 pixels exactly."""
    image = torch.rand(3, 64)
    read = glimpse(image, torch.tensor([0.5, -0.5, -0.5]), shapes=(CANVAS, (3,), PATCH))
    torch.testing.assert_close(read, image.reshape(3, 8, 8)[:, :4, :4].reshape(3, 16))
    bottom_right = glimpse(image, torch.tensor([0.5, 0.5, 0.5]), shapes=(CANVAS, (3,), PATCH))
    torch.testing.assert_close(bottom_right, image.reshape(3, 8, 8)[:, 4:, 4:].reshape(3, 16))


def test_place_writes_a_patch_into_its_window_and_nothing_elsewhere() -> None:
    patch = torch.rand(2, 16)
    canvas = torch.rand(2, 64)
    written = place(patch, torch.tensor([0.5, 0.5, -0.5]), canvas, shapes=(PATCH, (3,), CANVAS, CANVAS))
    expected = canvas.reshape(2, 8, 8).clone()
    expected[:, :4, 4:] += patch.reshape(2, 4, 4)  # x to the right, y down: the top-right quarter
    torch.testing.assert_close(written, expected.reshape(2, 64))


def test_a_placed_patch_is_read_back_by_a_glimpse_at_the_same_window() -> None:
    patch = torch.rand(5, 16)
    where = torch.tensor([0.5, -0.5, 0.5])
    canvas = place(patch, where, torch.zeros(5, 64), shapes=(PATCH, (3,), CANVAS, CANVAS))
    torch.testing.assert_close(glimpse(canvas, where, shapes=(CANVAS, (3,), PATCH)), patch)


def test_leading_dimensions_broadcast_and_gradients_reach_the_window() -> None:
    patch = torch.rand(3, 1, 2, 16)  # [samples, enumerated, batch, ...]
    where = torch.tensor([0.4, 0.1, -0.2], requires_grad=True)
    canvas = torch.zeros(2, 64)
    written = place(patch, where, canvas, shapes=(PATCH, (3,), CANVAS, CANVAS))
    assert written.shape == (3, 1, 2, 64)
    read = glimpse(written, where.expand(3, 1, 2, 3), shapes=(CANVAS, (3,), PATCH))
    assert read.shape == (3, 1, 2, 16)
    read.sum().backward()
    assert where.grad is not None and torch.isfinite(where.grad).all() and where.grad.abs().sum() > 0


SPEC = """
model attend
observed x : binary[1, 16, 16]
latent   z : real[4]
p(z) = Normal(0, 1)
let where  : real[3] = locate(z)
let patch  : real[1, 8, 8] = draw(z)
let blank  : real[1, 16, 16] = start(z)
let canvas : real[1, 16, 16] = place(patch, where, blank)
p(x | z) = Bernoulli(logits = decoder(canvas))
let spot : real[3] = finder(x)
let look : real[LOOK] = glimpse(x, spot)
q(z | x) = Normal(encoder(look))
net locate  = mlp()
net draw    = mlp()
net start   = mlp()
net decoder = mlp()
net finder  = mlp()
net encoder = mlp()
"""


def test_a_spec_reads_and_writes_windows_end_to_end() -> None:
    model = gmdsl.compile(SPEC.replace("LOOK", "1, 8, 8"))
    x = (torch.rand(4, 1, 16, 16) < 0.3).float()
    result = model.objective({"x": x}, samples=2)
    assert result.elbo.shape == (4,) and torch.isfinite(result.elbo).all()
    result.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    "look, message",
    [
        ("2, 8, 8", "`glimpse` cannot take (x : binary[1, 16, 16], spot : real[3])"),  # channels differ
        ("64", "`glimpse` cannot take"),  # a glimpse is an image
    ],
)
def test_a_glimpse_of_the_wrong_shape_is_a_located_error(look: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        gmdsl.compile(SPEC.replace("LOOK", look))
    assert message in str(caught.value) and "E0408" in str(caught.value)
