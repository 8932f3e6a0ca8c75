"""The compiler: the `.gm` language, phase by phase, each a pure function of the last one's
result (docs/architecture.md walks a spec through them):

    parser     text -> ast.Spec                      (grammar/gm.lark, Lark LALR)
    checker    ast.Spec -> CheckedSpec               (scope, bound arguments, widths, diagnostics)
    lowering   CheckedSpec -> ir.ModelIR             (the typed model graph)
    analyses   ir.ModelIR -> facts                   (constant supervised weights, ...)
    emit       ir.ModelIR -> Python source           (+ docstring.py: the objective as a formula)

and the views of their results: diagnostics (rendering), pretty (spec text), draw (pictures),
reference (docs/reference.md). `gmdsl/build.py` strings the phases together.
"""
