"""The checker's rules for one factor: its variable, its parents, what its distribution's
arguments read, and its estimator. Each rule reports what it finds and goes on."""

from __future__ import annotations

import math

from gmdsl.runtime.registry import (
    DEFAULT_ESTIMATOR,
    DISTRIBUTIONS,
    ENUMERATION_LIMIT,
    ESTIMATORS,
    DistributionInfo,
    discrete_values,
)

from . import ast
from .checked import CheckedFactor, ResolvedOptions
from .diagnostics import error, unknown, warning
from .distargs import check_distribution
from .options import resolve_options
from .rules import Rules
from .scope import argument_names


class FactorRules(Rules):
    def check_factor(self, factor: ast.Factor) -> CheckedFactor | None:
        """Check one factor; what it resolves to, for the first factor of its variable in
        its model (a repeat is reported by the scope), else None."""
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
            return None
        self.check_parents(factor)
        if scope.factor(factor.model, name) is factor:
            checked = check_distribution(factor, variable, scope, self.report)
            self.check_inputs_are_parents(factor)
            estimator = self.check_estimator(factor, variable)
            if checked is not None:
                info, bound, options = checked
                return CheckedFactor(factor, info, bound, self.estimator_of(factor, info, estimator), options)
        return None

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
            if parent.other_step:
                pass  # a step reference among the parents: repeat_rules.py says what is wrong, once
            elif parent.name == factor.variable.name:
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
            elif parent.name in self.scope.params:
                self.report(
                    error(
                        "E0207",
                        f"`{parent.name}` is a learned constant (`param`), not a variable",
                        parent.span,
                        help=f"remove it from the parents: a factor reads `{parent.name}` without listing it",
                    )
                )
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
            if ident.other_step and (name in scope.lets or name in scope.variables):
                # another step is history, not a parent: repeat_rules.py checks the step, and a
                # parent read so has an error of its own there, so no warning that it is unused
                read.add(name)
                continue
            if name in scope.lets:
                inputs = scope.let_variable_inputs(name)
                read |= inputs
                home = scope.repeat_of.get(name)
                if home is not None and scope.written_in.get((factor.model, variable)) != home:
                    # read after its block, at the last step that holds: the bound decides which, so
                    # listing the bound as a parent is right (and not listing it is allowed)
                    bound = scope.repeats[home].bound
                    read |= {bound.name} if bound is not None else set()
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
            elif name in scope.params:
                continue  # a learned constant: read by any factor, listed as no one's parent
            elif name in scope.nets:
                self.report(
                    error("E0103", f"`{name}` is a network, not a variable", ident.span, help=f"call it: `{name}(...)`")
                )
            elif name not in parents:  # an unknown parent is reported by check_parents
                self.unknown_name(ident, "variable", {**scope.variables, **scope.lets, **scope.params})
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
        choices, count = discrete_values(variable.type.base.name, variable.type.shape)
        if choices < 1:  # an empty shape, reported as E0501 already
            return
        if count * math.log(choices) > math.log(ENUMERATION_LIMIT):  # choices ** count may be astronomical
            self.report(
                error(
                    "E0603",
                    f"enumerating `{variable.name.name}` would sum over {choices}^{count} values",
                    estimator.span,
                    help=f"enumeration is for at most {ENUMERATION_LIMIT} values; use `by relaxation`",
                )
            )


def _with_parent(factor: ast.Factor, name: str) -> str:
    parents = ", ".join([p.name for p in factor.parents] + [name])
    return f"`{factor.model}({factor.variable.name} | {parents})`"
