"""The symbol table of a spec: what each name declares, and the factors by variable.

Built once, by the checker, which hands it on inside the checked spec; it reports duplicate
declarations and keeps the first one, so later rules see one meaning per name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from gmdsl.runtime.registry import DISTRIBUTIONS, FUNCTIONS

from . import ast
from .diagnostics import Diagnostic, error

Edge = tuple[str, str, tuple[str, ...]]  # (source, target, the networks through which target reads source)


@dataclass
class Scope:
    model_name: str
    model_decl: ast.ModelDecl | None = None
    variables: dict[str, ast.VarDecl] = field(default_factory=dict)
    lets: dict[str, ast.LetDecl] = field(default_factory=dict)
    params: dict[str, ast.ParamDecl] = field(default_factory=dict)  # learned constants
    nets: dict[str, ast.NetDecl] = field(default_factory=dict)
    factors: dict[tuple[str, str], ast.Factor] = field(default_factory=dict)  # ("p", "x") -> factor
    objective: ast.ObjectiveDecl | None = None
    order: dict[str, int] = field(default_factory=dict)  # statement index of variables and lets
    written: dict[tuple[str, str], int] = field(default_factory=dict)  # statement index of each factor
    repeats: dict[str, ast.Repeat] = field(default_factory=dict)  # by index name
    repeat_order: dict[str, int] = field(default_factory=dict)  # statement index of each repeat
    repeat_of: dict[str, str] = field(default_factory=dict)  # a variable or let declared in a repeat -> its index
    written_in: dict[tuple[str, str], str | None] = field(default_factory=dict)  # the repeat a factor is written in

    def declaration(self, name: str) -> ast.VarDecl | ast.LetDecl | ast.ParamDecl | ast.NetDecl | None:
        return self.variables.get(name) or self.lets.get(name) or self.params.get(name) or self.nets.get(name)

    def value(self, name: str) -> ast.VarDecl | ast.LetDecl | ast.ParamDecl | None:
        """The declaration of a name that holds a value (a variable, a `let`, a `param`)."""
        return self.variables.get(name) or self.lets.get(name) or self.params.get(name)

    def calls_function(self, call: ast.NetCall) -> bool:
        """Whether a call is of a built-in function rather than a network (a network named
        like a function is an error of its own; its calls stay network calls)."""
        return call.net.name in FUNCTIONS and call.net.name not in self.nets

    def factor(self, model: str, variable: str) -> ast.Factor | None:
        return self.factors.get((model, variable))

    def members(self, index: str) -> list[str]:
        """The variables and lets of `repeat index`, in declaration order."""
        return [name for name, within in self.repeat_of.items() if within == index]

    def let_variable_inputs(self, name: str) -> set[str]:
        """The variables a `let` node is computed from at its own step, through other `let`s
        (cycle-safe); what it reads from the step before (`h[k - 1]`) is history, not input."""
        found: set[str] = set()
        pending, visited = [name], set()
        while pending:
            current = pending.pop()
            if current in visited or current not in self.lets:
                continue
            visited.add(current)
            for arg in self.lets[current].call.args:
                if arg.other_step:
                    continue
                if arg.name in self.lets:
                    pending.append(arg.name)
                else:
                    found.add(arg.name)
        return found


def _default_model_name(path: str) -> str:
    stem = Path(path).stem
    return stem if stem and not stem.startswith("<") else "model"


def build_scope(spec: ast.Spec, report: Callable[[Diagnostic], None]) -> Scope:
    scope = Scope(model_name=_default_model_name(spec.path))
    for index, (statement, within) in enumerate(ast.flat_statements(spec.statements)):
        if isinstance(statement, ast.ModelDecl):
            _declare_model(scope, statement, index, report)
        elif isinstance(statement, (ast.VarDecl, ast.LetDecl, ast.ParamDecl, ast.NetDecl)):
            _declare_name(scope, statement, index, report)
            repeats = isinstance(statement, (ast.VarDecl, ast.LetDecl))  # a net or param is one for all steps
            if within is not None and repeats and statement.name.name in scope.order:
                if scope.order[statement.name.name] == index:  # this declaration, not a duplicate's first
                    scope.repeat_of[statement.name.name] = within.index.name
        elif isinstance(statement, ast.Repeat):
            _declare_repeat(scope, statement, index, report)
        elif isinstance(statement, ast.Factor):
            key = (statement.model, statement.variable.name)
            first = scope.factors.get(key)
            if first is not None:
                report(
                    error(
                        "E0204",
                        f"`{statement.variable.name}` has two {statement.model} factors",
                        statement.variable.span,
                        help=f"keep one `{statement.model}({statement.variable.name} | ...)` line",
                        note=f"the first is at {first.span.line}:{first.span.column}",
                    )
                )
            else:
                scope.factors[key] = statement
                scope.written[key] = index
                scope.written_in[key] = within.index.name if within is not None else None
        elif isinstance(statement, ast.ObjectiveDecl):
            if scope.objective is not None:
                first_span = scope.objective.span
                report(
                    error(
                        "E0703",
                        "the objective is given twice",
                        statement.kind.span,
                        help="keep one `objective` line",
                        note=f"the first is at {first_span.line}:{first_span.column}",
                    )
                )
            else:
                scope.objective = statement
    _reserve_indices(scope, report)
    return scope


def _reserve_indices(scope: Scope, report) -> None:
    """A repeat's index names its steps (`name[k - 1]`): no variable, `let` or network may take
    the same name, or a step reference would read as either."""
    for name, repeat in scope.repeats.items():
        declaration = scope.declaration(name)
        if declaration is not None:
            report(
                error(
                    "E0101",
                    f"`{name}` is the index of `repeat {name}` and cannot also be declared",
                    declaration.name.span,
                    help=f"rename this declaration, or the index (`repeat j < {_bound_text(repeat)}`)",
                    note=f"the repeat is at {repeat.span.line}:{repeat.span.column}",
                )
            )


def _bound_text(repeat: ast.Repeat) -> str:
    return repeat.bound.name if repeat.bound is not None else "count"


def _declare_repeat(scope: Scope, statement: ast.Repeat, index: int, report) -> None:
    name = statement.index.name
    first = scope.repeats.get(name)
    if first is not None:
        report(
            error(
                "E0804",
                f"two repeats use the index `{name}`",
                statement.index.span,
                help="give each `repeat` its own index, so a step reference names one of them",
                note=f"the first is at {first.span.line}:{first.span.column}",
            )
        )
        return
    scope.repeats[name] = statement
    scope.repeat_order[name] = index


def _declare_model(scope: Scope, statement: ast.ModelDecl, index: int, report) -> None:
    if scope.model_decl is not None:
        report(
            error(
                "E0107",
                "the model is named twice",
                statement.name.span,
                help="keep one `model` line",
                note=f"it is named `{scope.model_decl.name.name}` at {scope.model_decl.span.line}:1",
            )
        )
        return
    if index != 0:
        report(
            error(
                "E0107",
                "`model NAME` must be the first statement",
                statement.span,
                help="move this line to the top of the file",
            )
        )
    scope.model_decl = statement
    scope.model_name = statement.name.name


def _declare_name(
    scope: Scope, statement: ast.VarDecl | ast.LetDecl | ast.ParamDecl | ast.NetDecl, index: int, report
) -> None:
    name = statement.name.name
    first = scope.declaration(name)
    if first is not None:
        report(
            error(
                "E0101",
                f"`{name}` is declared twice",
                statement.name.span,
                help="variables, `let` nodes and networks share one namespace; rename one of them",
                note=f"first declared at {first.name.span.line}:{first.name.span.column}",
            )
        )
        return
    if isinstance(statement, ast.VarDecl):
        scope.variables[name] = statement
        scope.order[name] = index
    elif isinstance(statement, ast.LetDecl):
        scope.lets[name] = statement
        scope.order[name] = index
    elif isinstance(statement, ast.ParamDecl):
        scope.params[name] = statement
        scope.order[name] = index
    else:
        scope.nets[name] = statement


def argument_names(distribution: ast.Distribution) -> list[ast.Ident]:
    """Every name a distribution's arguments read: network inputs and bare references."""
    names: list[ast.Ident] = []  # `h[k - 1]` included: callers that want one step skip `.other_step`
    info = DISTRIBUTIONS.get(distribution.name.name)
    options = {o.name for o in info.options} if info is not None else set()
    for arg in distribution.args:
        if arg.keyword is not None and arg.keyword.name in options:
            continue  # an option is a number (distargs.py reports anything else), never a name read
        if isinstance(arg.value, ast.NetCall):
            names.extend(arg.value.args)
        elif isinstance(arg.value, ast.Reference) and arg.value.name.name != "uniform":
            names.append(arg.value.name)
    return names


