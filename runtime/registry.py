"""The one table of what the language knows: types, distributions, estimators, network
builders, activations, built-in functions and objectives. The checker, the lowering, the code generator, the
runtime and the docs all read these entries; adding a distribution is adding one entry here.

Plain data, no torch: it sits on the ground floor (gmdsl.runtime) so that compiled models and
the compiler read the same table without the runtime importing anything from the compiler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# --- variable types ---------------------------------------------------------------------


@dataclass(frozen=True)
class VarType:
    name: str
    description: str
    discrete: bool
    let_allowed: bool  # may a deterministic `let` node have this type?


TYPES: dict[str, VarType] = {
    t.name: t
    for t in [
        VarType("real", "any real number", discrete=False, let_allowed=True),
        VarType("positive", "a number > 0", discrete=False, let_allowed=True),
        VarType("unit", "a number in the open interval (0, 1)", discrete=False, let_allowed=True),
        VarType("binary", "0 or 1 (or an intensity in [0, 1])", discrete=True, let_allowed=False),
        VarType("onehot", "one of K categories, the last dimension", discrete=True, let_allowed=False),
        VarType(
            "simplex",
            "probabilities over the last dimension: each > 0, summing to 1",
            discrete=False,
            let_allowed=True,
        ),
        VarType("count", "a whole number >= 0 (0, 1, 2, ...)", discrete=True, let_allowed=False),
    ]
}

# --- constraints on distribution parameters ---------------------------------------------


@dataclass(frozen=True)
class Constraint:
    name: str
    description: str  # completes "must be ..."
    link: str  # how a network's raw output is mapped into the constraint: a name in runtime/links.py
    accepts_types: frozenset[str]  # variable types a bare reference may pass in

    def admits(self, value: float) -> bool:
        if self.name == "real":
            return True
        if self.name == "positive":
            return value > 0
        if self.name == "unit":
            return 0 < value < 1
        if self.name == "probability":
            return 0 <= value <= 1
        return False  # a simplex takes `uniform`, a list or a network, never one number


CONSTRAINTS: dict[str, Constraint] = {
    c.name: c
    for c in [
        Constraint("real", "a real number", "identity", frozenset(TYPES)),
        Constraint("positive", "a number > 0", "softplus", frozenset({"positive"})),
        Constraint("unit", "a number strictly between 0 and 1", "sigmoid", frozenset({"unit"})),
        Constraint("probability", "a number between 0 and 1", "sigmoid", frozenset({"unit", "binary"})),
        Constraint(
            "simplex",
            "`uniform`, a list of probabilities summing to 1, a simplex value or a network's output",
            "softmax",
            frozenset({"simplex"}),
        ),
    ]
}

# --- options of networks, estimators and objectives -------------------------------------


# The largest whole-number option (a width, a channel count, a sample count): larger ones are
# typing slips that would try to allocate terabytes, not models.
LARGEST_WHOLE_OPTION = 2**16
# The most values one example of a variable may hold (a 3 x 2048 x 2048 image is 12.6 million).
LARGEST_VARIABLE = 2**24


@dataclass(frozen=True)
class OptionSpec:
    """One `key = value` option. `kind`: "int", "number", "int_list" or "choice"."""

    name: str
    kind: str
    default: Any
    minimum: float | None = None  # inclusive
    exclusive_minimum: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(f"`{c}`" for c in self.choices)
        what = {"int": "a whole number", "number": "a number", "int_list": "a list of whole numbers"}[self.kind]
        if self.exclusive_minimum is not None:
            what += f" > {self.exclusive_minimum:g}"
        elif self.minimum is not None:
            what += f" >= {self.minimum:g}"
        if self.kind in ("int", "int_list"):
            what += f" and <= {LARGEST_WHOLE_OPTION}"
        return what


# --- distributions ----------------------------------------------------------------------


# How many numbers a parameter holds, for a variable of `size` values (its flat size): one per
# value, a [size, rank] covariance factor, one per mixture component, or one per component and value.
PARAMETER_SIZES = ("value", "rank", "components", "component_values")


@dataclass(frozen=True)
class Param:
    name: str
    constraint: str
    size: str = "value"  # one of PARAMETER_SIZES


@dataclass(frozen=True)
class DistributionInfo:
    """A distribution: its parameterisations (the first one gives the positional order),
    the one a single network call emits, and the variable types it is a distribution on."""

    name: str
    parameterisations: tuple[tuple[Param, ...], ...]
    network_emits: int  # index of the parameterisation emitted by `Dist(net(...))`
    support: tuple[str, ...]
    discrete: bool
    doc: str
    options: tuple[OptionSpec, ...] = ()  # whole numbers that fix parameter sizes (`rank = 2`)
    # why q cannot draw it (no reparameterised draw, no estimator); empty where it can
    not_in_q: str = ""

    def positional(self) -> tuple[Param, ...]:
        return self.parameterisations[0]

    def emitted(self) -> tuple[Param, ...]:
        return self.parameterisations[self.network_emits]

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}


def parameter_width(param: Param, size: int, options: Mapping[str, Any]) -> int:
    """How many numbers `param` holds for a variable of `size` values (flat), given the
    distribution's resolved options."""
    if param.size == "rank":
        return size * int(options["rank"])
    if param.size == "components":
        return int(options["components"])
    if param.size == "component_values":
        return size * int(options["components"])
    return size


