"""Pretty-printing: `ast.Spec` -> canonical spec text. `parse(pretty(spec)) == spec` for
every spec (spans aside); comments are not part of the AST and are not kept."""

from __future__ import annotations

from . import ast


def pretty(spec: ast.Spec) -> str:
    return "".join(statement_text(s) + "\n" for s in spec.statements)


def statement_text(statement: ast.Statement) -> str:
    if isinstance(statement, ast.ModelDecl):
        return f"model {statement.name.name}"
    if isinstance(statement, ast.VarDecl):
        return f"{statement.role} {statement.name.name} : {type_text(statement.type)}"
    if isinstance(statement, ast.LetDecl):
        return f"let {statement.name.name} : {type_text(statement.type)} = {call_text(statement.call)}"
    if isinstance(statement, ast.Factor):
        return factor_text(statement)
    if isinstance(statement, ast.NetDecl):
        return f"net {statement.name.name} = {statement.builder.name}({options_text(statement.options)})"
    if isinstance(statement, ast.ObjectiveDecl):
        return f"objective {statement.kind.name}({options_text(statement.options)})"
    raise TypeError(f"not a statement: {statement!r}")


def factor_text(factor: ast.Factor) -> str:
    parents = " | " + ", ".join(p.name for p in factor.parents) if factor.parents else ""
    args = ", ".join(_dist_arg_text(a) for a in factor.distribution.args)
    text = f"{factor.model}({factor.variable.name}{parents}) = {factor.distribution.name.name}({args})"
    if factor.estimator is not None:
        options = f"({options_text(factor.estimator.options)})" if factor.estimator.options else ""
        text += f" by {factor.estimator.name.name}{options}"
    return text


def type_text(type_expr: ast.TypeExpr) -> str:
    return f"{type_expr.base.name}[{', '.join(str(n) for n in type_expr.shape)}]"


def call_text(call: ast.NetCall) -> str:
    return f"{call.net.name}({', '.join(a.name for a in call.args)})"


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


def _dist_arg_text(arg: ast.DistArg) -> str:
    value = arg.value
    if isinstance(value, ast.Number):
        text = number_text(value.value)
    elif isinstance(value, ast.Reference):
        text = value.name.name
    else:
        text = call_text(value)
    return f"{arg.keyword.name} = {text}" if arg.keyword is not None else text
