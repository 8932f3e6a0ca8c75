"""Hypothesis strategies for gmdsl models (`gmdsl.testing` re-exports them; its docstring
shows a user's test file).

- `models()` draws random valid specs as text; `spec_trees()` draws the `ast.Spec` itself.
  Every drawn spec checks clean (no errors, no warnings), and covers variables of every role
  and type, random p and q DAGs, `let` nodes of networks and of built-in functions, networks of
  every builder that fits, estimators and objectives, and now and then a `repeat` block.
- `batches(model)` draws valid batches for a compiled model, with random label masks.
- `random_batch(model, rows, seed)` is one such batch, without hypothesis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

from gmdsl.compiler import ast
from gmdsl.compiler.pretty import pretty
from gmdsl.runtime.registry import (
    ACTIVATIONS,
    CONSTRAINTS,
    DISTRIBUTIONS,
    ENUMERATION_LIMIT,
    FUNCTIONS,
    OBJECTIVES,
    TYPES,
    distributions_for,
)

# Names a user might pick, keywords of the language among them: the contextual lexer
# must keep them usable as names.
NAME_POOL = (
    "x",
    "y",
    "z",
    "h",
    "img",
    "label",
    "style",
    "p",
    "q",
    "net",
    "by",
    "model",
    "let",
    "latent",
    "observed",
    "u_1",
    "Light",
    "w2",
)


@dataclass
class _Variable:
    name: str
    role: str
    type: str
    shape: tuple[int, ...]
    distribution: str


def _ident(name: str) -> ast.Ident:
    return ast.Ident(name)


def _options(pairs) -> tuple[ast.Option, ...]:
    return tuple(ast.Option(_ident(key), value) for key, value in pairs)


@st.composite
def _shape(draw, type_name: str) -> tuple[int, ...]:
    if type_name == "onehot":
        return (draw(st.integers(2, 6)),)
    if draw(st.integers(0, 5)) == 0:  # now and then an image
        # 3 channels now and then: an image of normals that `lambert` takes
        return (draw(st.integers(1, 3)), draw(st.integers(2, 5)), draw(st.integers(2, 5)))
    return (draw(st.integers(1, 6)),)


@st.composite
def _variables(draw, max_variables: int) -> list[_Variable]:
    names = draw(st.lists(st.sampled_from(NAME_POOL), min_size=1, max_size=max_variables, unique=True))
    variables: list[_Variable] = []
    for index, name in enumerate(names):
        role = "observed" if index == 0 else draw(st.sampled_from(("observed", "supervised", "latent")))
        type_name = draw(st.sampled_from(sorted(TYPES)))
        distribution = draw(st.sampled_from(distributions_for(type_name)))
        shape = draw(_shape(type_name))
        earlier = [v.shape for v in variables if not TYPES[v.type].discrete]
        if not TYPES[type_name].discrete and earlier and draw(st.integers(0, 2)) == 0:
            shape = draw(st.sampled_from(earlier))  # one that meets an earlier one's in `product`
        variables.append(_Variable(name, role, type_name, shape, distribution))
    return variables


def _constant(draw, constraint: str, shape: tuple[int, ...]) -> ast.ArgValue:
    """A constant argument for a variable of `shape`: a number, now and then a list of them (one
    per element of a one-dimensional variable, or probabilities, one per class)."""
    if constraint == "simplex":
        if draw(st.booleans()):
            return ast.Reference(_ident("uniform"))
        # now and then a 0, which rules its class out (at least one class keeps some probability)
        weights = draw(st.lists(st.integers(0, 5), min_size=shape[-1], max_size=shape[-1]).filter(any))
        return ast.Vector(tuple(ast.Number(w / sum(weights)) for w in weights))
    if len(shape) == 1 and shape[0] > 1 and draw(st.integers(0, 3)) == 0:
        return ast.Vector(tuple(_number(draw, constraint) for _ in range(shape[0])))
    return _number(draw, constraint)


def _number(draw, constraint: str) -> ast.Number:
    bounds = {"real": (-3.0, 3.0), "positive": (0.05, 5.0), "unit": (0.05, 0.95), "probability": (0.01, 0.99)}
    low, high = bounds[constraint]
    value = round(draw(st.floats(low, high)), 3)
    if draw(st.booleans()) and float(value).is_integer():
        value = int(value)
    assert CONSTRAINTS[constraint].admits(value)
    return ast.Number(value)


class _Builder:
    """Accumulates the statements of one spec while factors are drawn."""

    def __init__(self, draw: st.DrawFn):
        self.draw = draw
        self.nets: list[ast.NetDecl] = []
        self.lets: list[ast.LetDecl] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.types: dict[str, str] = {}
        self.direct = False  # inputs go straight to networks, no `let`s (inside a repeat: lets are top-level)

    def network(self, inputs: list[str], output_shape: tuple[int, ...]) -> ast.NetCall:
        draw = self.draw
        name = f"f{len(self.nets)}"
        builders = ["mlp"]
        if len(self.shapes[inputs[0]]) == 3:
            builders.append("conv")
        if len(output_shape) == 3:
            builders.append("deconv")
        builder = draw(st.sampled_from(builders))
        options: list[tuple[str, ast.Literal]] = []
        if draw(st.booleans()):
            options.append(
                (
                    "hidden",
                    ast.ListLiteral(tuple(ast.Number(n) for n in draw(st.lists(st.integers(1, 32), max_size=2)))),
                )
            )
        if draw(st.booleans()):
            options.append(("activation", ast.Word(draw(st.sampled_from(tuple(ACTIVATIONS))))))
        if builder != "mlp" and draw(st.booleans()):
            options.append(("channels", ast.ListLiteral((ast.Number(draw(st.integers(1, 8))),))))
        self.nets.append(ast.NetDecl(_ident(name), _ident(builder), _options(draw(st.permutations(options)))))
        return ast.NetCall(_ident(name), tuple(_ident(i) for i in inputs))

    def inputs_via_lets(self, parents: list[str]) -> list[str]:
        """The network inputs for these parents: now and then some go through a `let` of a
        network, or two continuous ones through a built-in function."""
        if len(parents) < 1 or self.direct or not self.draw(st.booleans()):
            return parents
        through_function = self.function_let(parents)
        if through_function is not None:
            return through_function
        through = self.draw(st.lists(st.sampled_from(parents), min_size=1, unique=True))
        name = f"t{len(self.lets)}"
        shape = (self.draw(st.integers(1, 8)),)
        call = self.network(through, shape)
        let_type = self.draw(st.sampled_from([t for t in sorted(TYPES) if TYPES[t].let_allowed]))
        self.lets.append(ast.LetDecl(_ident(name), ast.TypeExpr(_ident(let_type), shape), call))
        self.shapes[name], self.types[name] = shape, let_type
        return [p for p in parents if p not in through] + [name]

    def function_let(self, parents: list[str]) -> list[str] | None:
        """Now and then, parents go through a built-in function in a `let`: the inputs then,
        else None. `product` of two continuous parents of one shape (or of one with itself);
        `lambert` of normals and a direction; `glimpse` of any image at a window; `place` of a
        continuous image onto another of its channels at a window. Normals (a continuous
        3-channel parent, or else a network's), directions and windows come from networks of
        the parents."""
        continuous = [p for p in parents if not TYPES[self.types[p]].discrete]
        images = [p for p in parents if len(self.shapes[p]) == 3]
        pairs = [(a, b) for a in continuous for b in continuous if self.shapes[a] == self.shapes[b]]
        normals: list[str | None] = [p for p in continuous if p in images and self.shapes[p][0] == 3] or [None]
        canvases = [(a, b) for a in continuous for b in continuous if a in images and b in images]
        canvases = [(a, b) for a, b in canvases if self.shapes[a][0] == self.shapes[b][0]]
        options: dict[str, list[Any]] = {"product": pairs, "lambert": normals, "glimpse": images, "place": canvases}
        choices = [name for name, candidates in options.items() if candidates]
        if not choices or not self.draw(st.booleans()):
            return None
        function = self.draw(st.sampled_from(choices))
        picked = self.draw(st.sampled_from(options[function]))
        if function == "product":
            arguments = list(picked)
        elif function == "lambert":
            arguments = [
                picked or self.vector_let(parents, (3, self.draw(st.integers(1, 4)), 2)),
                self.vector_let(parents),
            ]
        elif function == "glimpse":
            arguments = [picked, self.vector_let(parents)]
        else:
            arguments = [picked[0], self.vector_let(parents), picked[1]]
        declared = (self.shapes[arguments[0]][0], self.draw(st.integers(1, 4)), self.draw(st.integers(1, 4)))
        shape = FUNCTIONS[function].output_shape(tuple(self.shapes[a] for a in arguments), declared)
        assert shape is not None
        name = f"t{len(self.lets)}"
        call = ast.NetCall(_ident(function), tuple(_ident(a) for a in arguments))
        self.lets.append(ast.LetDecl(_ident(name), ast.TypeExpr(_ident("real"), shape), call))
        self.shapes[name], self.types[name] = shape, "real"
        return [p for p in parents if p not in arguments] + [name]

    def vector_let(self, parents: list[str], shape: tuple[int, ...] = (3,)) -> str:
        """A `let` of a network of the parents, real[3] (a light's direction or a window) or
        another shape."""
        name = f"t{len(self.lets)}"
        self.lets.append(ast.LetDecl(_ident(name), ast.TypeExpr(_ident("real"), shape), self.network(parents, shape)))
        self.shapes[name], self.types[name] = shape, "real"
        return name

    def factor(self, model: str, variable: _Variable, parents: list[str]) -> ast.Factor:
        draw = self.draw
        info = DISTRIBUTIONS[variable.distribution]
        args: tuple[ast.DistArg, ...]
        if parents:
            inputs = self.inputs_via_lets(parents)
            if draw(st.booleans()):
                args = (ast.DistArg(None, self.network(inputs, _stacked(variable.shape, len(info.emitted())))),)
            else:
                params = draw(st.sampled_from(info.parameterisations))
                reader = draw(st.integers(0, len(params) - 1))  # this one reads every input
                args = tuple(
                    ast.DistArg(
                        _ident(p.name),
                        self.network(inputs, variable.shape)
                        if i == reader
                        else _constant(draw, p.constraint, variable.shape),
                    )
                    for i, p in enumerate(params)
                )
        else:
            params = draw(st.sampled_from(info.parameterisations))
            positional = params == info.positional() and draw(st.booleans())
            args = tuple(
                ast.DistArg(None if positional else _ident(p.name), _constant(draw, p.constraint, variable.shape))
                for p in params
            )
        estimator = None
        if model == "q" and info.discrete and draw(st.booleans()):
            estimator = self.estimator(variable)
        return ast.Factor(
            model,
            _ident(variable.name),
            tuple(_ident(p) for p in parents),
            ast.Distribution(_ident(variable.distribution), args),
            estimator,
        )

    def estimator(self, variable: _Variable) -> ast.Estimator:
        draw = self.draw
        count = math.prod(variable.shape[:-1]) if variable.type == "onehot" else math.prod(variable.shape)
        choices = variable.shape[-1] if variable.type == "onehot" else 2
        if count * math.log(choices) <= math.log(ENUMERATION_LIMIT) and draw(st.booleans()):
            return ast.Estimator(_ident("enumeration"), ())
        options = (
            () if draw(st.booleans()) else _options([("temperature", ast.Number(round(draw(st.floats(0.1, 2.0)), 2)))])
        )
        return ast.Estimator(_ident("relaxation"), options)


def _stacked(shape: tuple[int, ...], count: int) -> tuple[int, ...]:
    return (count * shape[0], *shape[1:])


def _objective(draw) -> ast.ObjectiveDecl:
    info = OBJECTIVES["semisupervised"]
    candidates = {
        "alpha": ast.Number(round(draw(st.floats(0, 2)), 2)),
        "samples": ast.Number(draw(st.integers(1, 16))),
        "beta": ast.Number(round(draw(st.floats(0.1, 2)), 2)),
        "estimator": ast.Word(draw(st.sampled_from(("snis", "iwae")))),
    }
    chosen = draw(st.lists(st.sampled_from([o.name for o in info.options]), unique=True))
    return ast.ObjectiveDecl(_ident(info.name), _options((key, candidates[key]) for key in chosen))


def _random_dag_parents(draw, order: list[str], candidates_before: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        name: draw(st.lists(st.sampled_from(candidates_before[name]), unique=True, max_size=3))
        if candidates_before[name]
        else []
        for name in order
    }


@st.composite
def spec_trees(draw, max_variables: int = 5) -> ast.Spec:
    """A random valid spec as an `ast.Spec` (statements in a random order, model first)."""
    variables = draw(_variables(max_variables))
    builder = _Builder(draw)
    builder.shapes = {v.name: v.shape for v in variables}
    builder.types = {v.name: v.type for v in variables}
    by_name = {v.name: v for v in variables}

    p_order = draw(st.permutations([v.name for v in variables]))
    p_parents = _random_dag_parents(draw, p_order, {n: list(p_order[:i]) for i, n in enumerate(p_order)})
    observed = [v.name for v in variables if v.role == "observed"]
    inferred = draw(st.permutations([v.name for v in variables if v.role != "observed"]))
    q_parents = _random_dag_parents(draw, inferred, {n: observed + list(inferred[:i]) for i, n in enumerate(inferred)})

    statements: list[ast.Statement] = [
        ast.VarDecl(v.role, _ident(v.name), ast.TypeExpr(_ident(v.type), v.shape)) for v in variables
    ]
    statements += [builder.factor("p", by_name[n], p_parents[n]) for n in p_order]
    statements += [builder.factor("q", by_name[n], q_parents[n]) for n in inferred]
    if draw(st.integers(0, 2)) == 0:
        statements += _repeat(draw, builder, observed[0])
    statements += [*builder.lets, *builder.nets]
    if draw(st.booleans()):
        statements.append(_objective(draw))
    statements = list(draw(st.permutations(statements)))
    if draw(st.booleans()):
        statements.insert(0, ast.ModelDecl(_ident(draw(st.sampled_from(("m", "model", "net", "ssvae"))))))
    return ast.Spec(tuple(statements))


def _repeat(draw, builder: _Builder, observed: str) -> list[ast.Statement]:
    """A `repeat k < count { ... }` block (names outside NAME_POOL): a count of K_max + 1
    values, one or two variables per step (each latent or supervised), q's recurrent state read by each step's q
    factors, p's running sum of the steps, and an observed variable read from that sum after
    the block."""
    steps = draw(st.integers(2, 3))  # with one step, a recurrent state would only ever read zeros
    count_role = draw(st.sampled_from(("supervised", "latent")))
    count = _Variable("count", count_role, "onehot", (steps + 1,), "Categorical")
    parts = [
        _Variable(name, "latent", type_name, (draw(st.integers(1, 4)),), distribution)
        for name, (type_name, distribution) in zip(
            ("part", "part2"),
            draw(st.lists(st.sampled_from((("real", "Normal"), ("onehot", "Categorical"))), min_size=1, max_size=2)),
            strict=False,
        )
    ]
    for part in parts:
        if part.type == "onehot":
            part.shape = (part.shape[0] + 1,)
        part.role = draw(st.sampled_from(("latent", "supervised")))  # labelled step by step
    builder.shapes.update({v.name: v.shape for v in (count, *parts)})
    builder.types.update({v.name: v.type for v in (count, *parts)})
    state_width, sum_width = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    builder.shapes.update({"state": (state_width,), "canvas": (sum_width,), "scene": (sum_width,)})
    builder.types.update({"state": "real", "canvas": "real", "scene": "real"})

    def earlier(name: str) -> ast.Ident:
        return ast.Ident(name, step=ast.Step(_ident("k"), -1))

    cell = f"f{len(builder.nets)}"
    builder.nets.append(ast.NetDecl(_ident(cell), _ident("gru"), ()))
    state = ast.LetDecl(
        _ident("state"),
        ast.TypeExpr(_ident("real"), (state_width,)),
        ast.NetCall(_ident(cell), (_ident(observed), *(earlier(v.name) for v in parts), earlier("state"))),
    )
    builder.shapes["state"] = (state_width,)
    canvas = ast.LetDecl(
        _ident("canvas"),
        ast.TypeExpr(_ident("real"), (sum_width,)),
        builder.network([*(v.name for v in parts), "canvas"], (sum_width,)),
    )
    canvas = ast.LetDecl(
        canvas.name,
        canvas.type,
        ast.NetCall(canvas.call.net, (*canvas.call.args[:-1], earlier("canvas"))),
    )
    body: list[ast.Statement] = [
        ast.VarDecl(v.role, _ident(v.name), ast.TypeExpr(_ident(v.type), v.shape)) for v in parts
    ]
    body += [builder.factor("p", v, []) for v in parts]
    builder.direct = True
    for index, part in enumerate(parts):
        factor = builder.factor("q", part, [observed, *(v.name for v in parts[:index])])
        if factor.estimator is not None and factor.estimator.name.name == "enumeration":  # a repeat relaxes
            factor = ast.Factor("q", factor.variable, factor.parents, factor.distribution, None)
        # a network of the factor reads the state too, after its other inputs
        args = list(factor.distribution.args)
        position = next(i for i, a in enumerate(args) if isinstance(a.value, ast.NetCall))
        call = args[position].value
        assert isinstance(call, ast.NetCall)
        args[position] = ast.DistArg(args[position].keyword, ast.NetCall(call.net, (*call.args, _ident("state"))))
        body.append(
            ast.Factor(
                "q",
                factor.variable,
                factor.parents,
                ast.Distribution(factor.distribution.name, tuple(args)),
                factor.estimator,
            )
        )
    builder.direct = False
    body += [state, canvas]
    scene = _Variable("scene", "observed", "real", (sum_width,), "Normal")
    return [
        ast.VarDecl(count.role, _ident("count"), ast.TypeExpr(_ident("onehot"), count.shape)),
        builder.factor("p", count, []),
        builder.factor("q", count, [observed]),
        ast.Repeat(_ident("k"), _ident("count"), tuple(draw(st.permutations(body)))),
        ast.VarDecl("observed", _ident("scene"), ast.TypeExpr(_ident("real"), scene.shape)),
        ast.Factor(
            "p",
            _ident("scene"),
            tuple(_ident(v.name) for v in parts),
            ast.Distribution(
                _ident("Normal"),
                (
                    ast.DistArg(_ident("loc"), ast.Reference(_ident("canvas"))),
                    ast.DistArg(_ident("scale"), ast.Number(1)),
                ),
            ),
            None,
        ),
    ]


def models(max_variables: int = 5) -> st.SearchStrategy[str]:
    """Random valid specs as text, ready for `gmdsl.load` and `gmdsl.compile`."""
    return spec_trees(max_variables).map(pretty)


def random_value(variable, rows: int, generator) -> torch.Tensor:
    """Valid values of a compiled model's variable: [rows, *shape], inside its type's support."""
    shape = (rows, *variable.shape)
    if variable.type == "binary":
        return torch.randint(0, 2, shape, generator=generator).float()
    if variable.type == "onehot":
        possible = torch.tensor([c for c in range(variable.shape[-1]) if c not in variable.impossible])
        index = possible[torch.randint(0, len(possible), shape[:-1], generator=generator)]
        classes = torch.nn.functional.one_hot(index, variable.shape[-1]).float()
        if variable.repeat is not None:  # a step may have no class: a row of zeros
            classes = classes * (torch.rand(shape[:-1], generator=generator) < 0.7).unsqueeze(-1)
        return classes
    normal = torch.randn(shape, generator=generator)
    value = {"real": normal, "positive": normal.exp(), "unit": torch.sigmoid(normal)}[variable.type]
    if variable.repeat is not None and variable.role == "supervised":  # a step may have no label: NaN throughout
        missing = torch.rand((rows, variable.shape[0]), generator=generator) >= 0.7
        value = value.masked_fill(missing.reshape(rows, variable.shape[0], *([1] * (len(shape) - 2))), float("nan"))
    return value


def random_batch(model, rows: int, seed: int = 0, labelled: float = 0.5) -> dict:
    """A valid batch for a compiled model: every observed variable, and every supervised one
    with a random mask `NAME_observed` (each row labelled with probability `labelled`)."""
    generator = torch.Generator().manual_seed(seed)
    batch = {}
    for variable in model.variables:
        if variable.role == "latent":
            continue
        batch[variable.name] = random_value(variable, rows, generator)
        if variable.role == "supervised":
            batch[variable.name + "_observed"] = torch.rand(rows, generator=generator) < labelled
    return batch


@dataclass(frozen=True)
class BatchRecipe:
    """What a random batch is made from: rows, a seed for the values, a label mask per
    supervised variable. Small to print, so a failing example reads at a glance."""

    rows: int
    seed: int
    masks: tuple[tuple[str, tuple[bool, ...]], ...]

    def build(self, model) -> dict:
        """The batch: random_batch's values, with these masks."""
        batch = random_batch(model, self.rows, self.seed)
        for name, mask in self.masks:
            batch[name + "_observed"] = torch.tensor(mask, dtype=torch.bool)
        return batch


@st.composite
def batch_recipes(draw, model, max_rows: int = 8) -> BatchRecipe:
    rows = draw(st.integers(1, max_rows))
    seed = draw(st.integers(0, 2**16))
    masks = tuple(
        (v.name, tuple(draw(st.lists(st.booleans(), min_size=rows, max_size=rows))))
        for v in model.variables
        if v.role == "supervised"
    )
    return BatchRecipe(rows, seed, masks)


def batches(model, max_rows: int = 8) -> st.SearchStrategy[dict]:
    """Valid batches for a compiled model: 1..max_rows rows of every observed and supervised
    variable, inside each type's support, with a random label mask per supervised variable.
    Values come from a drawn seed, so a failing batch shrinks to few rows, seed 0, few labels."""
    return batch_recipes(model, max_rows).map(lambda recipe: recipe.build(model))