def variable_size(params: tuple[Param, ...], width: int, options: Mapping[str, Any]) -> int:
    """The variable's flat size, from the width of one output holding every one of `params`."""
    per_value = sum(parameter_width(p, 1, options) for p in params if p.size != "components")
    fixed = sum(parameter_width(p, 1, options) for p in params if p.size == "components")
    return (width - fixed) // per_value


def _params(*pairs: str) -> tuple[Param, ...]:
    return tuple(Param(*pair.split(":")) for pair in pairs)


DISTRIBUTIONS: dict[str, DistributionInfo] = {
    d.name: d
    for d in [
        DistributionInfo(
            "Normal",
            (_params("loc:real", "scale:positive"),),
            0,
            ("real",),
            False,
            "Gaussian with mean `loc` and standard deviation `scale`",
        ),
        DistributionInfo(
            "Laplace",
            (_params("loc:real", "scale:positive"),),
            0,
            ("real",),
            False,
            "Laplace with location `loc` and scale `scale`",
        ),
        DistributionInfo(
            "LogNormal",
            (_params("loc:real", "scale:positive"),),
            0,
            ("positive",),
            False,
            "exp of a Normal(loc, scale)",
        ),
        DistributionInfo(
            "Gamma",
            (_params("concentration:positive", "rate:positive"),),
            0,
            ("positive",),
            False,
            "Gamma with shape `concentration` and rate `rate`",
        ),
        DistributionInfo(
            "Beta",
            (_params("concentration1:positive", "concentration0:positive"),),
            0,
            ("unit",),
            False,
            "Beta(a = concentration1, b = concentration0) on (0, 1)",
        ),
        DistributionInfo(
            "ContinuousBernoulli",
            (_params("probs:unit"), _params("logits:real")),
            1,
            ("unit", "binary"),
            False,
            "the normalised continuous Bernoulli on [0, 1] (Loaiza-Ganem and Cunningham, 2019)",
        ),
        DistributionInfo(
            "Bernoulli",
            (_params("probs:probability"), _params("logits:real")),
            1,
            ("binary",),
            True,
            "independent coin flips, one per element",
        ),
        DistributionInfo(
            "Categorical",
            (_params("probs:simplex"), _params("logits:real")),
            1,
            ("onehot",),
            True,
            "one of K categories over the last dimension",
        ),
        DistributionInfo(
            "Exponential",
            (_params("rate:positive"),),
            0,
            ("positive",),
            False,
            "exponential waiting times with rate `rate` (mean 1 / rate)",
        ),
        DistributionInfo(
            "StudentT",
            (_params("df:positive", "loc:real", "scale:positive"),),
            0,
            ("real",),
            False,
            "Student's t with `df` degrees of freedom, location `loc` and scale `scale`: a Normal with "
            "heavier tails, robust to outliers",
        ),
        DistributionInfo(
            "Poisson",
            (_params("rate:positive"),),
            0,
            ("count",),
            True,
            "counts with mean `rate`",
            not_in_q="a count cannot be drawn with gradients, and its values are unbounded, so it cannot be "
            "summed either; model counts as observed data",
        ),
        DistributionInfo(
            "Dirichlet",
            (_params("concentration:positive"),),
            0,
            ("simplex",),
            False,
            "probabilities over the last dimension, with concentrations `concentration` (1 everywhere: "
            "uniform over the simplex)",
        ),
        DistributionInfo(
            "LowRankMultivariateNormal",
            (_params("loc:real", "cov_factor:real:rank", "cov_diag:positive"),),
            0,
            ("real",),
            False,
            "a Gaussian over the whole (flattened) value with covariance cov_factor cov_factor^T + "
            "diag(cov_diag): `cov_factor` is [size, rank], so `rank` directions of correlation",
            options=(
                OptionSpec(
                    "rank",
                    "int",
                    1,
                    minimum=1,
                    doc="columns of `cov_factor`: how many directions the values co-vary in",
                ),
            ),
        ),
    ]
}

