"""The objective a compiled model is trained with, written as a formula in the model's own
variables, for the docstring of its module: which terms are summed by enumeration, which are
relaxed, where importance weights come in, and the alpha term on labelled rows. It follows
runtime/objective.py, whose docstring derives the general estimator."""

from __future__ import annotations

from gmdsl.runtime.registry import discrete_values

from .analyses import constant_weights, estimators, impossible_classes
from .ir import ModelIR, VariableNode
from .pretty import factor_head, number_text


def _given(names: list[str]) -> str:
    return " | " + ", ".join(names) if names else ""


class _Formula:
    """The pieces of the formula for one model."""

    def __init__(self, model: ModelIR):
        self.model = model
        self.variables = model.variables()
        self.observed = [v.name for v in self.variables if v.role == "observed"]
        self.supervised = [v.name for v in self.variables if v.role == "supervised"]
        self.latent = [v.name for v in self.variables if v.role == "latent"]
        self.unknown = self.supervised + self.latent
        self.enumerated = {node.name for node, _ in estimators(model, "enumeration")}
        self.beta = model.objective.options["beta"]

    def integrand(self, drawn: list[str]) -> str:
        """log p - beta-weighted rest at one draw; the variables in `drawn` carry the subscript s."""
        value = {v.name: v.name + "_s" if v.name in drawn else v.name for v in self.variables}
        inferred = ", ".join(value[n] for n in self.unknown)
        log_q = f"log q({inferred}{_given(self.observed)})"
        if self.beta == 1:
            return f"log p({', '.join(value[v.name] for v in self.variables)}) - {log_q}"
        # beta weighs every p factor of an unobserved variable, and q (runtime/objective.py)
        terms: dict[str, list[str]] = {"observed": [], "rest": []}
        for node in self.model.p.variables():
            if node.factor is not None:
                head = factor_head("p", value[node.name], [value.get(p, p) for p in node.factor.parents])
                terms["observed" if node.role == "observed" else "rest"].append(f"log {head}")
        rest = " + ".join(terms["rest"])
        return f"{' + '.join(terms['observed'])} + {number_text(self.beta)} [{rest} - {log_q}]"

    def sampled(self, names: list[str]) -> list[str]:
        """Those of `names` that q draws samples of (enumerated ones are summed exactly)."""
        return [n for n in names if n not in self.enumerated]


def objective_lines(model: ModelIR) -> list[str]:
    """The docstring paragraph, one line per item."""
    f = _Formula(model)
    options = model.objective.options
    samples, alpha, estimator = options["samples"], options["alpha"], options["estimator"]
    lines = [
        "Trained with the semi-supervised objective of Siddharth et al. (2017),",
        f"{model.objective.kind}(alpha = {number_text(alpha)}, samples = {samples}, "
        f"beta = {number_text(f.beta)}, estimator = {estimator}), per example, from S draws of q",
        "(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):",
    ]
    if estimator == "iwae":
        first = f"log (1/S) sum_s exp({f.integrand(f.sampled(f.unknown))})"
    else:
        first = f"E_q({', '.join(f.unknown)}{_given(f.observed)})[{f.integrand([])}]"
    lines.append(f"  {', '.join(f.supervised) + ' not given' if f.supervised else 'every example'}:  {first}")
    if f.supervised:
        lines += _labelled_lines(model, f, alpha, estimator)
    for node, relaxation in estimators(model, "relaxation"):
        temperature = number_text(relaxation.options["temperature"])
        distribution = node.factor.distribution if node.factor else ""
        lines.append(
            f"  {node.name} is relaxed in q: a Concrete sample at temperature {temperature}, scored with "
            f"the {distribution} log-probability"
        )
    impossible = impossible_classes(model)
    for name, classes in impossible.items():
        numbers = ", ".join(map(str, classes))
        listed, it = (f"class {numbers}", "it") if len(classes) == 1 else (f"classes {numbers}", "them")
        lines.append(
            f"  {name} is never {listed}: the spec gives {it} probability 0, so q never proposes {it} "
            f"and no label may name {it}"
        )
    for node, _ in estimators(model, "enumeration"):
        choices, positions = discrete_values(node.type, tuple(node.shape))
        choices -= len(impossible.get(node.name, ()))
        lines.append(
            f"  {node.name} is summed by enumeration: every one of its {choices**positions} values, weighted by q"
        )
    for repeat in model.repeats:
        names = ", ".join(node.name for node in model.variables() if node.repeat == repeat.index)
        lines.append(
            f"  {names} repeat for {repeat.index} = 1..{repeat.steps}: a step's log-densities count where "
            f"{repeat.index} <= {repeat.bound}, and the repeat's `let`s read after it are their values at step "
            f"{repeat.bound}"
        )
    return lines


def _labelled_lines(model: ModelIR, f: _Formula, alpha: float, estimator: str) -> list[str]:
    label = ", ".join(f.supervised)
    q_label = f"log q({label}{_given(f.observed)})"
    exact = constant_weights(model)
    drawn = f.sampled(f.latent)
    if estimator == "iwae":
        first = f"log (1/S) sum_s exp({f.integrand(drawn)})"
    elif exact:
        first = (
            f"E_q({', '.join(f.latent)}{_given(f.observed + f.supervised)})[{f.integrand([])}]"
            if f.latent
            else f.integrand([])
        )
    else:
        first = f"sum_s (w_s / sum_t w_t) [{f.integrand(drawn)}]"
    lines = [f"  {label} given:  {first}", f"      + (1 + alpha) {q_label}, with alpha = {number_text(alpha)}"]
    if exact:
        lines.append(f"      {q_label} is exact: no supervised variable has a sampled ancestor in q")
    else:
        weights = " ".join(
            f"q({node.name}{_given([p + '_s' if p in drawn else p for p in node.factor.parents])})"
            for node in model.q.variables()
            if node.name in f.supervised and isinstance(node, VariableNode) and node.factor is not None
        )
        lines.append(f"      importance weights w_s = {weights}; {q_label} ~= log (1/S) sum_s w_s")
    if len(f.supervised) > 1:
        lines.append("  (a row where only some supervised variables are given counts those as given)")
    return lines
