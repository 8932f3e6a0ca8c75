"""Phase 2, check: `ast.Spec` -> `CheckedSpec`, everything resolved once and every
diagnostic, sorted by position.

Each rule of LANGUAGE.md ("Semantic rules") is one method: declarations, lets, the objective
and cycles below, a factor's rules in factor_rules.py, networks' in network_rules.py, built-in
functions' in function_rules.py. A rule
reports what it finds and never stops the others, so one run shows a user all their mistakes. What a rule
resolves on the way (a factor's bound arguments, a network's options and widths, the
estimators, the objective, the edges of p and q) is kept for the lowering, which never
validates again.
"""

from __future__ import annotations

import math

import networkx as nx

from gmdsl.runtime.registry import (
    CONSTRAINTS,
    DEFAULT_OBJECTIVE,
    FUNCTIONS,
    LARGEST_VARIABLE,
    OBJECTIVES,
    RESERVED_NAMES,
    TYPES,
)

from . import ast
from .checked import CheckedFactor, CheckedNetwork, CheckedSpec, ResolvedOptions
from .diagnostics import Diagnostic, did_you_mean, error, unknown, warning
from .distargs import PROBABILITY_ROUNDING
from .factor_rules import FactorRules
from .function_rules import FunctionRules
from .network_rules import NetworkRules
from .options import resolve_options
from .repeat_rules import RepeatRules
from .rules import Rules
from .scope import Edge, argument_names, block_of, blocks, build_scope, dependency_edges


def check(spec: ast.Spec) -> CheckedSpec:
    """Check a parsed spec: what it resolves to, and all its errors and warnings, sorted by
    position (`.diagnostics`; `.ok` when there is no error)."""
    return _Checker(spec).run()


