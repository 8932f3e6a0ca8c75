"""Distribution arguments: binding them to the distribution's parameters, and checking
each bound value (numbers against constraints, `uniform`, bare references).

`check_distribution` is the checker's rule for one factor's right-hand side: it binds the
arguments once (`bind`) and hands the binding on, inside the checked spec, to the width
inference and the lowering.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gmdsl.runtime.registry import (
    CONSTRAINTS,
    DISTRIBUTIONS,
    TYPES,
    DistributionInfo,
    Param,
    distributions_for,
    parameter_width,
)

from . import ast
from .diagnostics import Diagnostic, did_you_mean, error, unknown
from .options import resolve_options
from .pretty import ref_text
from .scope import Scope

# how far from 1 a list of probabilities may sum and still be accepted (0.3333 three times is
# 0.9999): the runtime normalises them, so rounding in the written digits changes nothing
PROBABILITY_ROUNDING = 1e-3


@dataclass(frozen=True)
class Bound:
    """A value and the parameters it gives (several when one network emits them all)."""

    params: tuple[Param, ...]
    value: ast.ArgValue


def split_options(
    info: DistributionInfo, distribution: ast.Distribution, report
) -> tuple[tuple[ast.DistArg, ...], dict[str, Any]]:
    """The arguments that give parameters, and the distribution's options (`rank = 2`,
    `components = 3`: whole numbers that fix its parameters' sizes), defaults filled in."""
    names = {o.name for o in info.options}
    given: list[ast.Option] = []
    for arg in distribution.args:
        if arg.keyword is None or arg.keyword.name not in names:
            continue
        if isinstance(arg.value, ast.Number):
            given.append(ast.Option(arg.keyword, arg.value, arg.span))
        else:
            option = next(o for o in info.options if o.name == arg.keyword.name)
            report(
                error(
                    "E0310",
                    f"option `{option.name}` of {info.name} must be {option.describe()}",
                    arg.value.span,
                    help=f"write a number: `{option.name} = {option.default}`",
                )
            )
    options = resolve_options(tuple(given), info.options, info.name, "E0310", report)
    rest = tuple(arg for arg in distribution.args if arg.keyword is None or arg.keyword.name not in names)
    return rest, options


def bind(
    info: DistributionInfo, distribution: ast.Distribution, args: tuple[ast.DistArg, ...] | None = None
) -> tuple[list[Bound], list[Diagnostic]]:
    """Bind a distribution's arguments (those that are not options) to parameters: keyword,
    positional in the first parameterisation's order, or one network call that emits the
    whole parameterisation."""
    args = distribution.args if args is None else args
    if len(args) == 1 and args[0].keyword is None and isinstance(args[0].value, ast.NetCall):
        return [Bound(info.emitted(), args[0].value)], []
    problems: list[Diagnostic] = []
    bound: list[Bound] = []
    taken: dict[str, ast.DistArg] = {}
    by_name = {p.name: p for ps in info.parameterisations for p in ps}
    positional = info.positional()
    for index, arg in enumerate(args):
        if arg.keyword is None:
            if index >= len(positional):
                problems.append(
                    error(
                        "E0304",
                        f"{info.name} takes at most {len(positional)} positional "
                        f"argument{'s' * (len(positional) != 1)}",
                        arg.span,
                        help=f"its parameters are {_names(positional)}",
                    )
                )
                continue
            param = positional[index]
        else:
            named = by_name.get(arg.keyword.name)
            if named is None:
                problems.append(
                    error(
                        "E0302",
                        f"{info.name} has no parameter `{arg.keyword.name}`",
                        arg.keyword.span,
                        help=did_you_mean(arg.keyword.name, by_name) or f"its parameters are {_alternatives(info)}",
                    )
                )
                continue
            param = named
        if param.name in taken:
            problems.append(error("E0304", f"`{param.name}` is given twice", arg.span))
            continue
        taken[param.name] = arg
        bound.append(Bound((param,), arg.value))
    if problems:
        return bound, problems
    return bound, _check_parameterisation(info, distribution, taken)


def _check_parameterisation(
    info: DistributionInfo, distribution: ast.Distribution, taken: dict[str, ast.DistArg]
) -> list[Diagnostic]:
    matching = [ps for ps in info.parameterisations if set(taken) <= {p.name for p in ps}]
    if not matching:
        return [
            error(
                "E0308",
                f"{info.name} is given {_names(taken)}, which belong to different parameterisations",
                distribution.span,
                help=f"give one of: {_alternatives(info)}",
            )
        ]
    missing = [p.name for p in matching[0] if p.name not in taken]
    if len(matching) > 1 or not missing:
        return [] if taken else [_missing(info, distribution, info.positional())]
    return [_missing(info, distribution, [p for p in matching[0] if p.name in missing])]


def _missing(info: DistributionInfo, distribution: ast.Distribution, params) -> Diagnostic:
    example = ", ".join(f"{p.name} = ..." for p in params)
    return error(
        "E0303",
        f"{info.name} needs {_names(params)}",
        distribution.span,
        help=f"add {example}, or let one network emit every parameter: `{info.name}(net(...))`",
    )


