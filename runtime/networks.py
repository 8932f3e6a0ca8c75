"""Network builders of compiled models: `mlp`, `conv` and `deconv`.

A network reads the concatenation of its flat inputs (`join`) and writes a flat output of
the width the compiler inferred; any leading dimensions (samples, enumerated values) pass
through untouched.

Every network can also take its inputs apart, which is how compiled code hoists work out of
the sample and enumeration dimensions: `finish(x, y)` multiplies each input by its block of
the first layer's columns at that input's own leading dimensions (x [B, 784] once per row, not
once per draw of y) and adds the products, broadcasting them. Compiled code names the inputs
it hoists (`Share`). The weight is split, not copied, so the parameters are the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ACTIVATIONS
from .shapes import broadcast_shapes


def _activation(name: str) -> nn.Module:
    module: nn.Module = getattr(nn, ACTIVATIONS[name])()
    return module


def join(*inputs: torch.Tensor) -> torch.Tensor:
    """Concatenate flat inputs along the last dimension, broadcasting their leading ones:
    x [B, 784] and y [S, B, 10] give [S, B, 794]."""
    if len(inputs) == 1:
        return inputs[0]
    lead = broadcast_shapes(*(t.shape[:-1] for t in inputs))
    return torch.cat([t.expand(*lead, t.shape[-1]) for t in inputs], dim=-1)


class Share(NamedTuple):
    """An input of a network call that compiled code hoists: `finish` multiplies it by its own
    block of the first layer, at its own leading dimensions, apart from the other inputs."""

    value: torch.Tensor


class Network(nn.Module):
    """What every network builder returns: a module that can run its arithmetic in a lower
    precision. With `compute_dtype` set (CompiledModel.set_precision), a call runs under
    torch.autocast in that dtype (matrix products and convolutions in bf16, accumulating in
    fp32) and gives its output back in its inputs' dtype, so the log-densities, importance
    weights and sums computed from it stay in fp32. The weights stay fp32 either way."""

    compute_dtype: torch.dtype | None = None

    def in_precision(self, compute: Callable[[], torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """`compute()` in the network's precision, its output in `like`'s dtype; inside another
        network's autocast (a Conv's dense layers), as that one runs."""
        device = like.device.type
        if self.compute_dtype is None or torch.is_autocast_enabled(device):
            return compute()
        with torch.autocast(device, dtype=self.compute_dtype):
            out = compute()
        return out.to(like.dtype)


def _value(item: torch.Tensor | Share) -> torch.Tensor:
    return item.value if isinstance(item, Share) else item


def _dense(widths: Sequence[int], activation: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:], strict=False)):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(widths) - 2:
            layers.append(_activation(activation))
    return layers


def _first_layer(layer: nn.Linear, inputs: Sequence[torch.Tensor | Share]) -> torch.Tensor:
    """The first layer's output for its inputs, in order: each `Share` times its block of the
    weight's columns, each run of other inputs joined and times its block, the products added
    with broadcasting. When joining the inputs adds no rows (every input varies alike, or the
    dimensions they differ in have one element, as the samples at S = 1) there is nothing to
    gain: one product."""
    values = [_value(item) for item in inputs]
    rows = math.prod(broadcast_shapes(*(value.shape[:-1] for value in values)))
    if all(math.prod(value.shape[:-1]) == rows for value in values):
        return layer(join(*values))
    runs: list[list[torch.Tensor]] = []
    for item, previous in zip(inputs, [Share(values[0]), *inputs[:-1]], strict=True):
        if isinstance(item, Share) or isinstance(previous, Share):
            runs.append([])
        runs[-1].append(_value(item))
    # one split of the weight, so that its gradient is one concatenation of the blocks' gradients
    blocks = layer.weight.split([sum(value.shape[-1] for value in run) for run in runs], dim=1)
    products = sorted((F.linear(join(*run), block) for run, block in zip(runs, blocks, strict=True)), key=torch.numel)
    # the smallest first: broadcasting grows the sum only when it must (the bias in the products' dtype: bf16
    # under autocast)
    total = products[0] + layer.bias.to(products[0].dtype)
    for product in products[1:]:
        total = total + product
    return total


class Dense(nn.Sequential, Network):
    """An MLP: linear layers with an activation between them (a Sequential, so its
    state-dict keys are `0.weight`, `0.bias`, `2.weight`, ...)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Sequential's name
        return self.in_precision(lambda: nn.Sequential.forward(self, input), input)

    @property
    def first(self) -> nn.Linear:
        layer = self[0]
        assert isinstance(layer, nn.Linear)
        return layer

    def finish(self, *inputs: torch.Tensor | Share) -> torch.Tensor:
        """The network's output for its inputs given apart, some of them hoisted `Share`s."""

        def compute() -> torch.Tensor:
            hidden = _first_layer(self.first, inputs)
            for layer in list(self)[1:]:
                hidden = layer(hidden)
            return hidden

        return self.in_precision(compute, _value(inputs[0]))


def _start_bias(layer: nn.Module, output_bias: float | None) -> None:
    """Set the output layer's biases to `output_bias` (None: keep PyTorch's random start)."""
    if output_bias is not None:
        assert isinstance(layer, (nn.Linear, nn.ConvTranspose2d)) and layer.bias is not None
        nn.init.constant_(layer.bias, output_bias)


def mlp(
    input_width: int,
    output_width: int,
    hidden: Sequence[int] = (),
    activation: str = "relu",
    output_bias: float | None = None,
) -> Dense:
    """Linear layers of widths input -> hidden... -> output, `activation` between them."""
    network = Dense(*_dense([input_width, *hidden, output_width], activation))
    _start_bias(network[-1], output_bias)
    return network