class _Checker(Rules):
    def __init__(self, spec: ast.Spec):
        self.spec = spec
        self.diagnostics: list[Diagnostic] = []
        super().__init__(build_scope(spec, self.diagnostics.append), self.diagnostics.append)
        self.factors: dict[tuple[str, str], CheckedFactor] = {}
        self.networks: dict[str, CheckedNetwork] = {}
        self.objective: ResolvedOptions | None = None
        self.edges: dict[str, tuple[Edge, ...]] = {}

    def run(self) -> CheckedSpec:
        self.check_declarations()
        self.check_numbers()
        self.check_factor_coverage()
        factor_rules = FactorRules(self.scope, self.report)
        for factor, _ in ast.flat_statements(self.spec.statements):
            if isinstance(factor, ast.Factor) and (checked := factor_rules.check_factor(factor)) is not None:
                self.factors[(factor.model, factor.variable.name)] = checked
        self.check_lets()
        self.check_classes_left()
        RepeatRules(self.scope, self.report).check_repeats(self.spec)
        FunctionRules(self.scope, self.report).check_functions()
        self.networks = NetworkRules(self.scope, self.report).check_networks(self.factors)
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
        for statement, _ in ast.flat_statements(self.spec.statements):
            if isinstance(statement, (ast.VarDecl, ast.LetDecl, ast.ParamDecl)):
                self.check_type(statement)
            if isinstance(statement, ast.ParamDecl):
                self.check_param_start(statement)
            named = (ast.VarDecl, ast.LetDecl, ast.ParamDecl, ast.NetDecl)
            if isinstance(statement, named) and statement.name.name in RESERVED_NAMES:
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

    def check_type(self, declaration: ast.VarDecl | ast.LetDecl | ast.ParamDecl) -> None:
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
        elif math.prod(type_expr.shape) > LARGEST_VARIABLE:
            self.report(
                error(
                    "E0501",
                    f"this shape holds {math.prod(type_expr.shape):,} values per example, more than the "
                    f"{LARGEST_VARIABLE:,} gmdsl allows",
                    type_expr.span,
                    help="check the sizes for a typing slip",
                )
            )
        if base == "onehot" and type_expr.shape[-1] < 2:
            self.report(
                error(
                    "E0501",
                    "a onehot variable needs at least 2 categories",
                    type_expr.span,
                    help="the last size is the number of categories: `onehot[10]`",
                )
            )
        if isinstance(declaration, (ast.LetDecl, ast.ParamDecl)) and not TYPES[base].let_allowed:
            names = [f"`{t.name}`" for t in TYPES.values() if t.let_allowed]
            allowed = ", ".join(names[:-1]) + " or " + names[-1]
            what = "a `let` node" if isinstance(declaration, ast.LetDecl) else "a `param`"
            why = "a network's output" if isinstance(declaration, ast.LetDecl) else "a learned tensor"
            self.report(
                error(
                    "E0502",
                    f"{what} cannot be `{base}`: it is {why}, not a sample",
                    type_expr.base.span,
                    help=f"use {allowed}",
                )
            )

    def check_param_start(self, param: ast.ParamDecl) -> None:
        """A `param`'s start lies in its type's range: one number for every element, or one
        per element of a one-dimensional param (probabilities summing to 1 for a simplex)."""
        start, base = param.initial, param.type.base.name
        if start is None or base not in TYPES or not TYPES[base].let_allowed:
            return
        numbers = [start] if isinstance(start, ast.Number) else list(start.items)
        shape = param.type.shape
        if isinstance(start, ast.Vector) and (len(shape) != 1 or len(numbers) != shape[0]):
            self.report(
                error(
                    "E0503",
                    f"`{param.name.name}` starts at {len(numbers)} numbers, but it holds "
                    f"{math.prod(shape)} in shape {list(shape)}",
                    start.span,
                    help="give one number for every element, or a list of one per element of a one-dimensional `param`",
                )
            )
            return
        constraint = CONSTRAINTS[base]
        # a simplex's probabilities are > 0 and at most 1 (exactly 1 for a simplex of one category)
        bad = [n for n in numbers if not (0 < n.value <= 1 if base == "simplex" else constraint.admits(n.value))]
        for number in bad:
            self.report(
                error(
                    "E0503",
                    f"`{param.name.name}` is {base}, so it cannot start at {number.value}",
                    number.span,
                    help=f"start it within its range: {TYPES[base].description}",
                )
            )
        if base == "simplex" and not bad:
            groups = shape[-1]
            total = numbers[0].value * groups if isinstance(start, ast.Number) else sum(n.value for n in numbers)
            if abs(total - 1) > PROBABILITY_ROUNDING:
                self.report(
                    error(
                        "E0503",
                        f"`{param.name.name}` is a simplex: its start must sum to 1 over its last {groups} "
                        f"values, not {total:g}",
                        start.span,
                        help="leave the start out for equal probabilities, or divide each by their sum",
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

    def check_classes_left(self) -> None:
        """A 0 in a `probs` list rules a class out, in p and q alike: together they must leave
        at least one, or the variable has no value to take."""
        for name, variable in self.scope.variables.items():
            if variable.type.base.name != "onehot":
                continue
            zeros: set[int] = set()
            last: ast.Vector | None = None
            for model in ("p", "q"):
                factor = self.factors.get((model, name))
                for item in factor.bound if factor is not None else ():
                    if isinstance(item.value, ast.Vector) and [p.name for p in item.params] == ["probs"]:
                        zeros |= {i for i, number in enumerate(item.value.items) if number.value == 0}
                        last = item.value
            if last is not None and len(zeros) >= variable.type.shape[-1]:
                self.report(
                    error(
                        "E0312",
                        f"the `probs` of `{name}` in p and q together give every class probability 0",
                        last.span,
                        help="a 0 rules a class out in both; leave at least one class possible in each",
                    )
                )

    # --- let nodes, networks, objective -------------------------------------------------

    def check_lets(self) -> None:
        scope = self.scope
        read = {i.name for f in scope.factors.values() for i in argument_names(f.distribution)}
        read |= {a.name for let in scope.lets.values() for a in let.call.args}
        for name, param in scope.params.items():
            if name not in read:
                self.report(
                    warning(
                        "W0204",
                        f"`param` `{name}` is never used",
                        param.name.span,
                        help="pass it as a parameter of a distribution or to a network, or remove it",
                    )
                )
        for name, let in scope.lets.items():
            if scope.calls_function(let.call) and FUNCTIONS[let.call.net.name].reads_index:
                continue  # its argument is a repeat's index, not a value (function_rules.py)
            for arg in let.call.args:
                if arg.name == name and not arg.other_step:
                    self.report(
                        error(
                            "E0205",
                            f"`let` node `{name}` is computed from itself",
                            arg.span,
                            help=f"inside a `repeat k`, `{name}[k - 1]` reads its value at the step before",
                        )
                    )
                elif arg.name in scope.nets:
                    self.report(error("E0103", f"`{arg.name}` is a network, not a variable", arg.span))
                elif scope.value(arg.name) is None:
                    self.unknown_name(arg, "variable", {**scope.variables, **scope.lets, **scope.params})
            if name not in read:
                self.report(
                    warning(
                        "W0202",
                        f"`let` node `{name}` is never used",
                        let.name.span,
                        help="pass it to a network in a factor, or remove it",
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
            if not components:
                self.check_repeat_cycles(model, graph)

    def check_repeat_cycles(self, model: str, graph: nx.DiGraph) -> None:
        """A repeat runs as one block, after its bound and whatever its steps read, and before
        whatever reads its `let`s: with each repeat drawn as one node, the graph is a DAG."""
        scope = self.scope
        contracted = blocks(scope, graph)
        try:
            cycle = [source for source, _ in nx.find_cycle(contracted)]
        except nx.NetworkXNoCycle:
            return
        index = next(i for i in scope.repeats if block_of(i) in cycle)
        block = block_of(index)
        start = cycle.index(block)
        cycle = cycle[start:] + cycle[:start] + [block]
        what = "generative model p" if model == "p" else "recognition model q"
        self.report(
            error(
                "E0205",
                f"the {what} has a cycle through a repeat: {' -> '.join(cycle)}",
                scope.repeats[index].span,
                help="a repeat runs after its bound and what its steps read, and before what reads its `let`s; "
                "remove one of these dependencies",
            )
        )

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