def _names(params) -> str:
    names = [f"`{p if isinstance(p, str) else p.name}`" for p in params]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _alternatives(info: DistributionInfo) -> str:
    return " or ".join("(" + ", ".join(p.name for p in ps) + ")" for ps in info.parameterisations)


def check_distribution(
    factor: ast.Factor, variable: ast.VarDecl, scope: Scope, report: Callable[[Diagnostic], None]
) -> tuple[DistributionInfo, tuple[Bound, ...], dict[str, Any]] | None:
    """The distribution, its bound arguments (those that bind; each problem is reported) and
    its options, or None for an unknown distribution."""
    distribution = factor.distribution
    info = DISTRIBUTIONS.get(distribution.name.name)
    if info is None:
        report(unknown("E0102", "distribution", distribution.name.name, distribution.name.span, DISTRIBUTIONS))
        return None
    type_name = variable.type.base.name
    if type_name in TYPES and type_name not in info.support:
        fitting = distributions_for(type_name)
        report(
            error(
                "E0301",
                f"{info.name} is a distribution on {' or '.join(info.support)} values, but "
                f"`{variable.name.name}` is {type_name}",
                distribution.name.span,
                help="for a " + type_name + " variable use " + " or ".join(f"`{d}`" for d in fitting),
            )
        )
    if factor.model == "q" and info.not_in_q:
        report(
            error(
                "E0311",
                f"{info.name} cannot be a q factor: {info.not_in_q}",
                distribution.name.span,
                help=_in_q_help(info, type_name),
            )
        )
    args, options = split_options(info, distribution, report)
    bound, problems = bind(info, distribution, args)
    for problem in problems:
        report(problem)
    for item in bound:
        _check_value(info, item, variable, options, scope, report)
    return info, tuple(bound), options


def _in_q_help(info: DistributionInfo, type_name: str) -> str:
    """What q may use instead of a distribution it cannot draw."""
    fitting = [d for d in distributions_for(type_name) if not DISTRIBUTIONS[d].not_in_q]
    if not fitting:
        return f"a {type_name} variable is observed data: declare it `observed`, with a p factor only"
    return "use " + " or ".join(f"`{d}`" for d in fitting[:3]) + " in q"


def _check_value(
    info: DistributionInfo, item: Bound, variable: ast.VarDecl, options: dict[str, Any], scope: Scope, report
) -> None:
    value = item.value
    for param in item.params:
        constraint = CONSTRAINTS[param.constraint]
        if param.size != "value" and isinstance(value, (ast.Vector, ast.Reference)):
            if not (isinstance(value, ast.Reference) and value.name.name == "uniform"):
                _check_sized(info, param, value, variable, options, scope, report)
                continue
        if isinstance(value, ast.Number) and not constraint.admits(value.value):
            report(
                error(
                    "E0305",
                    f"`{param.name}` of {info.name} must be {constraint.description}, not {value.value}",
                    value.span,
                )
            )
        elif isinstance(value, ast.Vector):
            _check_vector(info, param, value, variable, report)
        elif isinstance(value, ast.Reference) and value.name.name == "uniform":
            if param.constraint != "simplex":
                report(
                    error(
                        "E0306",
                        f"`uniform` gives a Categorical's probabilities, not `{param.name}` of {info.name}",
                        value.span,
                        help="write a number instead",
                    )
                )
        elif isinstance(value, ast.Reference):
            _check_reference(info, param, value, variable, scope, report)


def _check_sized(
    info: DistributionInfo,
    param: Param,
    value: ast.Vector | ast.Reference,
    variable: ast.VarDecl,
    options: dict[str, Any],
    scope: Scope,
    report,
) -> None:
    """A list or a name given for a parameter that is not one number per element of the
    variable (a covariance factor, mixture weights, a member's parameter per component): it
    holds exactly as many numbers as the parameter, each within its constraint."""
    width = parameter_width(param, math.prod(variable.type.shape), options)
    what = {
        "rank": f"{math.prod(variable.type.shape)} x rank {options.get('rank')}",
        "components": f"one per component ({options.get('components')})",
        "component_values": f"one per component and element ({options.get('components')} x "
        f"{math.prod(variable.type.shape)})",
    }[param.size]
    if isinstance(value, ast.Vector):
        count = len(value.items)
        constraint = CONSTRAINTS[param.constraint]
        for item in value.items:
            ok = item.value >= 0 if param.constraint == "simplex" else constraint.admits(item.value)
            if not ok:
                report(
                    error(
                        "E0305",
                        f"each of `{param.name}` of {info.name} must be {constraint.description}, not {item.value}",
                        item.span,
                    )
                )
        if (
            param.constraint == "simplex"
            and count == width
            and abs(sum(i.value for i in value.items) - 1) > PROBABILITY_ROUNDING
        ):
            report(
                error(
                    "E0305", f"`{param.name}` of {info.name} must sum to 1", value.span, help="divide each by their sum"
                )
            )
    else:
        declaration = scope.value(value.name.name)
        if declaration is None:
            return  # unknown names are reported once, by the parent rule
        count = math.prod(declaration.type.shape)
        constraint = CONSTRAINTS[param.constraint]
        if declaration.type.base.name not in constraint.accepts_types:
            report(
                error(
                    "E0307",
                    f"`{param.name}` of {info.name} must be {constraint.description}, but `{value.name.name}` is "
                    f"{declaration.type.base.name}",
                    value.span,
                    help=f"pass it through a network: `{param.name} = net({value.name.name})`",
                )
            )
    if count != width:
        report(
            error(
                "E0309",
                f"`{param.name}` of {info.name} holds {width} numbers here ({what}), but this gives {count}",
                value.span,
                help=f"give {width} numbers, one number for all of them, or let a network give `{param.name}`",
            )
        )


