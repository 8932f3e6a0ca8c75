"""Hypothesis strategies for gmdsl models (`gmdsl.testing` re-exports them; its docstring
shows a user's test file).

- `models()` draws random valid specs as text; `spec_trees()` draws the `ast.Spec` itself.
  Every drawn spec checks clean (no errors, no warnings), and together they reach every rule
  and alternative of grammar/gm.lark that `pretty` can print (tests/test_random_specs.py holds
  them to it; docs/testing.md names the strategy behind each rule): variables of every role
  and type, random p and q DAGs, every parameterisation of every distribution with keyword,
  positional, constant, list, bare and network arguments, classes ruled out by a 0 in `probs`,
  `let` nodes of networks and of built-in functions, networks of every builder that fits,
  estimators and objectives, and up to two `repeat` blocks with labels per step.
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
from gmdsl.compiler.widths import output_shape
from gmdsl.runtime.registry import (
    ACTIVATIONS,
    CONSTRAINTS,
    DISTRIBUTIONS,
    ENUMERATION_LIMIT,
    FUNCTIONS,
    OBJECTIVES,
    TYPES,
    Param,
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
    distribution: str  # its law in q, and in p unless `prior` says otherwise
    prior: str | None = None  # a law only p may use (a mixture), for a variable q also draws


def _laws(type_name: str, in_q: bool) -> list[str]:
    """The distributions on a type; those q can draw where `in_q`."""
    return [d for d in distributions_for(type_name) if not (in_q and DISTRIBUTIONS[d].not_in_q)]


def _ident(name: str) -> ast.Ident:
    return ast.Ident(name)


def _options(pairs) -> tuple[ast.Option, ...]:
    return tuple(ast.Option(_ident(key), value) for key, value in pairs)


@st.composite
def _shape(draw, type_name: str) -> tuple[int, ...]:
    if type_name in ("onehot", "simplex"):  # categories over the last size
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
        if not _laws(type_name, in_q=True):  # a count: q cannot draw one, so it is data
            role = "observed"
        distribution = draw(st.sampled_from(_laws(type_name, in_q=role != "observed")))
        p_only = [d for d in distributions_for(type_name) if DISTRIBUTIONS[d].not_in_q]
        prior = draw(st.sampled_from(p_only)) if role != "observed" and p_only and draw(st.booleans()) else None
        shape = draw(_shape(type_name))
        earlier = [v.shape for v in variables if not TYPES[v.type].discrete and v.type != "simplex"]
        if not TYPES[type_name].discrete and type_name != "simplex" and earlier and draw(st.integers(0, 2)) == 0:
            shape = draw(st.sampled_from(earlier))  # one that meets an earlier one's in `product`
        variables.append(_Variable(name, role, type_name, shape, distribution, prior))
    return variables


def _number(draw, constraint: str) -> ast.Number:
    # positive ones (scales, rates) stay small: LogNormal draws fed to networks stay well inside
    # the float range, for the tests are of structure, not of overflow
    bounds = {"real": (-3.0, 3.0), "positive": (0.05, 2.0), "unit": (0.05, 0.95), "probability": (0.01, 0.99)}
    low, high = bounds[constraint]
    value = round(draw(st.floats(low, high)), 3)
    if draw(st.booleans()) and float(value).is_integer():
        value = int(value)
    assert CONSTRAINTS[constraint].admits(value)
    return ast.Number(value)


def _vector(values) -> ast.Vector:
    return ast.Vector(tuple(ast.Number(v) for v in values))


class _Builder:
    """Accumulates the statements of one spec while factors are drawn. While a `repeat` is
    drawn (`index` set), new `let`s go into its body, and its names may be read at a step:
    `name[k]` (this step) or `name[k - 1]` (the step before)."""

    def __init__(self, draw: st.DrawFn):
        self.draw = draw
        self.nets: list[ast.NetDecl] = []
        self.lets: list[ast.LetDecl] = []  # of the scope being drawn: the spec's, or a repeat's body
        self.let_count = 0
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.types: dict[str, str] = {}
        # the classes of a onehot variable that a constant `probs` of its p or q factor gives 0:
        # the two together leave it two classes, so that q has a choice to learn, and a count
        # its last, so that every step can hold
        self.ruled_out: dict[str, set[int]] = {}
        self.counts: set[str] = set()
        self.index: str | None = None  # the index of the repeat being drawn
        self.repeated: set[str] = set()  # the names declared in that repeat
        self.params: list[ast.ParamDecl] = []  # learned constants, declared at the top level
        # q's state of the first repeat, which a later one may read, and the observed variable it reads
        self.first_state: tuple[str, str] | None = None

    def declare(self, variable: _Variable) -> ast.VarDecl:
        self.shapes[variable.name], self.types[variable.name] = variable.shape, variable.type
        if self.index is not None:
            self.repeated.add(variable.name)
        return ast.VarDecl(variable.role, _ident(variable.name), ast.TypeExpr(_ident(variable.type), variable.shape))

    def ref(self, name: str) -> ast.Ident:
        """`name` as read at this step: inside a repeat, a name of its own now and then as `name[k]`."""
        if self.index is not None and name in self.repeated and self.draw(st.integers(0, 3)) == 0:
            return ast.Ident(name, step=ast.Step(_ident(self.index)))
        return _ident(name)

    def before(self, name: str) -> ast.Ident:
        """`name[k - 1]`, the step before's value (zeros before the first step)."""
        assert self.index is not None
        return ast.Ident(name, step=ast.Step(_ident(self.index), -1))

    def let_name(self) -> str:
        name = f"t{self.let_count}"
        self.let_count += 1
        return name

    def let(self, name: str, type_name: str, shape: tuple[int, ...], call: ast.NetCall) -> str:
        self.lets.append(ast.LetDecl(_ident(name), ast.TypeExpr(_ident(type_name), shape), call))
        self.shapes[name], self.types[name] = shape, type_name
        if self.index is not None:
            self.repeated.add(name)
        return name

    def param(self, type_name: str, shape: tuple[int, ...]) -> str:
        """A new learned constant, now and then with a start in its type's range: one number
        for every element, or one per element of a one-dimensional one."""
        draw = self.draw
        name = f"c{len(self.params)}"
        start: ast.Number | ast.Vector | None = None
        if type_name == "simplex":
            if len(shape) == 1 and draw(st.booleans()):
                weights = draw(st.lists(st.integers(1, 5), min_size=shape[0], max_size=shape[0]))
                start = _vector(w / sum(weights) for w in weights)
        elif draw(st.integers(0, 2)) == 0:
            constraint = "real" if type_name == "real" else type_name
            if len(shape) == 1 and draw(st.booleans()):
                start = _vector(_number(draw, constraint).value for _ in range(shape[0]))
            else:
                start = _number(draw, constraint)
        self.params.append(ast.ParamDecl(_ident(name), ast.TypeExpr(_ident(type_name), shape), start))
        self.shapes[name], self.types[name] = shape, type_name
        return name

    def network(
        self, inputs: list[ast.Ident], output_shape: tuple[int, ...], builder: str | None = None
    ) -> ast.NetCall:
        """A call of a new network of `inputs`, of a builder that fits (`builder` if given)."""
        draw = self.draw
        name = f"f{len(self.nets)}"
        builders = ["mlp"]
        if len(self.shapes[inputs[0].name]) == 3:
            builders.append("conv")
        if len(output_shape) == 3:
            builders.append("deconv")
        builder = builder or draw(st.sampled_from(builders))
        options: list[tuple[str, ast.Literal]] = []
        if builder != "gru":
            if draw(st.booleans()):
                # at least 4 wide: a layer of one or two ReLUs is dead for every input often enough
                # that "every parameter learns" would fail on the draw, not on the structure
                widths = draw(st.lists(st.integers(4, 32), max_size=2))
                options.append(("hidden", ast.ListLiteral(tuple(ast.Number(n) for n in widths))))
            if draw(st.booleans()):
                options.append(("activation", ast.Word(draw(st.sampled_from(tuple(ACTIVATIONS))))))
            if draw(st.integers(0, 3)) == 0:
                options.append(("output_bias", _number(draw, "real")))
            if builder != "mlp" and draw(st.booleans()):
                options.append(("channels", ast.ListLiteral((ast.Number(draw(st.integers(1, 8))),))))
        self.nets.append(ast.NetDecl(_ident(name), _ident(builder), _options(draw(st.permutations(options)))))
        return ast.NetCall(_ident(name), tuple(inputs))

    def inputs_via_lets(self, parents: list[str]) -> list[ast.Ident]:
        """What a factor with these parents reads: the parents, now and then some of them
        through a `let` of a network, or of a built-in function."""
        if parents and self.draw(st.integers(0, 5)) == 0:  # a learned constant beside them
            width = (self.draw(st.integers(1, 3)),)
            constant = self.param(self.draw(st.sampled_from(("real", "positive", "unit"))), width)
            return [*self.inputs_via_lets(parents), _ident(constant)]
        if not parents or not self.draw(st.booleans()):
            return [self.ref(p) for p in parents]
        through_function = self.function_let(parents)
        if through_function is not None:
            return [self.ref(p) for p in through_function]
        through = self.draw(st.lists(st.sampled_from(parents), min_size=1, unique=True))
        shape = (self.draw(st.integers(1, 8)),)
        let_type = self.draw(st.sampled_from([t for t in sorted(TYPES) if TYPES[t].let_allowed]))
        name = self.let(self.let_name(), let_type, shape, self.network([self.ref(p) for p in through], shape))
        return [self.ref(p) for p in parents if p not in through] + [self.ref(name)]

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
        # `sum` and `difference` take discrete values too (an image of 0/1 pixels less a canvas)
        any_pairs = [(a, b) for a in parents for b in parents if self.shapes[a] == self.shapes[b]]
        normals: list[str | None] = [p for p in continuous if p in images and self.shapes[p][0] == 3] or [None]
        canvases = [(a, b) for a in continuous for b in continuous if a in images and b in images]
        canvases = [(a, b) for a, b in canvases if self.shapes[a][0] == self.shapes[b][0]]
        options: dict[str, list[Any]] = {
            "product": pairs,
            "sum": any_pairs,
            "difference": any_pairs,
            "lambert": normals,
            "glimpse": images,
            "place": canvases,
        }
        choices = [name for name, candidates in options.items() if candidates]
        if not choices or not self.draw(st.booleans()):
            return None
        function = self.draw(st.sampled_from(choices))
        picked = self.draw(st.sampled_from(options[function]))
        if function in ("product", "sum", "difference"):
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
        call = ast.NetCall(_ident(function), tuple(self.ref(a) for a in arguments))
        name = self.let(self.let_name(), "real", shape, call)
        return [p for p in parents if p not in arguments] + [name]

    def vector_let(self, parents: list[str], shape: tuple[int, ...] = (3,)) -> str:
        """A `let` of a network of the parents, real[3] (a light's direction or a window) or
        another shape."""
        return self.let(self.let_name(), "real", shape, self.network([self.ref(p) for p in parents], shape))

    def factor(
        self,
        model: str,
        variable: _Variable,
        parents: list[str],
        history: tuple[ast.Ident, ...] = (),
        reads: list[ast.Ident] | None = None,
    ) -> ast.Factor:
        """`model(variable | parents) = Dist(...)`. Constants where it reads nothing; else a
        network of what it reads (its parents, some through `let`s, or `reads` where given,
        and the steps before in `history`, which are no parents) gives every parameter, or
        one of them beside constants and values passed bare."""
        draw = self.draw
        law = variable.prior if model == "p" and variable.prior is not None else variable.distribution
        info = DISTRIBUTIONS[law]
        inputs = [*(self.inputs_via_lets(parents) if reads is None else reads), *history]
        # the options that size some parameters (`rank`, `components`), written or left at their defaults
        options = {o.name: draw(st.integers(int(o.minimum or 1), int(o.minimum or 1) + 1)) for o in info.options}
        written = [o for o in info.options if options[o.name] != o.default or draw(st.booleans())]
        options.update({o.name: o.default for o in info.options if o not in written})
        args: tuple[ast.DistArg, ...]
        if bool(inputs) and draw(st.booleans()):  # one network emits every parameter
            args = (ast.DistArg(None, self.network(inputs, output_shape(info.emitted(), variable.shape, options))),)
        else:
            params = draw(st.sampled_from(info.parameterisations))
            reader = draw(st.integers(0, len(params) - 1)) if inputs else None  # this one reads every input
            values = [
                self.network(inputs, output_shape((p,), variable.shape, options))
                if i == reader
                else self.bare_or_constant(p, variable, inputs, options)
                for i, p in enumerate(params)
            ]
            # positional arguments come first, in the first parameterisation's order
            positional = draw(st.integers(0, len(params))) if params == info.positional() else 0
            args = tuple(
                ast.DistArg(None if i < positional else _ident(p.name), value)
                for i, (p, value) in enumerate(zip(params, values, strict=True))
            )
        args += tuple(ast.DistArg(_ident(o.name), ast.Number(options[o.name])) for o in written)
        estimator = None
        if model == "q" and info.discrete and draw(st.booleans()):
            estimator = self.estimator(variable)
        return ast.Factor(
            model,
            _ident(variable.name),
            tuple(self.ref(p) for p in parents),
            ast.Distribution(_ident(law), args),
            estimator,
        )

    def bare_or_constant(
        self, param: Param, variable: _Variable, inputs: list[ast.Ident], options: dict[str, int]
    ) -> ast.ArgValue:
        """A parameter beside a network's: now and then an input passed bare (one of the
        variable's shape whose type the parameter takes), or a learned constant, else a constant."""
        if param.size != "value":  # a covariance factor, mixture weights, a member's parameters
            return self.sized_constant(param, options)
        constraint = CONSTRAINTS[param.constraint]
        if self.draw(st.integers(0, 4)) == 0:
            return ast.Reference(_ident(self.param_for(param, variable)))
        bare = [
            i
            for i in inputs
            if self.shapes[i.name] == variable.shape
            and self.types[i.name] in constraint.accepts_types
            and (not i.earlier or constraint.admits(0))  # the step before reads zeros at the first step
        ]
        if bool(bare) and self.draw(st.booleans()):
            return ast.Reference(self.draw(st.sampled_from(bare)))
        return self.constant(param.constraint, variable)

    def param_for(self, param: Param, variable: _Variable) -> str:
        """A learned constant for a parameter of one value per element: of the variable's shape,
        or of shape [1] for every element (never a simplex: its values sum to 1 together)."""
        accepts = CONSTRAINTS[param.constraint].accepts_types
        types = [t for t in sorted(TYPES) if TYPES[t].let_allowed and t in accepts]
        type_name = self.draw(st.sampled_from(types))
        one_for_all = type_name != "simplex" and self.draw(st.booleans())
        return self.param(type_name, (1,) if one_for_all else variable.shape)

    def sized_constant(self, param: Param, options: dict[str, int]) -> ast.ArgValue:
        """A constant for a parameter that is not one number per element: one number for all of
        it; mixture weights `uniform` or one probability per component."""
        draw = self.draw
        if param.constraint == "simplex":
            if draw(st.booleans()):
                return ast.Reference(_ident("uniform"))
            weights = draw(st.lists(st.integers(1, 5), min_size=options["components"], max_size=options["components"]))
            return _vector(w / sum(weights) for w in weights)
        return _number(draw, param.constraint)

    def constant(self, constraint: str, variable: _Variable) -> ast.ArgValue:
        """A constant argument: a number, now and then a list of them (one per element of a
        one-dimensional variable), or probabilities, one per class."""
        draw, shape = self.draw, variable.shape
        if constraint == "simplex":
            if draw(st.booleans()):
                return ast.Reference(_ident("uniform"))
            # now and then a 0, which rules its class out
            ruled_out = self.ruled_out.setdefault(variable.name, set())
            weights = draw(st.lists(st.integers(0, 5), min_size=shape[-1], max_size=shape[-1]))
            if variable.name in self.counts:
                weights[-1] = weights[-1] or 1
            possible = [c for c in range(shape[-1]) if c not in ruled_out]
            while sum(1 for c in possible if weights[c]) < 2:
                weights[draw(st.sampled_from([c for c in possible if not weights[c]]))] = draw(st.integers(1, 5))
            ruled_out.update(c for c, w in enumerate(weights) if w == 0)
            return _vector(w / sum(weights) for w in weights)
        if len(shape) == 1 and draw(st.integers(0, 3)) == 0:
            return _vector(_number(draw, constraint).value for _ in range(shape[0]))
        return _number(draw, constraint)

    def estimator(self, variable: _Variable) -> ast.Estimator:
        """`by enumeration` where the values are few (never in a repeat), else `by relaxation`."""
        draw = self.draw
        count = math.prod(variable.shape[:-1]) if variable.type == "onehot" else math.prod(variable.shape)
        choices = variable.shape[-1] if variable.type == "onehot" else 2
        few = count * math.log(choices) <= math.log(ENUMERATION_LIMIT)
        if few and self.index is None and draw(st.booleans()):
            return ast.Estimator(_ident("enumeration"), ())
        options = (
            () if draw(st.booleans()) else _options([("temperature", ast.Number(round(draw(st.floats(0.1, 2.0)), 2)))])
        )
        return ast.Estimator(_ident("relaxation"), options)


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
    by_name = {v.name: v for v in variables}

    p_order = draw(st.permutations([v.name for v in variables]))
    p_parents = _random_dag_parents(draw, p_order, {n: list(p_order[:i]) for i, n in enumerate(p_order)})
    observed = [v.name for v in variables if v.role == "observed"]
    inferred = draw(st.permutations([v.name for v in variables if v.role != "observed"]))
    q_parents = _random_dag_parents(draw, inferred, {n: observed + list(inferred[:i]) for i, n in enumerate(inferred)})

    statements: list[ast.Statement] = [builder.declare(v) for v in variables]
    statements += [builder.factor("p", by_name[n], p_parents[n]) for n in p_order]
    statements += [builder.factor("q", by_name[n], q_parents[n]) for n in inferred]
    for number in range(draw(st.sampled_from((0, 0, 0, 1, 1, 2)))):  # no repeat in half the specs, two in some
        statements += _repeat(draw, builder, number, observed)
    statements += [*builder.lets, *builder.nets, *builder.params]
    if draw(st.booleans()):
        statements.append(_objective(draw))
    statements = list(draw(st.permutations(statements)))
    if draw(st.booleans()):
        statements.insert(0, ast.ModelDecl(_ident(draw(st.sampled_from(("m", "model", "net", "ssvae"))))))
    return ast.Spec(tuple(statements))