# The families a mixture may be made of: continuous, with every parameter one per value.
MIXTURE_FAMILIES = ("Normal", "Laplace", "StudentT", "LogNormal", "Gamma", "Beta", "Exponential")

_COMPONENTS = OptionSpec("components", "int", 2, minimum=2, doc="how many components the mixture has")


def _mixture(family: DistributionInfo) -> DistributionInfo:
    """`NormalMixture`: a mixture over `components` members of one family, each a distribution
    over the whole value (torch's MixtureSameFamily): mixture weights (`weights`, or `logits`),
    then the family's parameters, one per component and value."""
    members = tuple(Param(p.name, p.constraint, "component_values") for p in family.emitted())
    return DistributionInfo(
        f"{family.name}Mixture",
        ((Param("weights", "simplex", "components"), *members), (Param("logits", "real", "components"), *members)),
        1,
        family.support,
        False,
        f"a mixture of `components` {family.name} distributions over the whole value, with weights "
        "`weights` (or `logits`); each parameter of a member is given per component and value",
        options=(_COMPONENTS,),
        not_in_q="a mixture has no reparameterised draw (which component is discrete); use it in p, as a "
        f"prior or a likelihood, and {family.name} in q",
    )


DISTRIBUTIONS.update({m.name: m for m in (_mixture(DISTRIBUTIONS[f]) for f in MIXTURE_FAMILIES)})


def distributions_for(type_name: str) -> list[str]:
    return [d.name for d in DISTRIBUTIONS.values() if type_name in d.support]


# The activations a network may use: spec name -> the torch.nn module class that computes it.
ACTIVATIONS: dict[str, str] = {
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "softplus": "Softplus",
}

_ACTIVATION = OptionSpec("activation", "choice", "relu", choices=tuple(ACTIVATIONS), doc="non-linearity between layers")
_OUTPUT_BIAS = OptionSpec(
    "output_bias",
    "number",
    None,
    doc="the output layer's biases start at this number rather than at random: a negative one starts a "
    "sigmoid-linked image dark, as a patch written onto a canvas should (none: random)",
)


@dataclass(frozen=True)
class NetworkBuilder:
    """A network builder. `arguments`: the network's inferred sizes that the runtime builder
    `rt.NAME(...)` takes first, in order (fields of the IR's Network); the options follow as
    keywords. `image_input`: the first argument must be shaped [C, H, W]; `image_output`: the
    output is shaped like the (image) variable it parameterises."""

    name: str
    arguments: tuple[str, ...]
    options: tuple[OptionSpec, ...]
    doc: str
    image_input: bool = False
    image_output: bool = False
    state_input: bool = False  # the last argument is a recurrent state, as wide as the output


