"""Phase 2, check: `ast.Spec` -> `CheckedSpec`, everything resolved once and every
diagnostic, sorted by position.

Each rule of LANGUAGE.md ("Semantic rules") is one method below; a rule reports what it
finds and never stops the others, so one run shows a user all their mistakes. What a rule
resolves on the way (a factor's bound arguments, a network's options and widths, the
estimators, the objective, the edges of p and q) is kept for the lowering, which never
validates again.
"""

from __future__ import annotations

import math

import networkx as nx

from gmdsl.runtime.registry import (
    DEFAULT_ESTIMATOR,
    DEFAULT_OBJECTIVE,
    DISTRIBUTIONS,
    ENUMERATION_LIMIT,
    ESTIMATORS,
    NETWORK_BUILDERS,
    OBJECTIVES,
    RESERVED_NAMES,
    TYPES,
    DistributionInfo,
)

from . import ast
from .checked import CheckedFactor, CheckedNetwork, CheckedSpec, ResolvedOptions
from .diagnostics import Diagnostic, did_you_mean, error, unknown, warning
from .distargs import check_distribution
from .options import resolve_options
from .scope import Edge, Scope, argument_names, build_scope, dependency_edges
from .widths import NetworkUse, network_uses


def check(spec: ast.Spec) -> CheckedSpec:
    """Check a parsed spec: what it resolves to, and all its errors and warnings, sorted by
    position (`.diagnostics`; `.ok` when there is no error)."""
    return _Checker(spec).run()


