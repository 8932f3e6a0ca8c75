"""The language reference, generated from the registry and the diagnostic codes:
`python -m gmdsl.compiler.reference > docs/reference.md` (a test keeps the committed copy current)."""

from __future__ import annotations

from gmdsl.runtime.registry import (
    CONSTRAINTS,
    DISTRIBUTIONS,
    ESTIMATORS,
    FUNCTIONS,
    NETWORK_BUILDERS,
    OBJECTIVES,
    TYPES,
    OptionSpec,
)

from .diagnostics import CODES


def _option_rows(options: tuple[OptionSpec, ...]) -> list[str]:
    return [f"| `{o.name}` | {o.describe()} | `{_literal(o.default)}` | {o.doc} |" for o in options]


def _literal(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


_PARAMS = [
    "",
    "## Learned constants (`param`)",
    "",
    "<!-- not run: a fragment that shows the syntax; tests/test_params.py checks whole specs that use it -->",
    "```",
    "param prior : simplex[10]            # a learned class prior, equal probabilities at the start",
    "param noise : positive[1] = 0.1      # one learned noise scale for every element",
    "param centre : real[50] = 0          # a learned prior mean",
    "p(y) = Categorical(probs = prior)",
    "p(z) = Normal(loc = centre, scale = 1)",
    "p(x | y, z) = Normal(loc = decoder(y, z), scale = noise)",
    "```",
    "",
    "- A `param` is one tensor trained with the networks, with no inputs. It is read wherever a variable "
    "or `let` is read (a distribution's argument, a network's or function's input), by any factor, without "
    "being listed as a parent (E0207); a `param` of shape `[1]` may stand for a parameter of any shape.",
    "- Its type is `real`, `positive`, `unit` or `simplex` (E0502), reached through the same link as a "
    "network's output (identity, softplus, sigmoid, softmax over the last size). The start, in the type's "
    "range, is one number for every element or one per element of a one-dimensional param (E0503); "
    "without one it starts at the link's neutral point: 0, softplus(0) = 0.69, 1/2, equal probabilities.",
    "- A `param` or network that p and q both read is one set of weights, held by q's module.",
    "",
]

_REPEATS = [
    "## Repeats: a random number of variables",
    "",
    "<!-- not run: a fragment that shows the syntax; tests/test_repeat.py checks whole specs that use it -->",
    "```",
    "supervised count : onehot[4]                  # 0 to K_max = 3 steps hold",
    "repeat k < count {",
    "    latent digit : onehot[10]                 # one value per step",
    "    p(digit) = Categorical(probs = uniform)",
    "    let canvas : real[1, 64, 64] = place(patch, where, canvas[k - 1])",
    "    let state  : real[256] = reader(features, digit[k - 1], state[k - 1])",
    "    q(digit | x) = Categorical(logits = classifier(state))",
    "}",
    "p(x | digit) = Normal(loc = canvas, scale = 0.1)   # canvas at step count",
    "```",
    "",
    "- The bound (`count`) is a variable declared outside every repeat, `onehot[K_max + 1]`, of any role: "
    "observed (known for every example), supervised or latent (E0801, E0802). The block's variables, "
    "`let`s and factors hold once per step k = 1..K_max; the "
    "steps past the bound's value add nothing to the objective, and a labelled count is scored like any label.",
    "- Inside the block a bare name (or `name[k]`) is this step's value and `name[k - 1]` the step before's, "
    "zeros before step 1 (E0804, E0805). A factor does not list the step before among its parents.",
    "- After the block (at the top level, or inside a later repeat), a `let` or a variable of the block "
    "reads as its value at the last step that holds (a canvas, a running sum, the last digit), zeros when "
    "the bound is 0; a factor may also list a repeated variable as a parent, meaning all its steps. Factors "
    "are written on the side of the block where their variable is declared (E0806).",
    "- `let pos : real[1] = step(k)` is the number of the step running, 1..K_max (a position code).",
    "- A repeated variable is latent or supervised, never observed (E0807). A supervised one's data gives "
    "a label per step: a class for a onehot, -1 where the step has none (`digits : int [N, K_max]`); a "
    "value for any other type, NaN where the step has none (`where : float [N, K_max, 3]`). A step "
    "without a label is inferred like any unlabelled value. A discrete one is relaxed, not enumerated "
    "(E0807). `net`, `objective`, `model` and nested repeats stay outside (E0803).",
    "- `gru` is the recurrent cell for a state carried from step to step: its last input is the state (E0410).",
    "- Compiled, a repeat is one loop over all K_max steps (`for _ in q.repeat(...)`), every row at once; "
    "the count then weights each step's log-densities, and `model.infer` / `model.sample` give a repeated "
    "variable's steps side by side, `[rows, K_max, *shape]`.",
    "",
]


def reference() -> str:
    lines = [
        "# gmdsl language reference",
        "",
        "Generated by `python -m gmdsl.compiler.reference` from `runtime/registry.py` and "
        "`gmdsl/compiler/diagnostics.py`.",
        "",
        "## Types",
        "",
        "| type | values | discrete |",
        "|---|---|---|",
    ]
    lines += [f"| `{t.name}` | {t.description} | {'yes' if t.discrete else 'no'} |" for t in TYPES.values()]
    lines += [
        "",
        "## Distributions",
        "",
        "Positional arguments follow the first parameterisation. `Dist(net(...))` with one network call "
        "emits the parameterisation marked *emitted*, each parameter through its link.",
        "",
        "An argument is a number (`scale = 0.1`, the same for every element), a list of numbers, one per "
        "element of a one-dimensional variable (`loc = [0.35, 0, 0]`) or per class of a Categorical "
        "(`probs = [0.1, 0.3, 0.3, 0.3]`, each >= 0, summing to 1), `uniform` (a Categorical's `probs`), a "
        "variable or `let` of the variable's shape, or a network call. Each number must meet its "
        "parameter's constraint (E0305); a list must fit its variable (E0309).",
        "",
        "A 0 in a Categorical's `probs` list rules its class out (`p(count) = Categorical(probs = [0, "
        "0.5, 0.5])`: a count of 1 or 2, never 0). The compiled model marks the class impossible "
        "(`rt.Variable(..., impossible=(0,))`): q never proposes it, whatever q's own factor says (its "
        "logits are masked, `by enumeration` sums over the other classes, a relaxed draw puts no mass "
        "there), p never draws it, and a label or `given` value naming it is a batch error.",
        "",
        "Some parameters hold other numbers than one per element: a `LowRankMultivariateNormal`'s "
        "`cov_factor` holds size x `rank`, a mixture's `weights` one per component and its members' "
        "parameters one per component and element (marked below). The options that fix those sizes are "
        "written among the arguments, as whole numbers: `NormalMixture(prior(y), components = 10)`, "
        "`LowRankMultivariateNormal(encoder(x), rank = 2)` (E0310).",
        "",
        "A distribution marked *p only* has no reparameterised draw and no estimator, so q cannot use it "
        "(E0311): a mixture is a prior or a likelihood, a count is observed data.",
        "",
        "| distribution | on types | parameterisations | emitted by one network | options | notes |",
        "|---|---|---|---|---|---|",
    ]
    sizes = {
        "rank": " (size x rank)",
        "components": " (per component)",
        "component_values": " (per component and element)",
    }
    for d in DISTRIBUTIONS.values():
        alternatives = " or ".join(
            "(" + ", ".join(f"{p.name}: {p.constraint}{sizes.get(p.size, '')}" for p in ps) + ")"
            for ps in d.parameterisations
        )
        emitted = ", ".join(p.name for p in d.emitted())
        options = ", ".join(f"`{o.name}`: {o.describe()}, default {o.default}" for o in d.options) or "none"
        notes = d.doc + ("; *p only*" if d.not_in_q else "")
        lines.append(f"| `{d.name}` | {', '.join(d.support)} | {alternatives} | {emitted} | {options} | {notes} |")
    lines += ["", "## Parameter constraints", "", "| constraint | means | network output link |", "|---|---|---|"]
    lines += [f"| {c.name} | {c.description} | {c.link} |" for c in CONSTRAINTS.values()]
    lines += _PARAMS
    lines += ["", "## Network builders", ""]
    for b in NETWORK_BUILDERS.values():
        lines += [f"### `{b.name}`", "", b.doc + ".", "", "| option | value | default | meaning |", "|---|---|---|---|"]
        lines += _option_rows(b.options) + [""]
    lines += [
        "## Built-in functions",
        "",
        "Known physics, fixed and differentiable, with no weights: `let NAME : real[SHAPE] = FUNCTION(ARGS)` "
        "calls one where a network would be called. Its arguments are variables or `let` nodes, their shapes "
        "must fit its signature, and the `let` is declared `real` of the shape it gives (no link is applied).",
        "",
        "| function | signature | computes |",
        "|---|---|---|",
    ]
    lines += [f"| `{f.name}` | `{f.signature}` | {f.doc} |" for f in FUNCTIONS.values()]
    lines += ["", "## Estimators (`by ...`, discrete q factors only)", ""]
    for e in ESTIMATORS.values():
        lines += [f"### `{e.name}`", "", e.doc + ".", ""]
        if e.options:
            lines += ["| option | value | default | meaning |", "|---|---|---|---|"] + _option_rows(e.options) + [""]
    lines += ["## Objectives", ""]
    for o in OBJECTIVES.values():
        lines += [f"### `{o.name}`", "", o.doc + ".", "", "| option | value | default | meaning |", "|---|---|---|---|"]
        lines += _option_rows(o.options) + [""]
    lines += _REPEATS
    lines += ["## Diagnostic codes", "", "| code | meaning |", "|---|---|"]
    lines += [f"| {code} | {meaning} |" for code, meaning in CODES.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