NETWORK_BUILDERS: dict[str, NetworkBuilder] = {
    b.name: b
    for b in [
        NetworkBuilder(
            "mlp",
            ("input_width", "output_width"),
            (
                OptionSpec(
                    "hidden", "int_list", (), minimum=1, doc="widths of the hidden layers; [] is one linear layer"
                ),
                _ACTIVATION,
                _OUTPUT_BIAS,
            ),
            "a multi-layer perceptron on the concatenated, flattened arguments",
        ),
        NetworkBuilder(
            "conv",
            ("image_shape", "input_width", "output_width"),
            (
                OptionSpec("channels", "int_list", (32, 64), minimum=1, doc="output channels of each convolution"),
                OptionSpec(
                    "kernel",
                    "int",
                    4,
                    minimum=1,
                    doc="kernel size (at most the image's size at each layer); each layer pads by (kernel - 1) // 2",
                ),
                OptionSpec(
                    "stride",
                    "int",
                    2,
                    minimum=1,
                    doc="each layer divides the height and width by about this (28 -> 14 -> 7 at kernel 4, "
                    "stride 2), never below 1",
                ),
                OptionSpec("hidden", "int_list", (), minimum=1, doc="dense layers after flattening"),
                _ACTIVATION,
                _OUTPUT_BIAS,
            ),
            "convolutions over the first argument (an image [C, H, W]); the other arguments join after flattening",
            image_input=True,
        ),
        NetworkBuilder(
            "deconv",
            ("input_width", "output_shape"),
            (
                OptionSpec("channels", "int_list", (64, 32), minimum=1, doc="channels of each transposed convolution"),
                OptionSpec("kernel", "int", 4, minimum=1, doc="kernel size of each transposed convolution"),
                OptionSpec(
                    "stride",
                    "int",
                    2,
                    minimum=1,
                    doc="each layer multiplies the height and width by it; the "
                    "first image is the output's size / stride ** layers, rounded up, and the result is cropped",
                ),
                OptionSpec(
                    "hidden", "int_list", (), minimum=1, doc="dense layers before the first transposed convolution"
                ),
                _ACTIVATION,
                _OUTPUT_BIAS,
            ),
            "dense layers then transposed convolutions up to an image-shaped output [C, H, W]",
            image_output=True,
        ),
        NetworkBuilder(
            "gru",
            ("input_width", "output_width"),
            (),
            "a gated recurrent cell: the arguments but the last, joined, update the last, the state "
            "(`let h : real[256] = cell(x, h[k - 1])` in a `repeat`, zeros before the first step)",
            state_input=True,
        ),
    ]
}

# --- built-in functions -----------------------------------------------------------------

Shape = tuple[int, ...]


@dataclass(frozen=True)
class FunctionInfo:
    """A fixed, differentiable function that a `let` may call instead of a network: known
    physics, with no weights. `signature` shows the shapes it takes (for messages and the
    docs); `output_shape` maps its arguments' shapes to its output's, or to None when they do
    not fit the signature, given also the shape its `let` declares (a glimpse's size is the
    declared one). Its output is `real` and passes through no link. The runtime computes it as
    `rt.NAME(...)` on flat values (runtime/functions.py), told the arguments' shapes
    (`shapes=`) where `shaped`. `reads_discrete`: it also takes binary or onehot values (an
    observed image of 0/1 pixels), which other functions refuse."""

    name: str
    signature: str
    output_shape: Callable[[tuple[Shape, ...], Shape], Shape | None]
    doc: str
    shaped: bool = False
    reads_discrete: bool = False
    reads_index: bool = False  # its one argument is the index of the `repeat` its `let` is in


def _lambert_shape(shapes: tuple[Shape, ...], declared: Shape) -> Shape | None:
    if len(shapes) == 2 and len(shapes[0]) == 3 and shapes[0][0] == 3 and shapes[1] == (3,):
        return (1, *shapes[0][1:])
    return None


def _product_shape(shapes: tuple[Shape, ...], declared: Shape) -> Shape | None:
    return shapes[0] if len(shapes) == 2 and shapes[0] == shapes[1] else None


def _glimpse_shape(shapes: tuple[Shape, ...], declared: Shape) -> Shape | None:
    if len(shapes) == 2 and len(shapes[0]) == 3 and shapes[1] == (3,) and len(declared) == 3:
        return declared if declared[0] == shapes[0][0] else None
    return None


def _place_shape(shapes: tuple[Shape, ...], declared: Shape) -> Shape | None:
    if len(shapes) == 3 and len(shapes[0]) == 3 and shapes[1] == (3,) and len(shapes[2]) == 3:
        return shapes[2] if shapes[0][0] == shapes[2][0] else None
    return None


_WHERE = (
    "`where` = (s, x, y): the window's side as a share of the image's (|s|, at least 0.001) and its "
    "centre, x to the right and y down, from -1 to 1 across the image"
)