class _Checker:
    def __init__(self, spec: ast.Spec):
        self.spec = spec
        self.diagnostics: list[Diagnostic] = []
        self.scope: Scope = build_scope(spec, self.report)
        self.factors: dict[tuple[str, str], CheckedFactor] = {}
        self.networks: dict[str, CheckedNetwork] = {}
        self.objective: ResolvedOptions | None = None
        self.edges: dict[str, tuple[Edge, ...]] = {}

    def report(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    def run(self) -> CheckedSpec:
        self.check_declarations()
        self.check_numbers()
        self.check_factor_coverage()
        for factor in self.spec.statements:
            if isinstance(factor, ast.Factor):
                self.check_factor(factor)
        self.check_lets()
        self.check_networks()
        self.check_objective()
        self.check_cycles()
        unique = {(d.span, d.code, d.message): d for d in self.diagnostics}
        diagnostics = tuple(sorted(unique.values(), key=Diagnostic.sort_key))
        return CheckedSpec(self.spec, self.scope, self.factors, self.networks, self.objective, self.edges, diagnostics)

    # --- declarations -------------------------------------------------------------------

    def check_declarations(self) -> None:
        if not any(v.role == "observed" for v in self.scope.variables.values()):
            first = next(iter(self.scope.variables.values()), None)
            self.report(
                error(
                    "E0108",
                    "the model has no observed variable, so there is nothing to learn from",
                    first.span if first else ast.Span(1, 1, 1, 2),
                    help="declare the data: `observed x : binary[784]`",
                )
            )
        for statement in self.spec.statements:
            if isinstance(statement, (ast.VarDecl, ast.LetDecl)):
                self.check_type(statement)
            if isinstance(statement, (ast.VarDecl, ast.LetDecl, ast.NetDecl)) and statement.name.name in RESERVED_NAMES:
                self.report(
                    error(
                        "E0106",
                        f"`{statement.name.name}` is a reserved word",
                        statement.name.span,
                        help="`uniform` means equal probabilities; choose another name",
                    )
                )

    def check_numbers(self) -> None:
        for number in _numbers(self.spec.statements):
            if not math.isfinite(number.value):
                self.report(
                    error(
                        "E0109",
                        "this number is too large to represent",
                        number.span,
                        help="numbers must be finite (at most about 1.8e308)",
                    )
                )

    def check_type(self, declaration: ast.VarDecl | ast.LetDecl) -> None:
        type_expr = declaration.type
        base = type_expr.base.name
        if base not in TYPES:
            self.report(
                error(
                    "E0105",
                    f"unknown type `{base}`",
                    type_expr.base.span,
                    help=did_you_mean(base, TYPES) or "types are " + ", ".join(f"`{t}`" for t in TYPES),
                )
            )
            return
        if any(size < 1 for size in type_expr.shape):
            self.report(error("E0501", "every size in a shape must be at least 1", type_expr.span))
        if base == "onehot" and type_expr.shape[-1] < 2:
            self.report(
                error(
                    "E0501",
                    "a onehot variable needs at least 2 categories",
                    type_expr.span,
                    help="the last size is the number of categories: `onehot[10]`",
                )
            )
        if isinstance(declaration, ast.LetDecl) and not TYPES[base].let_allowed:
            names = [f"`{t.name}`" for t in TYPES.values() if t.let_allowed]
            allowed = ", ".join(names[:-1]) + " or " + names[-1]
            self.report(
                error(
                    "E0502",
                    f"a `let` node cannot be `{base}`: it is a network's output, not a sample",
                    type_expr.base.span,
                    help=f"use {allowed}",
                )
            )

    # --- which factors exist ------------------------------------------------------------

    def check_factor_coverage(self) -> None:
        scope = self.scope
        for name, declaration in scope.variables.items():
            has_p = scope.factor("p", name) is not None
            if not has_p:
                self.report(
                    error(
                        "E0202",
                        f"{declaration.role} variable `{name}` has no p factor",
                        declaration.name.span,
                        help=f"give its generative distribution: `p({name}) = ...` or `p({name} | parents) = ...`",
                    )
                )
            q = scope.factor("q", name)
            if declaration.role == "observed" and q is not None:
                self.report(
                    error(
                        "E0201",
                        f"observed variable `{name}` cannot have a q factor",
                        q.span,
                        help=f"an observed variable is always given; remove this line, or declare "
                        f"`{name}` as `latent` or `supervised`",
                    )
                )
            if declaration.role != "observed" and q is None:
                self.report(
                    error(
                        "E0203",
                        f"{declaration.role} variable `{name}` has no q factor",
                        declaration.name.span,
                        help=f"say how it is inferred: `q({name} | ...) = ...`",
                    )
                )

    # --- one factor ---------------------------------------------------------------------

    def check_factor(self, factor: ast.Factor) -> None:
        scope = self.scope
        name = factor.variable.name
        variable = scope.variables.get(name)
        if variable is None:
            if name in scope.lets:
                self.report(
                    error(
                        "E0209",
                        f"`{name}` is a `let` node: it is computed, so it has no distribution",
                        factor.variable.span,
                        help="only declared variables have p and q factors",
                    )
                )
            else:
                self.unknown_name(factor.variable, "variable", scope.variables)
            return
        self.check_parents(factor)
        if scope.factor(factor.model, name) is factor:
            checked = check_distribution(factor, variable, scope, self.report)
            self.check_inputs_are_parents(factor)
            estimator = self.check_estimator(factor, variable)
            if checked is not None:
                info, bound = checked
                key = (factor.model, name)
                self.factors[key] = CheckedFactor(
                    factor, info, bound, self.estimator_of(factor, info, estimator), scope.written[key]
                )

    @staticmethod
    def estimator_of(
        factor: ast.Factor, info: DistributionInfo, given: ResolvedOptions | None
    ) -> ResolvedOptions | None:
        """A discrete q factor's estimator: the one its `by` gives, else the default."""
        if factor.model != "q" or not info.discrete:
            return None
        if given is not None:
            return given
        return ResolvedOptions(DEFAULT_ESTIMATOR, {o.name: o.default for o in ESTIMATORS[DEFAULT_ESTIMATOR].options})

    def check_parents(self, factor: ast.Factor) -> None:
        seen: set[str] = set()
        for parent in factor.parents:
            if parent.name == factor.variable.name:
                self.report(
                    error(
                        "E0207",
                        f"`{parent.name}` cannot be its own parent",
                        parent.span,
                        help=f"remove `{parent.name}` from the parents",
                    )
                )
            elif parent.name in seen:
                self.report(error("E0207", f"parent `{parent.name}` is listed twice", parent.span))
            elif parent.name in self.scope.lets:
                inputs = ", ".join(sorted(self.scope.let_variable_inputs(parent.name)))
                self.report(
                    error(
                        "E0207",
                        f"`{parent.name}` is a `let` node, not a variable",
                        parent.span,
                        help=f"list the variables it is computed from ({inputs}) as parents, "
                        f"and use `{parent.name}` inside the network call",
                    )
                )
            elif parent.name not in self.scope.variables:
                self.unknown_name(parent, "variable", self.scope.variables)
            seen.add(parent.name)

    def check_inputs_are_parents(self, factor: ast.Factor) -> None:
        """A factor reads only its parents, or `let` nodes computed from them; a declared
        parent that is never read is a warning."""
        scope = self.scope
        variable = factor.variable.name
        parents = [p.name for p in factor.parents]
        head = f"{factor.model}({variable}{' | ' + ', '.join(parents) if parents else ''})"
        read: set[str] = set()
        for ident in argument_names(factor.distribution):
            name = ident.name
            if name in scope.lets:
                inputs = scope.let_variable_inputs(name)
                read |= inputs
                stray = sorted(i for i in inputs - set(parents) - {variable} if i in scope.variables)
                if stray:
                    self.report(
                        error(
                            "E0206",
                            f"`{name}` is computed from `{stray[0]}`, which is not a parent of `{variable}` in {head}",
                            ident.span,
                            help=f"add it to the parents: {_with_parent(factor, stray[0])}",
                        )
                    )
            elif name in scope.variables:
                read.add(name)
                if name == variable:
                    self.report(error("E0206", f"`{variable}` cannot be an input of its own distribution", ident.span))
                elif name not in parents:
                    self.report(
                        error(
                            "E0206",
                            f"`{name}` is not a parent of `{variable}` in {head}",
                            ident.span,
                            help=f"add it to the parents: {_with_parent(factor, name)}",
                        )
                    )
            elif name in scope.nets:
                self.report(
                    error("E0103", f"`{name}` is a network, not a variable", ident.span, help=f"call it: `{name}(...)`")
                )
            elif name not in parents:  # an unknown parent is reported by check_parents
                self.unknown_name(ident, "variable", {**scope.variables, **scope.lets})
        for parent in factor.parents:
            if parent.name in scope.variables and parent.name not in read and parent.name != variable:
                self.report(
                    warning(
                        "W0201",
                        f"parent `{parent.name}` of `{variable}` is never used",
                        parent.span,
                        help=f"pass it to a network of this factor, or remove it from {head}",
                    )
                )

    def check_estimator(self, factor: ast.Factor, variable: ast.VarDecl) -> ResolvedOptions | None:
        estimator = factor.estimator
        if estimator is None:
            return None
        if factor.model == "p":
            self.report(
                error(
                    "E0208",
                    "a `by` clause belongs to q factors only",
                    estimator.span,
                    help="p factors are scored, not sampled through an estimator; remove it",
                )
            )
            return None
        distribution = DISTRIBUTIONS.get(factor.distribution.name.name)
        if distribution is not None and not distribution.discrete:
            self.report(
                error(
                    "E0208",
                    f"{distribution.name} is continuous: a `by` clause is only for discrete "
                    "variables (Bernoulli, Categorical)",
                    estimator.span,
                    help="a continuous sample is reparameterised; remove the `by` clause",
                )
            )
            return None
        info = ESTIMATORS.get(estimator.name.name)
        if info is None:
            self.report(unknown("E0601", "estimator", estimator.name.name, estimator.name.span, ESTIMATORS))
            return None
        options = resolve_options(estimator.options, info.options, f"estimator `{info.name}`", "E0602", self.report)
        if info.name == "enumeration":
            self.check_enumeration_size(variable, estimator)
        return ResolvedOptions(info.name, options)

    def check_enumeration_size(self, variable: ast.VarDecl, estimator: ast.Estimator) -> None:
        shape = variable.type.shape
        if variable.type.base.name == "onehot":
            choices, count = shape[-1], math.prod(shape[:-1])
        else:
            choices, count = 2, math.prod(shape)
        if count * math.log(choices) > math.log(ENUMERATION_LIMIT):
            self.report(
                error(
                    "E0603",
                    f"enumerating `{variable.name.name}` would sum over {choices}^{count} values",
                    estimator.span,
                    help=f"enumeration is for at most {ENUMERATION_LIMIT} values; use `by relaxation`",
                )
            )

    # --- let nodes, networks, objective -------------------------------------------------

    def check_lets(self) -> None:
        scope = self.scope
        read = {i.name for f in scope.factors.values() for i in argument_names(f.distribution)}
        read |= {a.name for let in scope.lets.values() for a in let.call.args}
        for name, let in scope.lets.items():
            for arg in let.call.args:
                if arg.name == name:
                    self.report(error("E0205", f"`let` node `{name}` is computed from itself", arg.span))
                elif arg.name in scope.nets:
                    self.report(error("E0103", f"`{arg.name}` is a network, not a variable", arg.span))
                elif arg.name not in scope.variables and arg.name not in scope.lets:
                    self.unknown_name(arg, "variable", {**scope.variables, **scope.lets})
            if name not in read:
                self.report(
                    warning(
                        "W0202",
                        f"`let` node `{name}` is never used",
                        let.name.span,
                        help="pass it to a network in a factor, or remove it",
                    )
                )

    def check_networks(self) -> None:
        scope = self.scope
        uses: list[NetworkUse] = network_uses(
            scope, ((variable, checked.bound) for (_, variable), checked in self.factors.items())
        )
        used_names = {use.call.net.name for use in uses}
        for use in uses:
            name = use.call.net.name
            if name in scope.variables or name in scope.lets:
                kind = "variable" if name in scope.variables else "`let` node"
                self.report(
                    error(
                        "E0104",
                        f"`{name}` is a {kind}, not a network",
                        use.call.net.span,
                        help=f"call a network on it instead, e.g. `net({name})`, with `net NAME = mlp(...)` defined",
                    )
                )
            elif name not in scope.nets:
                self.unknown_name(use.call.net, "network", scope.nets)
        for name, net in scope.nets.items():
            builder = NETWORK_BUILDERS.get(net.builder.name)
            if builder is None:
                self.report(unknown("E0401", "network builder", net.builder.name, net.builder.span, NETWORK_BUILDERS))
            else:
                options = resolve_options(
                    net.options, builder.options, f"network builder `{builder.name}`", "E0402", self.report
                )
                first = next((use for use in uses if use.call.net.name == name), None)
                self.networks[name] = CheckedNetwork(net, builder, options, first)
            if name not in used_names:
                self.report(
                    warning(
                        "W0203",
                        f"network `{name}` is never used",
                        net.name.span,
                        help="call it in a factor or a `let`, or remove it",
                    )
                )
        self.check_network_widths(uses)

    def check_network_widths(self, uses: list[NetworkUse]) -> None:
        """A network has one input width and one output width; image builders need images."""
        first_use: dict[str, NetworkUse] = {}
        for use in uses:
            name = use.call.net.name
            net = self.scope.nets.get(name)
            builder = NETWORK_BUILDERS.get(net.builder.name) if net else None
            if builder is None or use.input_width is None or use.output_width is None:
                continue
            if not use.call.args:
                self.report(
                    error(
                        "E0405",
                        f"network `{name}` is called with no inputs",
                        use.call.span,
                        help="a network maps its inputs to parameters; for a fixed value write a number",
                    )
                )
                continue
            first_shape = use.first_input_shape or ()  # calls without inputs were skipped above
            if builder.image_input and len(first_shape) != 3:
                self.report(
                    error(
                        "E0404",
                        f"`{name}` is a `conv` network: its first input must be an image "
                        f"[C, H, W], not shape {list(first_shape)}",
                        use.call.args[0].span,
                        help="declare the image with three sizes, e.g. `binary[1, 28, 28]`, or use `mlp`",
                    )
                )
            if builder.image_output and len(use.output_shape) != 3:
                self.report(
                    error(
                        "E0404",
                        f"`{name}` is a `deconv` network: its output must be an image "
                        f"[C, H, W], not shape {list(use.output_shape)}",
                        use.call.span,
                        help="declare the image with three sizes, e.g. `binary[1, 28, 28]`, or use `mlp`",
                    )
                )
            first = first_use.setdefault(name, use)
            if (first.input_width, first.output_width) != (use.input_width, use.output_width):
                self.report(
                    error(
                        "E0403",
                        f"network `{name}` is used with input width {use.input_width} and output "
                        f"width {use.output_width} here, but {first.input_width} and "
                        f"{first.output_width} at {first.call.span.line}:{first.call.span.column}",
                        use.call.span,
                        help="a network has one shape; define a second network for this use",
                    )
                )

    def check_objective(self) -> None:
        objective = self.scope.objective
        if objective is None:
            self.objective = ResolvedOptions(DEFAULT_OBJECTIVE, OBJECTIVES[DEFAULT_OBJECTIVE].defaults())
            return
        info = OBJECTIVES.get(objective.kind.name)
        if info is None:
            self.report(unknown("E0701", "objective", objective.kind.name, objective.kind.span, OBJECTIVES))
            return
        options = resolve_options(objective.options, info.options, f"objective `{info.name}`", "E0702", self.report)
        self.objective = ResolvedOptions(info.name, options)

    # --- acyclicity ---------------------------------------------------------------------

    def check_cycles(self) -> None:
        for model in ("p", "q"):
            self.edges[model] = tuple(dependency_edges(self.scope, model))
            graph = nx.DiGraph()
            graph.add_nodes_from(sorted(self.scope.order, key=self.scope.order.__getitem__))
            graph.add_edges_from((source, target) for source, target, _ in self.edges[model])
            components = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
            for component in sorted(components, key=lambda c: min(self.scope.order[n] for n in c)):
                self.report_cycle(model, graph.subgraph(component))

    def report_cycle(self, model: str, component: nx.DiGraph) -> None:
        """Name the cycle from the node whose definition closes it (the last one written)."""

        def written_at(node: str) -> ast.Span:
            factor = self.scope.factor(model, node)
            return factor.span if factor is not None else self.scope.lets[node].span

        start = max(component.nodes, key=written_at)
        cycle = [start] + [target for _, target in nx.find_cycle(component, source=start)]
        what = "generative model p" if model == "p" else "recognition model q"
        self.report(
            error(
                "E0205",
                f"the {what} has a cycle: {' -> '.join(cycle)}",
                written_at(start),
                help=f"{model} must be a DAG; remove one of these dependencies",
            )
        )

    # --- helpers ------------------------------------------------------------------------

    def unknown_name(self, ident: ast.Ident, kind: str, known) -> None:
        self.report(
            error(
                "E0104" if kind == "network" else "E0103",
                f"unknown {kind} `{ident.name}`",
                ident.span,
                help=did_you_mean(ident.name, known) or f"declare it: {_how_to_declare(kind, ident.name)}",
            )
        )


def _numbers(node):
    """Every number literal under a node."""
    if isinstance(node, ast.Number):
        yield node
    elif isinstance(node, tuple):
        for item in node:
            yield from _numbers(item)
    elif hasattr(node, "__dataclass_fields__"):
        for name in node.__dataclass_fields__:
            yield from _numbers(getattr(node, name))


def _how_to_declare(kind: str, name: str) -> str:
    return f"`net {name} = mlp(hidden = [256])`" if kind == "network" else f"`latent {name} : real[8]`"


def _with_parent(factor: ast.Factor, name: str) -> str:
    parents = ", ".join([p.name for p in factor.parents] + [name])
    return f"`{factor.model}({factor.variable.name} | {parents})`"