def networks_reading(distribution: ast.Distribution, name: str) -> tuple[str, ...]:
    """The networks through which a distribution reads `name` (none for a bare reference)."""
    found: list[str] = []
    for arg in distribution.args:
        if isinstance(arg.value, ast.NetCall) and any(a.name == name and not a.other_step for a in arg.value.args):
            if arg.value.net.name not in found:
                found.append(arg.value.net.name)
    return tuple(found)


def dependency_edges(scope: Scope, model: str) -> list[Edge]:
    """The edges (source, target, networks) of the p or q graph, `let` nodes included.

    A factor's inputs point at its variable, labelled with the networks that read them;
    a declared parent read only through `let` nodes is reached along their edges, and a
    parent not read at all still gets a bare edge, so the graph keeps the factorisation.
    """
    edges: list[Edge] = []
    # the lets the graph computes: those its factors read (at this step or the step before),
    # and what those read, at either step; a let read only at the step before is computed too,
    # and kept, or the step after would find no value to read
    used_lets: list[str] = []
    for (factor_model, variable), factor in scope.factors.items():
        if factor_model != model or variable not in scope.variables:
            continue
        if model == "q" and scope.variables[variable].role == "observed":
            continue  # an error of its own (E0201); observed variables are roots of q
        direct = {ident.name for ident in argument_names(factor.distribution) if not ident.other_step}
        through_lets = set().union(*(scope.let_variable_inputs(n) for n in direct if n in scope.lets))
        for name in sorted(direct, key=lambda n: scope.order.get(n, -1)):
            if name in scope.order and name != variable:
                edges.append((name, variable, networks_reading(factor.distribution, name)))
                if name in scope.lets:
                    used_lets.append(name)
        used_lets += [i.name for i in argument_names(factor.distribution) if i.other_step and i.name in scope.lets]
        for parent in factor.parents:
            known = parent.name in scope.order and parent.name != variable
            if known and parent.name not in direct and parent.name not in through_lets:
                edges.append((parent.name, variable, ()))
    seen: set[str] = set()
    while used_lets:
        let = used_lets.pop()
        if let in seen:
            continue
        seen.add(let)
        call = scope.lets[let].call
        for arg in call.args:
            if arg.name in scope.order and arg.name != let and not arg.other_step:
                edges.append((arg.name, let, (call.net.name,)))
            if arg.name in scope.lets and arg.name != let:
                used_lets.append(arg.name)
    return edges