def _check_vector(info: DistributionInfo, param: Param, value: ast.Vector, variable: ast.VarDecl, report) -> None:
    """A list of numbers: one per element of a one-dimensional variable (per class of a
    Categorical's groups), each within the parameter's constraint; probabilities sum to 1."""
    shape = variable.type.shape
    name = variable.name.name
    simplex = param.constraint == "simplex"
    if not simplex and len(shape) != 1:
        report(
            error(
                "E0309",
                f"a list gives one `{param.name}` per element of a one-dimensional variable, but `{name}` "
                f"has shape {list(shape)}",
                value.span,
                help=f"give one number for all its elements, or let a network give `{param.name}`",
            )
        )
        return
    if len(value.items) != shape[-1]:
        report(
            error(
                "E0309",
                f"`{param.name}` lists {len(value.items)} number{'s' * (len(value.items) != 1)}, but `{name}` "
                f"has {shape[-1]} {'classes' if simplex else 'elements'}",
                value.span,
                help=f"give exactly {shape[-1]}, one per {'class' if simplex else 'element'}",
            )
        )
        return
    constraint = CONSTRAINTS[param.constraint]
    for item in value.items:
        if simplex and not item.value >= 0:  # 0 rules a class out (q never proposes it)
            report(error("E0305", f"each of `{param.name}` of {info.name} must be >= 0, not {item.value}", item.span))
        elif not simplex and not constraint.admits(item.value):
            report(
                error(
                    "E0305",
                    f"each of `{param.name}` of {info.name} must be {constraint.description}, not {item.value}",
                    item.span,
                )
            )
    total = sum(item.value for item in value.items)
    if simplex and abs(total - 1) > PROBABILITY_ROUNDING:  # within it, the runtime normalises them
        report(
            error(
                "E0305",
                f"`{param.name}` of {info.name} must sum to 1, but these sum to {total:g}",
                value.span,
                help="divide each by their sum (a sum within 0.001 of 1, as rounding leaves it, is accepted)",
            )
        )


def _check_reference(
    info: DistributionInfo, param: Param, value: ast.Reference, variable: ast.VarDecl, scope: Scope, report
) -> None:
    """A bare name passed as a parameter: its type must satisfy the parameter's constraint
    and its shape must be the variable's."""
    name = value.name.name
    declaration = scope.value(name)
    if declaration is None:
        return  # unknown names are reported once, by the parent rule
    constraint = CONSTRAINTS[param.constraint]
    simplex_param = param.constraint == "simplex"
    source_type = declaration.type.base.name
    if value.name.earlier and not constraint.admits(0):
        report(
            error(
                "E0808",
                f"at step 1, `{ref_text(value.name)}` is zeros, but `{param.name}` of {info.name} must be "
                f"{constraint.description}",
                value.span,
                help=f"pass it through a network, whose link keeps it in range: `{param.name} = "
                f"net({ref_text(value.name)})`",
            )
        )
    if source_type not in constraint.accepts_types:
        report(
            error(
                "E0307",
                f"`{param.name}` of {info.name} must be {constraint.description}, but `{name}` is {source_type}",
                value.span,
                help=f"pass it through a network: `{param.name} = net({name})`",
            )
        )
    # a learned constant of one number serves every element (one noise scale for a whole image)
    one_for_all = isinstance(declaration, ast.ParamDecl) and declaration.type.shape == (1,) and not simplex_param
    if declaration.type.shape != variable.type.shape and not one_for_all:
        shape = ", ".join(map(str, variable.type.shape))
        fix = (
            f"declare it `param {name} : {source_type}[{shape}]`"
            + ("" if param.constraint == "simplex" else f", or `[1]` for one {param.name} for every element")
            if isinstance(declaration, ast.ParamDecl)
            else f"pass it through a network: `{param.name} = net({name})`"
        )
        report(
            error(
                "E0307",
                f"`{name}` has shape {list(declaration.type.shape)}, but `{param.name}` of "
                f"`{variable.name.name}` needs shape {list(variable.type.shape)}",
                value.span,
                help=fix,
            )
        )
