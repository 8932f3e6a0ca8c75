"""The checker's rules for `repeat k < count { ... }` blocks: the bound, what a block may hold,
where its variables are read, which steps a reference may name, and what may repeat.

A repeat's statements hold once per step k = 1..K_max (count is onehot[K_max + 1]); inside it a
bare name or `name[k]` reads this step, `name[k - 1]` the step before (zeros before the first).
Outside it (at the top level, or in another repeat), a repeated variable or `let` reads as its
value at the last step that holds (step `count`, zeros at count 0).
"""

from __future__ import annotations

from collections.abc import Iterator

from . import ast
from .diagnostics import error
from .pretty import ref_text
from .rules import Rules
from .scope import argument_names

_NOT_REPEATED = {
    ast.ModelDecl: "`model` names the whole spec: write it first, outside any `repeat`",
    ast.NetDecl: "a network is shared by every step: declare it outside the `repeat` and call it inside",
    ast.ParamDecl: "a learned constant is shared by every step: declare it outside the `repeat` and read it inside",
    ast.ObjectiveDecl: "the objective belongs to the whole model: write it outside the `repeat`",
    ast.Repeat: "repeats do not nest: write the inner block after this one, with its own bound",
}


class RepeatRules(Rules):
    def check_repeats(self, spec: ast.Spec) -> None:
        for statement, within in ast.flat_statements(spec.statements):
            if within is not None and type(statement) in _NOT_REPEATED:
                keyword = statement.span  # the whole statement: it is the statement that is misplaced
                self.report(
                    error(
                        "E0803",
                        f"a `repeat` cannot hold {_what(statement)}",
                        keyword,
                        help=_NOT_REPEATED[type(statement)],
                    )
                )
            if isinstance(statement, ast.Repeat) and within is None:
                self.check_bound(statement)
        self.check_references()
        self.check_factor_placement()
        self.check_repeated_variables()

    def check_bound(self, repeat: ast.Repeat) -> None:
        scope, index = self.scope, repeat.index.name
        bound = repeat.bound
        if bound is None:
            self.report(
                error(
                    "E0801",
                    f"`repeat {index}` needs its bound",
                    repeat.index.span,
                    help=f"write `repeat {index} < count`, where `count : onehot[K_max + 1]` says how many "
                    "of K_max steps hold",
                )
            )
            return
        declaration = scope.variables.get(bound.name)
        if declaration is None:
            if bound.name in scope.lets or bound.name in scope.params or bound.name in scope.nets:
                self.report(
                    error(
                        "E0802",
                        f"the bound `{bound.name}` is not a variable",
                        bound.span,
                        help="the bound is a onehot[K_max + 1] variable of the model (observed, supervised or latent)",
                    )
                )
            else:
                self.unknown_name(bound, "variable", scope.variables)
            return
        shape = declaration.type.shape
        if declaration.type.base.name != "onehot" or len(shape) != 1:
            self.report(
                error(
                    "E0802",
                    f"the bound `{bound.name}` is {declaration.type.base.name}[{', '.join(map(str, shape))}], "
                    "not a onehot count",
                    bound.span,
                    help=f"declare it `onehot[K_max + 1]`: its value 0..K_max says how many steps of "
                    f"`repeat {index}` hold",
                )
            )
        elif bound.name in scope.repeat_of:
            self.report(
                error(
                    "E0802",
                    f"the bound `{bound.name}` is declared inside a `repeat`",
                    bound.span,
                    help="declare the count outside every `repeat`: it decides how many steps there are",
                )
            )

    # --- references -----------------------------------------------------------------------

    def _references(self) -> Iterator[tuple[ast.Ident, str | None, bool]]:
        """Every name a factor or `let` reads: (the reference, the repeat it is written in,
        whether it is a parent)."""
        scope = self.scope
        for key, factor in scope.factors.items():
            within = scope.written_in.get(key)
            for parent in factor.parents:
                yield parent, within, True
            for ident in argument_names(factor.distribution):
                yield ident, within, False
        for name, let in scope.lets.items():
            for arg in let.call.args:
                yield arg, scope.repeat_of.get(name), False

    def check_references(self) -> None:
        """Which steps a reference names. A bare name of a repeat read outside its block (at
        the top level or in another repeat) reads its value at the last step that holds, a
        variable and a `let` alike; as a parent, a variable stands for all its steps."""
        scope = self.scope
        for ident, within, is_parent in self._references():
            if ident.step is not None:
                home = scope.repeat_of.get(ident.name)
                self.check_step(ident, within, home, scope.value(ident.name) is not None, is_parent)

    def check_step(self, ident: ast.Ident, within: str | None, home: str | None, known: bool, is_parent: bool) -> None:
        assert ident.step is not None
        index, offset = ident.step.index.name, ident.step.offset
        if within is None:
            self.report(
                error(
                    "E0804",
                    f"`{ref_text(ident)}` names a step, but it is not inside a `repeat`",
                    ident.step.span,
                    help=f"write `{ident.name}`"
                    + (f", or move this line into `repeat {home}`" if home is not None else ""),
                )
            )
        elif index != within:
            self.report(
                error(
                    "E0804",
                    f"`{index}` is not the index of this `repeat`",
                    ident.step.index.span,
                    help=f"this line is inside `repeat {within}`: write `{ident.name}[{within}]` or "
                    f"`{ident.name}[{within} - 1]`",
                )
            )
        elif known and home != within:
            self.report(
                error(
                    "E0804",
                    f"`{ident.name}` does not repeat in `repeat {within}`, so it has no steps",
                    ident.step.span,
                    help=f"write `{ident.name}`: it has one value, the same at every step",
                )
            )
        elif offset > 0:
            self.report(
                error(
                    "E0805",
                    f"step {index} cannot read a later step, `{ref_text(ident)}`",
                    ident.step.span,
                    help=f"a step reads its own values (`{ident.name}`) and the step before's "
                    f"(`{ident.name}[{index} - 1]`)",
                )
            )
        elif offset < -1:
            self.report(
                error(
                    "E0805",
                    f"a step reads at most one step back, not `{ref_text(ident)}`",
                    ident.step.span,
                    help="carry older values in a `let` that reads itself: "
                    f"`let h : real[64] = cell(x, h[{index} - 1])`",
                )
            )
        elif offset < 0 and is_parent:
            self.report(
                error(
                    "E0805",
                    f"the step before, `{ref_text(ident)}`, is not a parent",
                    ident.step.span,
                    help="list this step's variables as parents; a factor reads the step before without listing it",
                )
            )

    # --- factors and variables --------------------------------------------------------------

    def check_factor_placement(self) -> None:
        scope = self.scope
        for key, factor in scope.factors.items():
            _, name = key
            if name not in scope.variables:
                continue  # a factor of a let or an unknown name is reported elsewhere
            home, written = scope.repeat_of.get(name), scope.written_in.get(key)
            if home == written:
                continue
            if home is not None:
                message = f"`{name}` is declared in `repeat {home}`, so its factor is written there too"
                help_text = f"move this line into `repeat {home}`"
            else:
                message = f"`{name}` does not repeat, so its factor is written outside `repeat {written}`"
                help_text = f"move this line out of `repeat {written}`, or declare `{name}` inside it"
            self.report(error("E0806", message, factor.variable.span, help=help_text))

    def check_repeated_variables(self) -> None:
        scope = self.scope
        for name, index in scope.repeat_of.items():
            declaration = scope.variables.get(name)
            if declaration is None:
                continue
            # a label per step is a class (-1 where a step has none) or a value (NaN where it has
            # none); observed data has no steps to miss
            if declaration.role == "observed":
                self.report(
                    error(
                        "E0807",
                        "a repeated variable is latent or supervised, not observed",
                        declaration.span,
                        help=f"declare `latent {name}` or `supervised {name}` (its label per step of `repeat {index}` "
                        "may be missing), or declare it outside the `repeat`",
                    )
                )
            factor = scope.factor("q", name)
            if factor is not None and factor.estimator is not None and factor.estimator.name.name == "enumeration":
                self.report(
                    error(
                        "E0807",
                        f"`{name}` repeats, so it cannot be summed by enumeration",
                        factor.estimator.span,
                        help=f"the sum would run over every value at each of `repeat {index}`'s steps at once; "
                        "use `by relaxation`",
                    )
                )


def _what(statement: ast.Statement) -> str:
    return {
        ast.ModelDecl: "`model`",
        ast.NetDecl: "a `net`",
        ast.ParamDecl: "a `param`",
        ast.ObjectiveDecl: "the `objective`",
        ast.Repeat: "another `repeat`",
    }[type(statement)]