def lets_computed(scope: Scope, model: str) -> set[str]:
    """Every let the p or q graph computes: those its factors read at this step or the step
    before, and what those read, at either step (dependency_edges gives their edges; a let
    whose reads are all of the step before has none, and is a node all the same)."""
    seeds = [
        ident.name
        for (factor_model, variable), factor in scope.factors.items()
        if factor_model == model and variable in scope.variables
        and not (model == "q" and scope.variables[variable].role == "observed")
        for ident in argument_names(factor.distribution)
        if ident.name in scope.lets
    ]  # fmt: skip
    computed: set[str] = set()
    while seeds:
        let = seeds.pop()
        if let not in computed:
            computed.add(let)
            seeds += [arg.name for arg in scope.lets[let].call.args if arg.name in scope.lets]
    return computed


def block_of(index: str) -> str:
    """The node that stands for `repeat index` in `blocks`."""
    return f"repeat {index}"


def blocks(scope: Scope, graph: nx.DiGraph) -> nx.DiGraph:
    """The graph with each repeat's nodes as one node, `block_of(index)`, after its bound: a
    repeat runs as one loop, after its bound and what its steps read, and before what reads
    its `let`s (the checker's cycle rule and the lowering's order both use it)."""
    contracted = nx.relabel_nodes(graph, {name: block_of(index) for name, index in scope.repeat_of.items()}, copy=True)
    contracted.remove_edges_from(list(nx.selfloop_edges(contracted)))
    for index, repeat in scope.repeats.items():
        if repeat.bound is not None and repeat.bound.name in contracted and block_of(index) in contracted:
            contracted.add_edge(repeat.bound.name, block_of(index))
    return contracted