class _LeadingDims(Network):
    """Runs an image network over [N, C, H, W] for inputs with any leading dimensions."""

    def run(self, flat: torch.Tensor, body) -> torch.Tensor:
        lead = flat.shape[:-1]
        out = body(flat.reshape(-1, flat.shape[-1]))
        return out.reshape(*lead, out.shape[-1])


class Conv(_LeadingDims):
    """Convolutions over the first input (an image [C, H, W], flat), then dense layers over
    the flattened features joined with the other inputs."""

    def __init__(
        self,
        image_shape: Sequence[int],
        input_width: int,
        output_width: int,
        channels: Sequence[int] = (32, 64),
        kernel: int = 4,
        stride: int = 2,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        output_bias: float | None = None,
    ):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.image_width = math.prod(image_shape)
        layers: list[nn.Module] = []
        size = list(image_shape[1:])
        for c_in, c_out in zip([image_shape[0], *channels[:-1]], channels, strict=False):
            # an image narrower than the kernel (a small one, or deep in the stack) gets a kernel of its size
            kernels = (min(kernel, size[0]), min(kernel, size[1]))
            padding = ((kernels[0] - 1) // 2, (kernels[1] - 1) // 2)
            layers += [nn.Conv2d(c_in, c_out, kernels, stride, padding=padding), _activation(activation)]
            size = [(s + 2 * p - k) // stride + 1 for s, p, k in zip(size, padding, kernels, strict=True)]
        self.convolutions = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            features = self.convolutions(torch.zeros(1, *self.image_shape)).shape[-1]
        rest = input_width - self.image_width
        self.dense = Dense(*_dense([features + rest, *hidden, output_width], activation))
        _start_bias(self.dense[-1], output_bias)

    def _features(self, image: torch.Tensor) -> torch.Tensor:
        return self.run(image, lambda rows: self.convolutions(rows.reshape(-1, *self.image_shape)))

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        def compute() -> torch.Tensor:
            features = self._features(flat[..., : self.image_width])
            return self.dense(torch.cat([features, flat[..., self.image_width :]], dim=-1))

        return self.in_precision(compute, flat)

    def finish(self, *inputs: torch.Tensor | Share) -> torch.Tensor:
        """The image (the first input) goes through the convolutions at its own dimensions; the
        other inputs follow its features into the dense layers."""
        image, *others = inputs

        def compute() -> torch.Tensor:
            if isinstance(image, Share):
                return self.dense.finish(Share(self._features(image.value)), *others)
            return self.dense.finish(self._features(image), *others)

        return self.in_precision(compute, _value(image))


class Deconv(_LeadingDims):
    """Dense layers up to a small image, then transposed convolutions up to `output_shape`
    [C, H, W] (cropped to size), written flat."""

    def __init__(
        self,
        input_width: int,
        output_shape: Sequence[int],
        channels: Sequence[int] = (64, 32),
        kernel: int = 4,
        stride: int = 2,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        output_bias: float | None = None,
    ):
        super().__init__()
        self.output_shape = tuple(output_shape)
        out_channels, height, width = self.output_shape
        factor = stride ** len(channels)
        self.start = (channels[0], math.ceil(height / factor), math.ceil(width / factor))
        self.dense = Dense(*_dense([input_width, *hidden, math.prod(self.start)], activation), _activation(activation))
        layers: list[nn.Module] = []
        # each layer grows the image by at least `stride`; the excess is cropped in forward
        excess = kernel - stride
        padding, output_padding = (excess // 2, 0) if excess >= 0 else (0, -excess)
        for c_in, c_out in zip(channels, [*channels[1:], out_channels], strict=False):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding),
                _activation(activation),
            ]
        self.deconvolutions = nn.Sequential(*layers[:-1])  # no activation on the parameters
        _start_bias(self.deconvolutions[-1], output_bias)

    def _image(self, dense: torch.Tensor) -> torch.Tensor:
        _, height, width = self.output_shape

        def body(rows: torch.Tensor) -> torch.Tensor:
            image = self.deconvolutions(rows.reshape(-1, *self.start))
            return image[:, :, :height, :width].reshape(rows.shape[0], -1)

        return self.run(dense, body)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        return self.in_precision(lambda: self._image(self.dense(flat)), flat)

    def finish(self, *inputs: torch.Tensor | Share) -> torch.Tensor:
        return self.in_precision(lambda: self._image(self.dense.finish(*inputs)), _value(inputs[0]))


class Gru(Network):
    """A GRU cell over inputs with any leading dimensions: the joined inputs' last
    `output_width` columns are the state it updates, the columns before them its input."""

    def __init__(self, input_width: int, output_width: int):
        super().__init__()
        self.state_width = output_width
        self.cell = nn.GRUCell(input_width - output_width, output_width)

    def forward(self, joined: torch.Tensor) -> torch.Tensor:
        lead, width = joined.shape[:-1], self.state_width
        flat = joined.reshape(-1, joined.shape[-1])
        return self.in_precision(lambda: self.cell(flat[:, :-width], flat[:, -width:]).reshape(*lead, width), joined)

    def finish(self, *inputs: torch.Tensor | Share) -> torch.Tensor:
        """Hoisting saves nothing here: the cell's gates mix every input at once."""
        return self(join(*(_value(i) for i in inputs)))


# The builders a compiled module calls: `rt.NAME(*arguments, **options)`, with the arguments
# the registry's NetworkBuilder.arguments names.
conv = Conv
deconv = Deconv
gru = Gru
