"""The objective a compiled model is trained with, written as a formula in the model's own
variables, for the docstring of its module: which terms are summed by enumeration, which are
relaxed, where importance weights come in, and the alpha term on labelled rows."""

from __future__ import annotations

import math

from .analyses import constant_weights, estimators
from .ir import ModelIR
from .pretty import number_text


def _given(names: list[str]) -> str:
    return " | " + ", ".join(names) if names else ""


def objective_lines(model: ModelIR) -> list[str]:
    """The docstring paragraph, one line per item."""
    variables = model.variables()
    observed = [v.name for v in variables if v.role == "observed"]
    supervised = [v.name for v in variables if v.role == "supervised"]
    latent = [v.name for v in variables if v.role == "latent"]
    options = model.objective.options
    samples, alpha, beta, estimator = options["samples"], options["alpha"], options["beta"], options["estimator"]
    unknown = supervised + latent

    def integrand(drawn: list[str], subscript: str) -> str:
        """log p - log q at the values of one draw; `drawn` names the variables q samples."""
        value = {v.name: v.name + subscript if v.name in drawn else v.name for v in variables}
        inferred = ", ".join(value[n] for n in unknown)
        if beta == 1:
            return f"log p({', '.join(value[v.name] for v in variables)}) - log q({inferred}{_given(observed)})"
        return (
            f"log p({', '.join(observed)}{_given([value[n] for n in unknown])}) + {number_text(beta)} "
            f"[log p({inferred}) - log q({inferred}{_given(observed)})]"
        )

    lines = [
        "Trained with the semi-supervised objective of Siddharth et al. (2017),",
        f"{model.objective.kind}(alpha = {number_text(alpha)}, samples = {samples}, beta = {number_text(beta)}, "
        f"estimator = {estimator}), per example, from S = {samples} draw{'s' * (samples != 1)} of q:",
    ]
    if estimator == "iwae":
        first = f"log (1/S) sum_s exp({integrand(unknown, '_s')})"
    else:
        first = f"E_q({', '.join(unknown)}{_given(observed)})[{integrand([], '')}]"
    lines.append(f"  {', '.join(supervised) + ' not given' if supervised else 'every example'}:  {first}")
    if supervised:
        label = ", ".join(supervised)
        q_label = f"log q({label}{_given(observed)})"
        if estimator == "iwae":
            labelled_first = f"log (1/S) sum_s exp({integrand(latent, '_s')})"
        elif constant_weights(model) or not latent:
            labelled_first = (
                f"E_q({', '.join(latent)}{_given(observed + supervised)})[{integrand([], '')}]"
                if latent
                else integrand([], "")
            )
        else:
            labelled_first = f"sum_s (w_s / sum_t w_t) [{integrand(latent, '_s')}]"
        lines.append(f"  {label} given:  {labelled_first}")
        lines.append(f"      + (1 + alpha) {q_label}, with alpha = {number_text(alpha)}")
        if constant_weights(model):
            lines.append(f"      {q_label} is exact: no supervised variable has a sampled ancestor in q")
        else:
            weights = " ".join(
                f"q({node.name}{_given([p + '_s' if p in latent else p for p in node.factor.parents])})"
                for node in model.q.variables()
                if node.name in supervised and node.factor
            )
            lines.append(f"      importance weights w_s = {weights}; {q_label} ~= log (1/S) sum_s w_s")
        lines.append(
            "  (a row where only some supervised variables are given counts those as given)"
            if len(supervised) > 1
            else ""
        )
    for node, relaxation in estimators(model, "relaxation"):
        temperature = number_text(relaxation.options["temperature"])
        lines.append(
            f"  {node.name} is relaxed in q: a Concrete sample at temperature {temperature}, scored with "
            f"the {node.factor.distribution if node.factor else ''} log-probability"
        )
    for node, _ in estimators(model, "enumeration"):
        values = node.shape[-1] ** math.prod(node.shape[:-1]) if node.type == "onehot" else 2 ** math.prod(node.shape)
        lines.append(f"  {node.name} is summed by enumeration: every one of its {values} values, weighted by q")
    return [line for line in lines if line]