def _step_variable(draw, name: str) -> _Variable:
    """A variable of a repeat: latent, or supervised with a label per step, of any type."""
    type_name = draw(st.sampled_from([t for t in sorted(TYPES) if _laws(t, in_q=True)]))
    size = draw(st.integers(2, 4)) if type_name in ("onehot", "simplex") else draw(st.integers(1, 4))
    role = draw(st.sampled_from(("latent", "supervised")))
    return _Variable(name, role, type_name, (size,), draw(st.sampled_from(_laws(type_name, in_q=True))))


def _repeat(draw, builder: _Builder, number: int, observed: list[str]) -> list[ast.Statement]:
    """The `number`-th `repeat` block of a spec (its own index and names, outside NAME_POOL),
    with its count (observed, supervised or latent, of 2 or 3 steps), and the statements that
    use it outside: now and then an empty block; else one or two variables per step, q's
    recurrent state (a `gru` of an observed variable, or of a top-level `let` of one), read
    by each step's q factors at this step or only at the step before; p's canvas, written by
    a network or by `place`, read after the block by an observed scene; and now and then p's
    memory, read only at the step before."""
    suffix = str(number + 1) if number else ""
    index = "kj"[number]
    steps = draw(st.integers(2, 3))  # with one step, a value read only at the step before would be zeros
    count = _Variable(
        f"count{suffix}",
        draw(st.sampled_from(("observed", "supervised", "latent"))),
        "onehot",
        (steps + 1,),
        "Categorical",
    )
    builder.counts.add(count.name)
    source = draw(st.sampled_from(observed))
    around: list[ast.Statement] = [builder.declare(count), builder.factor("p", count, [])]
    if count.role != "observed":
        around.append(builder.factor("q", count, draw(st.lists(st.sampled_from(observed), unique=True, max_size=2))))
    if draw(st.integers(0, 5)) == 0:
        return [*around, ast.Repeat(_ident(index), _ident(count.name), ())]
    if builder.first_state is not None and draw(st.booleans()):
        # the first repeat's state, at the last step that held there (its source is then a parent)
        state_input, source = builder.first_state
    else:
        state_input = builder.vector_let([source], (draw(st.integers(1, 4)),)) if draw(st.booleans()) else source

    outer_lets = builder.lets
    builder.lets, builder.index, builder.repeated = [], index, set()
    parts = [_step_variable(draw, f"{name}{suffix}") for name in ("part", "other")[: draw(st.integers(1, 2))]]
    body: list[ast.Statement] = [builder.declare(v) for v in parts]
    names = [v.name for v in parts]

    state, memory, canvas = f"state{suffix}", f"memory{suffix}", f"canvas{suffix}"
    state_width = draw(st.integers(1, 6))
    cell_inputs = [_ident(state_input), *(builder.before(n) for n in names), builder.before(state)]
    builder.let(state, "real", (state_width,), builder.network(cell_inputs, (state_width,), "gru"))
    # values read only at the step before learn from rows with two steps or more: an observed
    # count gives few such rows in a small batch, an inferred one weighs every count
    inferred = count.role != "observed"
    state_now = not inferred or draw(st.integers(0, 2)) > 0  # else q reads its state only at the step before
    position: tuple[ast.Ident, ...] = ()
    if draw(st.integers(0, 2)) == 0:  # the step's number, a position code
        position = (
            _ident(builder.let(f"position{suffix}", "real", (1,), ast.NetCall(_ident("step"), (_ident(index),)))),
        )
    for i, part in enumerate(parts):
        parents = [source, *draw(st.lists(st.sampled_from(names[:i]), unique=True))] if i else [source]
        reads_state = builder.ref(state) if state_now else builder.before(state)
        body.append(builder.factor("q", part, parents, history=(reads_state, *position)))

    history: list[ast.Ident] = []
    if inferred and draw(st.integers(0, 2)) == 0:
        width = draw(st.integers(1, 4))
        cell = draw(st.sampled_from(("mlp", "gru")))
        inputs = [*(builder.before(n) for n in names), builder.before(memory)]
        builder.let(memory, "real", (width,), builder.network(inputs, (width,), cell))
        history.append(builder.before(memory))
    for i, part in enumerate(parts):
        own = [builder.before(part.name)] if inferred and draw(st.integers(0, 2)) == 0 else []  # a walk
        parents = draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        body.append(builder.factor("p", part, parents, history=(*history, *own)))
    scene_shape = _canvas(draw, builder, canvas, names)

    body += builder.lets
    builder.lets, builder.index, builder.repeated = outer_lets, None, set()
    builder.first_state = builder.first_state or (state, source)
    scene_type = draw(st.sampled_from(sorted(TYPES)))
    if scene_type == "onehot":
        scene_shape = (draw(st.integers(2, 4)),)
    scene = _Variable(
        f"scene{suffix}", "observed", scene_type, scene_shape, draw(st.sampled_from(distributions_for(scene_type)))
    )
    # now and then the scene also reads a variable of the steps: its value at the last step that held
    last = [_ident(draw(st.sampled_from(names)))] if draw(st.integers(0, 2)) == 0 else []
    return [
        *around,
        ast.Repeat(_ident(index), _ident(count.name), tuple(draw(st.permutations(body)))),
        builder.declare(scene),
        builder.factor("p", scene, names, reads=[_ident(canvas), *last]),
    ]


