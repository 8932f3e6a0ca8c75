"""Pretty-printing: `ast.Spec` -> canonical spec text. `parse(pretty(spec)) == spec` for
every spec (spans aside); comments are not part of the AST and are not kept."""

from __future__ import annotations

from collections.abc import Iterable

from . import ast


def pretty(spec: ast.Spec) -> str:
    return "".join(statement_text(s) + "\n" for s in spec.statements)


def statement_text(statement: ast.Statement, indent: str = "") -> str:
    if isinstance(statement, ast.Repeat):
        bound = f" < {statement.bound.name}" if statement.bound is not None else ""
        body = "".join(statement_text(s, indent + "    ") + "\n" for s in statement.body)
        return f"{indent}repeat {statement.index.name}{bound} {{\n{body}{indent}}}"
    return indent + _line_text(statement)


def _line_text(statement: ast.Statement) -> str:
    if isinstance(statement, ast.ModelDecl):
        return f"model {statement.name.name}"
    if isinstance(statement, ast.VarDecl):
        return f"{statement.role} {statement.name.name} : {type_text(statement.type)}"
    if isinstance(statement, ast.LetDecl):
        return f"let {statement.name.name} : {type_text(statement.type)} = {call_text(statement.call)}"
    if isinstance(statement, ast.ParamDecl):
        initial = statement.initial
        if initial is None:
            start = ""
        elif isinstance(initial, ast.Number):
            start = f" = {number_text(initial.value)}"
        else:
            start = f" = {numbers_text(item.value for item in initial.items)}"
        return f"param {statement.name.name} : {type_text(statement.type)}{start}"
    if isinstance(statement, ast.Factor):
        return factor_text(statement)
    if isinstance(statement, ast.NetDecl):
        return f"net {statement.name.name} = {statement.builder.name}({options_text(statement.options)})"
    if isinstance(statement, ast.ObjectiveDecl):
        return f"objective {statement.kind.name}({options_text(statement.options)})"
    raise TypeError(f"not a statement: {statement!r}")


def factor_text(factor: ast.Factor) -> str:
    options = [f"{o.key.name} = {literal_text(o.value)}" for o in factor.estimator.options] if factor.estimator else []
    return factor_line(
        factor.model,
        factor.variable.name,
        [ref_text(p) for p in factor.parents],
        factor.distribution.name.name,
        [_dist_arg_text(a) for a in factor.distribution.args],
        factor.estimator.name.name if factor.estimator else None,
        options,
    )


def factor_line(
    model: str,
    variable: str,
    parents: list[str],
    distribution: str,
    arguments: list[str],
    estimator: str | None = None,
    estimator_options: list[str] | None = None,
) -> str:
    """The one layout of a factor, from the text of its parts (the spec's, or the IR's):
    `q(y | x) = Categorical(logits = classifier(x)) by relaxation(temperature = 0.66)`."""
    text = f"{factor_head(model, variable, parents)} = {distribution}({', '.join(arguments)})"
    if estimator is not None:
        text += f" by {estimator}" + (f"({', '.join(estimator_options)})" if estimator_options else "")
    return text


def factor_head(model: str, variable: str, parents: list[str]) -> str:
    """`p(x | y, z)`, or `p(z)` without parents."""
    return f"{model}({variable}{' | ' + ', '.join(parents) if parents else ''})"


def type_text(type_expr: ast.TypeExpr) -> str:
    return f"{type_expr.base.name}[{', '.join(str(n) for n in type_expr.shape)}]"


def ref_text(ident: ast.Ident) -> str:
    """A name as a reference writes it: `canvas`, `digit[k]`, `canvas[k - 1]`."""
    step = ident.step
    if step is None:
        return ident.name
    offset = f" {'+' if step.offset > 0 else '-'} {abs(step.offset)}" if step.offset else ""
    return f"{ident.name}[{step.index.name}{offset}]"


def call_text(call: ast.NetCall) -> str:
    return network_call_text(call.net.name, [ref_text(a) for a in call.args])


def network_call_text(network: str, inputs: list[str]) -> str:
    return f"{network}({', '.join(inputs)})"


def options_text(options: tuple[ast.Option, ...]) -> str:
    return ", ".join(f"{o.key.name} = {literal_text(o.value)}" for o in options)


def literal_text(value: ast.Literal) -> str:
    if isinstance(value, ast.Number):
        return number_text(value.value)
    if isinstance(value, ast.Word):
        return value.word
    return "[" + ", ".join(literal_text(item) for item in value.items) + "]"


def number_text(value: int | float) -> str:
    # repr keeps every digit of a float and marks it as one ("1.0"), so it parses back the same
    return str(value) if isinstance(value, int) else repr(float(value))


def numbers_text(values: Iterable[int | float]) -> str:
    """A list constant as the language writes it: `[0.36, 0, 0]`."""
    return "[" + ", ".join(number_text(value) for value in values) + "]"


def _dist_arg_text(arg: ast.DistArg) -> str:
    value = arg.value
    if isinstance(value, ast.Number):
        text = number_text(value.value)
    elif isinstance(value, ast.Vector):
        text = numbers_text(item.value for item in value.items)
    elif isinstance(value, ast.Reference):
        text = ref_text(value.name)
    else:
        text = call_text(value)
    return f"{arg.keyword.name} = {text}" if arg.keyword is not None else text