FUNCTIONS: dict[str, FunctionInfo] = {
    f.name: f
    for f in [
        FunctionInfo(
            "lambert",
            "lambert(normals : real[3, H, W], light : real[3]) -> real[1, H, W]",
            _lambert_shape,
            "Lambertian shading max(0, n . light) at each pixel, n the normal scaled to unit length "
            "(so a network's output is read as a direction); the light's length is its intensity",
        ),
        FunctionInfo(
            "product",
            "product(a : real[S], b : real[S]) -> real[S]",
            _product_shape,
            "the elementwise product of two values of one shape, e.g. reflectance times shading",
        ),
        FunctionInfo(
            "sum",
            "sum(a : real[S], b : real[S]) -> real[S]",
            _product_shape,
            "the elementwise sum of two values of one shape, e.g. a canvas plus what a step adds",
            reads_discrete=True,
        ),
        FunctionInfo(
            "difference",
            "difference(a : real[S], b : real[S]) -> real[S]",
            _product_shape,
            "a minus b, elementwise, for two values of one shape, e.g. what an image still holds that the "
            "canvas does not: `difference(x, canvas[k - 1])`",
            reads_discrete=True,
        ),
        FunctionInfo(
            "step",
            "step(k) -> real[1]",
            lambda shapes, declared: (1,),
            "the number of this step, 1, 2, ..., inside `repeat k` (a position code, or a network's "
            "input that says where in the sequence it is)",
            reads_index=True,
        ),
        FunctionInfo(
            "glimpse",
            "glimpse(image : real[C, H, W], where : real[3]) -> real[C, h, w]",
            _glimpse_shape,
            "attention: the window `where` of the image, read bilinearly at the size its `let` declares; " + _WHERE,
            shaped=True,
            reads_discrete=True,
        ),
        FunctionInfo(
            "place",
            "place(patch : real[C, h, w], where : real[3], canvas : real[C, H, W]) -> real[C, H, W]",
            _place_shape,
            "writing: the canvas plus the patch stretched onto the window `where` (bilinearly, nothing "
            "outside it); " + _WHERE,
            shaped=True,
        ),
    ]
}

# --- estimators for discrete variables in q ---------------------------------------------


@dataclass(frozen=True)
class EstimatorInfo:
    name: str
    options: tuple[OptionSpec, ...]
    doc: str


ENUMERATION_LIMIT = 4096  # the most values `by enumeration` may sum over


def discrete_values(type_name: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """(choices, positions) of a discrete variable, which takes choices ** positions values:
    K per group of a onehot[..., K], 2 per element of a binary."""
    if type_name == "onehot":
        return shape[-1], math.prod(shape[:-1])
    return 2, math.prod(shape)


ESTIMATORS: dict[str, EstimatorInfo] = {
    e.name: e
    for e in [
        EstimatorInfo(
            "relaxation",
            (OptionSpec("temperature", "number", 0.66, exclusive_minimum=0),),
            "a Concrete (Gumbel-softmax) sample, scored with the discrete log-probability",
        ),
        EstimatorInfo("enumeration", (), f"an exact sum over every value (at most {ENUMERATION_LIMIT})"),
    ]
}
DEFAULT_ESTIMATOR = "relaxation"

# --- objectives -------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    options: tuple[OptionSpec, ...]
    doc: str

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}


OBJECTIVES: dict[str, ObjectiveInfo] = {
    o.name: o
    for o in [
        ObjectiveInfo(
            "semisupervised",
            (
                OptionSpec(
                    "alpha", "number", 0.1, minimum=0, doc="weight of the extra log q(y | x) term on labelled rows"
                ),
                OptionSpec("samples", "int", 1, minimum=1, doc="importance samples per example"),
                OptionSpec("beta", "number", 1, exclusive_minimum=0, doc="weight of the KL-like term (beta-VAE)"),
                OptionSpec(
                    "estimator",
                    "choice",
                    "snis",
                    choices=("snis", "iwae"),
                    doc="self-normalised ELBO or importance-weighted bound",
                ),
            ),
            "the semi-supervised importance-sampled objective of Siddharth et al. (2017)",
        )
    ]
}
DEFAULT_OBJECTIVE = "semisupervised"

RESERVED_NAMES = frozenset({"uniform"})