def _canvas(draw, builder: _Builder, canvas: str, parts: list[str]) -> tuple[int, ...]:
    """p's canvas, drawn on at each step from the step's variables: by a network of them and
    the canvas before, or by `place`, writing a patch (a network's) onto a window (a real[3]
    variable of the step, or a network's) of the canvas before. Its shape."""
    if draw(st.booleans()):
        shape: tuple[int, ...] = (draw(st.integers(1, 6)),)
        inputs = [*(builder.ref(p) for p in parts), builder.before(canvas)]
        builder.let(canvas, "real", shape, builder.network(inputs, shape, draw(st.sampled_from(("mlp", "gru")))))
        return shape
    channels = draw(st.integers(1, 2))
    shape = (channels, draw(st.integers(2, 5)), draw(st.integers(2, 5)))
    patch_shape = (channels, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    patch = builder.let(
        builder.let_name(), "real", patch_shape, builder.network([builder.ref(p) for p in parts], patch_shape)
    )
    windows = [p for p in parts if builder.types[p] == "real" and builder.shapes[p] == (3,)]
    where = draw(st.sampled_from(windows)) if windows and draw(st.booleans()) else builder.vector_let(parts)
    call = ast.NetCall(_ident("place"), (builder.ref(patch), builder.ref(where), builder.before(canvas)))
    builder.let(canvas, "real", shape, call)
    return shape


def models(max_variables: int = 5) -> st.SearchStrategy[str]:
    """Random valid specs as text, ready for `gmdsl.load` and `gmdsl.compile`."""
    return spec_trees(max_variables).map(pretty)


def random_value(variable, rows: int, generator) -> torch.Tensor:
    """Valid values of a compiled model's variable: [rows, *shape], inside its type's support.
    A repeated supervised variable misses its label at some steps: a row of zeros (a onehot)
    or NaN throughout (any other type)."""
    shape = (rows, *variable.shape)
    labelled_per_step = variable.repeat is not None and variable.role == "supervised"
    if variable.type == "onehot":
        possible = torch.tensor([c for c in range(variable.shape[-1]) if c not in variable.impossible])
        index = possible[torch.randint(0, len(possible), shape[:-1], generator=generator)]
        classes = torch.nn.functional.one_hot(index, variable.shape[-1]).float()
        if variable.repeat is not None:  # a step may have no class: a row of zeros
            classes = classes * (torch.rand(shape[:-1], generator=generator) < 0.7).unsqueeze(-1)
        return classes
    if variable.type == "binary":
        value = torch.randint(0, 2, shape, generator=generator).float()
    elif variable.type == "count":
        value = torch.poisson(torch.full(shape, 2.0), generator=generator)
    else:
        normal = torch.randn(shape, generator=generator)
        value = {
            "real": normal,
            "positive": normal.exp(),
            "unit": torch.sigmoid(normal),
            "simplex": torch.softmax(normal, dim=-1),
        }[variable.type]
    if labelled_per_step:
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
