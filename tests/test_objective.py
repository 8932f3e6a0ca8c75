"""The compiled objective against independent oracles: a naive loop over rows and draws in
float64, a closed-form log p(x), exact sums over discrete values, and the supervised
formula term by term."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

import gmdsl

NETS = "net cls = mlp(hidden = [5])\nnet enc = mlp(hidden = [5])\nnet dec = mlp(hidden = [5])\n"

# y above z in q: the label's weight is constant over samples
LABEL_FIRST = (
    """
observed   x : binary[6]
supervised y : onehot[3]
latent     z : real[2]
p(y)        = Categorical(probs = uniform)
p(z)        = Normal(0, 1)
p(x | y, z) = Bernoulli(logits = dec(y, z))
q(y | x)    = Categorical(logits = cls(x)) by relaxation(temperature = 0.5)
q(z | x, y) = Normal(enc(x, y))
"""
    + NETS
)

# y below z in q: importance weights q(y | x, z_s)
LABEL_BELOW = (
    """
observed   x : binary[6]
supervised y : onehot[3]
latent     z : real[2]
p(y)        = Categorical(probs = uniform)
p(z)        = Normal(0, 1)
p(x | y, z) = Bernoulli(logits = dec(y, z))
q(z | x)    = Normal(enc(x))
q(y | x, z) = Categorical(logits = cls(x, z)) by ESTIMATOR
"""
    + NETS
)

ALPHA, SAMPLES = 0.3, 5
X = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 0, 1, 0, 1, 1], [1, 1, 1, 0, 0, 0], [0, 1, 0, 1, 0, 1]], dtype=torch.float64)
LABELS = torch.tensor([0, 2, 1, 2])
MASK = torch.tensor([True, False, True, False])


def compiled(spec: str, estimator: str = "snis") -> torch.nn.Module:
    torch.manual_seed(1)
    text = spec + f"objective semisupervised(alpha = {ALPHA}, samples = {SAMPLES}, estimator = {estimator})\n"
    return gmdsl.compile(text).double()


def normal_from(output: torch.Tensor) -> D.Normal:
    loc, raw_scale = output.chunk(2, dim=-1)
    return D.Normal(loc, torch.nn.functional.softplus(raw_scale))


def log_p(model, x, y, z) -> torch.Tensor:
    dec = model.decoder.dec
    return (
        math.log(1 / 3)
        + D.Normal(0.0, 1.0).log_prob(z).sum()
        + D.Bernoulli(logits=dec(torch.cat([y, z]))).log_prob(x).sum()
    )


def log_categorical(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (y * torch.log_softmax(logits, -1)).sum()


def logmeanexp(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.logsumexp(torch.stack(values), 0) - math.log(len(values))


def naive_label_first(model, result, mask) -> list[torch.Tensor]:
    """LANGUAGE.md's objective, one row and one sample at a time."""
    cls, enc = model.encoder.cls, model.encoder.enc
    elbos = []
    for b in range(len(X)):
        x = X[b]
        terms = []
        label = torch.nn.functional.one_hot(LABELS[b], 3).double()
        for s in range(SAMPLES):
            y = label if mask[b] else result.values["y"][s, b]
            z = result.values["z"][s, b]
            log_q = log_categorical(cls(x), y) + normal_from(enc(torch.cat([x, y]))).log_prob(z).sum()
            terms.append(log_p(model, x, y, z) - log_q)
        elbo = torch.stack(terms).mean()
        if mask[b]:
            elbo = elbo + (1 + ALPHA) * log_categorical(cls(x), label)
        elbos.append(elbo)
    return elbos


def naive_label_below(model, result, mask, enumeration: bool, estimator: str) -> tuple[list, list]:
    cls, enc = model.encoder.cls, model.encoder.enc
    elbos, log_q_labels = [], []
    for b in range(len(X)):
        x = X[b]
        label = torch.nn.functional.one_hot(LABELS[b], 3).double()
        if mask[b]:
            f, log_w = [], []
            for s in range(SAMPLES):
                z = result.values["z"][s, b]
                log_qz = normal_from(enc(x)).log_prob(z).sum()
                log_qy = log_categorical(cls(torch.cat([x, z])), label)
                f.append(log_p(model, x, label, z) - log_qz - log_qy)
                log_w.append(log_qy)
            log_q_label = logmeanexp(log_w)
            if estimator == "iwae":
                first = logmeanexp(f)
            else:
                first = (torch.softmax(torch.stack(log_w), 0) * torch.stack(f)).sum()
            elbos.append(first + (1 + ALPHA) * log_q_label)
            log_q_labels.append(log_q_label)
            continue
        per_sample = []
        for s in range(SAMPLES):
            z = result.values["z"][s, b]
            log_qz = normal_from(enc(x)).log_prob(z).sum()
            values = torch.eye(3, dtype=torch.float64) if enumeration else result.values["y"][s, b][None]
            lw, weights = [], []
            for y in values:
                log_qy = log_categorical(cls(torch.cat([x, z])), y)
                lw.append(log_p(model, x, y, z) - log_qz - log_qy)
                weights.append(log_qy.exp() if enumeration else torch.tensor(1.0, dtype=torch.float64))
            if estimator == "iwae":
                per_sample.append(torch.logsumexp(torch.stack(lw) + torch.log(torch.stack(weights)), 0))
            else:
                per_sample.append((torch.stack(weights) * torch.stack(lw)).sum())
        elbos.append(logmeanexp(per_sample) if estimator == "iwae" else torch.stack(per_sample).mean())
        log_q_labels.append(torch.tensor(float("nan"), dtype=torch.float64))
    return elbos, log_q_labels


@pytest.mark.parametrize("mask", [MASK, torch.zeros(4, dtype=torch.bool)], ids=["mixed", "unlabelled"])
def test_label_first_matches_a_naive_loop(mask) -> None:
    model = compiled(LABEL_FIRST)
    assert model.constant_weights
    result = model.objective({"x": X, "y": LABELS, "y_observed": mask})
    expected = torch.stack(naive_label_first(model, result, mask))
    torch.testing.assert_close(result.elbo, expected)
    assert torch.isnan(result.log_q_supervised[~mask]).all()


@pytest.mark.parametrize("estimator", ["snis", "iwae"])
@pytest.mark.parametrize("by", ["enumeration", "relaxation"])
def test_label_below_a_latent_matches_a_naive_loop(by: str, estimator: str) -> None:
    model = compiled(LABEL_BELOW.replace("ESTIMATOR", by), estimator)
    assert not model.constant_weights
    result = model.objective({"x": X, "y": LABELS, "y_observed": MASK})
    elbos, log_q_labels = naive_label_below(model, result, MASK, by == "enumeration", estimator)
    torch.testing.assert_close(result.elbo, torch.stack(elbos))
    torch.testing.assert_close(result.log_q_supervised, torch.stack(log_q_labels), equal_nan=True)


def test_all_labelled_batch_matches_the_supervised_formula_term_by_term() -> None:
    model = compiled(LABEL_BELOW.replace("ESTIMATOR", "enumeration"))
    result = model.objective({"x": X, "y": LABELS})  # no mask: labelled everywhere
    z = result.values["z"]  # [S, B, 2], drawn from q(z | x) alone
    assert z.shape == (SAMPLES, 4, 2) and result.values["y"].shape == (4, 3)
    label = torch.nn.functional.one_hot(LABELS, 3).double()
    enc, cls, dec = model.encoder.enc, model.encoder.cls, model.decoder.dec
    log_qz = normal_from(enc(X)).log_prob(z).sum(-1)
    log_qy = (label * torch.log_softmax(cls(torch.cat([X.expand(SAMPLES, 4, 6), z], -1)), -1)).sum(-1)
    log_pxyz = (
        math.log(1 / 3)
        + D.Normal(0.0, 1.0).log_prob(z).sum(-1)
        + D.Bernoulli(logits=dec(torch.cat([label.expand(SAMPLES, 4, 3), z], -1))).log_prob(X).sum(-1)
    )
    log_q_label = torch.logsumexp(log_qy, 0) - math.log(SAMPLES)  # log (1/S) sum_s q(y | x, z_s)
    weights = torch.softmax(log_qy, 0)  # w_s / sum_t w_t
    expected = (weights * (log_pxyz - log_qz - log_qy)).sum(0) + (1 + ALPHA) * log_q_label
    torch.testing.assert_close(result.log_q_supervised, log_q_label)
    torch.testing.assert_close(result.elbo, expected)


def test_iwae_matches_the_closed_form_log_likelihood_of_a_linear_gaussian() -> None:
    spec = """
    observed x : real[2]
    latent   z : real[2]
    p(z)     = Normal(0, 1)
    p(x | z) = Normal(loc = z, scale = 0.5)
    q(z | x) = Normal(loc = x, scale = 1)
    objective semisupervised(samples = 20000, estimator = iwae)
    """
    model = gmdsl.compile(spec).double()
    x = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    torch.manual_seed(0)
    result = model.objective({"x": x})
    exact = D.Normal(0.0, math.sqrt(1 + 0.25)).log_prob(x).sum(-1)  # x ~ N(0, (1 + 0.5^2) I)
    z = result.values["z"]
    log_w = (
        D.Normal(z, 0.5).log_prob(x).sum(-1)
        + D.Normal(0.0, 1.0).log_prob(z).sum(-1)
        - D.Normal(x, 1.0).log_prob(z).sum(-1)
    )
    w = torch.exp(log_w - log_w.max(0).values)
    standard_error = w.std(0) / (w.mean(0) * math.sqrt(w.shape[0]))  # of log mean w, by the delta method
    assert (result.elbo - exact).abs().max() < 4 * standard_error.max()
    torch.testing.assert_close(result.elbo, torch.logsumexp(log_w, 0) - math.log(w.shape[0]))
    snis = gmdsl.compile(spec.replace("estimator = iwae", "estimator = snis")).double().objective({"x": x})
    assert (snis.elbo < exact).all()  # the plain ELBO stays below log p(x)


@pytest.mark.parametrize("explore", [0.0, 0.3, 1.0])
def test_enumeration_equals_the_exact_expectation(explore: float) -> None:
    """With `explore` e (training's explore_epochs), the unlabelled row's value is (1 - e) times
    the exact expectation plus e times: the plain mean over the 12 enumerated (c, b) of the
    log-joint (f without q's log-densities of c and b), plus sum over them of p(c, b | x) log q(c, b | x)."""
    spec = """
    observed x : real[2]
    latent   c : onehot[3]
    latent   b : binary[2]
    p(c)        = Categorical(probs = uniform)
    p(b)        = Bernoulli(0.3)
    p(x | c, b) = Normal(loc = dec(c, b), scale = 0.7)
    q(c | x)    = Categorical(logits = enc_c(x)) by enumeration
    q(b | x, c) = Bernoulli(logits = enc_b(x, c)) by enumeration
    net dec   = mlp(hidden = [4])
    net enc_c = mlp(hidden = [4])
    net enc_b = mlp(hidden = [4])
    """
    torch.manual_seed(3)
    model = gmdsl.compile(spec).double()
    x = torch.tensor([[0.5, -0.1], [1.5, 2.0], [-1.0, 0.0]], dtype=torch.float64)
    result = model.objective({"x": x}, explore=explore)
    exact = []
    for row in x:
        total = torch.tensor(0.0, dtype=torch.float64)
        joints, log_qs = [], []
        log_qc = torch.log_softmax(model.encoder.enc_c(row), -1)
        for k in range(3):
            c = torch.nn.functional.one_hot(torch.tensor(k), 3).double()
            for bits in ([0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]):
                b = torch.tensor(bits, dtype=torch.float64)
                log_qb = D.Bernoulli(logits=model.encoder.enc_b(torch.cat([row, c]))).log_prob(b).sum()
                log_joint = (
                    math.log(1 / 3)
                    + D.Bernoulli(0.3).log_prob(b).sum()
                    + D.Normal(model.decoder.dec(torch.cat([c, b])), 0.7).log_prob(row).sum()
                )
                elbo_part = (log_qc[k] + log_qb).exp() * (log_joint - log_qc[k] - log_qb)
                total = total + (1 - explore) * elbo_part + explore * log_joint / 12
                joints.append(log_joint)
                log_qs.append(log_qc[k] + log_qb)
        posterior = torch.softmax(torch.stack(joints), 0)  # p(c, b | x), exact here
        exact.append(total + explore * (posterior * torch.stack(log_qs)).sum())
    torch.testing.assert_close(result.elbo, torch.stack(exact))


@pytest.mark.parametrize("beta", [1.0, 0.5])
@pytest.mark.parametrize("estimator", ["snis", "iwae"])
@pytest.mark.parametrize("explore", [0.0, 0.4, 1.0])
def test_explore_with_several_samples_matches_a_naive_loop(estimator: str, explore: float, beta: float) -> None:
    """An enumerated c and a sampled z (4 draws per value of c): a loop over rows, values e and
    draws s gives (1 - e) times the estimator's value plus e times [mean_es g_es + sum_es P_es
    log q(c_e | x)], with f = log p(x | c, z) + beta [log p(c, z) - log q(c, z | x)],
    g = f + beta log q(c) and P = softmax_es(g)."""
    spec = f"""
    observed x : real[2]
    latent   c : onehot[3]
    latent   z : real[1]
    p(c)        = Categorical(probs = uniform)
    p(z)        = Normal(0, 1)
    p(x | c, z) = Normal(loc = dec(c, z), scale = 0.7)
    q(c | x)    = Categorical(logits = cls(x)) by enumeration
    q(z | x, c) = Normal(enc(x, c))
    objective semisupervised(samples = 4, estimator = {estimator})
    {NETS}"""
    torch.manual_seed(5)
    model = gmdsl.compile(spec).double()
    x = torch.tensor([[0.5, -0.1], [1.5, 2.0], [-1.0, 0.0]], dtype=torch.float64)
    result = model.objective({"x": x}, explore=explore, beta=beta)
    z = result.values["z"]  # [3 values of c, 4 draws, B, 1]
    assert z.shape == (3, 4, 3, 1)
    expected = []
    for row in range(3):
        log_qc = torch.log_softmax(model.encoder.cls(x[row]), -1)
        f, log_w = [], []
        for k in range(3):
            c = torch.nn.functional.one_hot(torch.tensor(k), 3).double()
            for s in range(4):
                draw = z[k, s, row]
                log_prior = math.log(1 / 3) + D.Normal(0.0, 1.0).log_prob(draw).sum()
                log_px = D.Normal(model.decoder.dec(torch.cat([c, draw])), 0.7).log_prob(x[row]).sum()
                log_qz = normal_from(model.encoder.enc(torch.cat([x[row], c]))).log_prob(draw).sum()
                f.append(log_px + beta * (log_prior - log_qz - log_qc[k]))
                log_w.append(log_qc[k])
        f, log_w = torch.stack(f), torch.stack(log_w)
        if estimator == "iwae":
            value = torch.logsumexp(log_w + f, 0) - math.log(4)
        else:
            value = (log_w.exp() / 4 * f).sum()
        g = f + beta * log_w
        explored = g.mean() + (torch.softmax(g, 0) * log_w).sum()
        expected.append((1 - explore) * value + explore * explored)
    torch.testing.assert_close(result.elbo, torch.stack(expected))


def test_explore_moves_q_of_the_enumerated_values_towards_the_posterior() -> None:
    """The explored part's only q term is sum P log q, at most 0 (weighing -log q evenly instead
    paid q to rule values out without bound: a training run's loss ran to -1e14). Driven by it
    alone, q(y | x, z) moves to the posterior p(y | x, z) = softmax over y of log p(x, y, z)."""
    model = compiled(LABEL_BELOW.replace("ESTIMATOR", "enumeration"))
    torch.manual_seed(0)
    for p in model.encoder.cls.parameters():
        p.data.normal_(0.0, 3.0)  # a confident q, far from the posterior

    def divergence() -> torch.Tensor:
        """KL(p(y | x, z) || q(y | x, z)) summed over the rows and the fixed draws of z."""
        torch.manual_seed(1)
        z = model.objective({"x": X}).values["z"]  # [S, B, 2]
        xs = X.expand(SAMPLES, -1, -1)
        pairs = zip(xs.reshape(-1, 6), z.reshape(-1, 2), strict=True)
        log_joint = torch.stack([log_p(model, x, y, zz) for x, zz in pairs for y in torch.eye(3)]).reshape(-1, 3)
        log_q = torch.log_softmax(model.encoder.cls(torch.cat([xs, z], -1)).reshape(-1, 3), -1)
        posterior = torch.log_softmax(log_joint, -1)
        return (posterior.exp() * (posterior - log_q)).sum().detach()

    before = divergence()
    optimiser = torch.optim.Adam(model.encoder.cls.parameters(), lr=0.05)
    for _ in range(200):
        torch.manual_seed(1)  # the same draws of z each time: a fixed posterior to move to
        explored = model.objective({"x": X}, explore=1.0).elbo.sum()
        optimiser.zero_grad()
        (-explored).backward()
        optimiser.step()
    assert divergence() < before / 5


def test_explore_leaves_labelled_rows_and_log_q_of_the_labels_alone() -> None:
    model = compiled(LABEL_BELOW.replace("ESTIMATOR", "enumeration"))
    batch = {"x": X, "y": LABELS, "y_observed": MASK}
    torch.manual_seed(4)
    plain = model.objective(batch)
    torch.manual_seed(4)
    explored = model.objective(batch, explore=0.5)
    torch.testing.assert_close(explored.elbo[MASK], plain.elbo[MASK])
    torch.testing.assert_close(explored.log_q_supervised, plain.log_q_supervised, equal_nan=True)
    assert not torch.allclose(explored.elbo[~MASK], plain.elbo[~MASK])  # the unlabelled rows do change


def test_beta_weights_the_latent_terms() -> None:
    base = LABEL_FIRST
    batch = {"x": X}
    torch.manual_seed(5)
    one = gmdsl.compile(base + "objective semisupervised(samples = 3)\n").double()
    torch.manual_seed(5)
    half = gmdsl.compile(base + "objective semisupervised(samples = 3, beta = 0.5)\n").double()
    torch.manual_seed(9)
    r1 = one.objective(batch)
    torch.manual_seed(9)
    r2 = half.objective(batch)
    values = r1.values
    dec = one.decoder.dec
    log_like = D.Bernoulli(logits=dec(torch.cat([values["y"], values["z"]], -1))).log_prob(X).sum(-1).mean(0)
    # elbo = log p(x | .) + beta * (rest); so 2 * elbo(beta = 0.5) - elbo(beta = 1) = log p(x | .)
    torch.testing.assert_close(2 * r2.elbo - r1.elbo, log_like)


@pytest.mark.parametrize(
    "logits", [0.7, torch.tensor(-1.3, dtype=torch.float64), torch.tensor([[0.4], [-2.0], [1.0]], dtype=torch.float64)]
)
def test_bernoulli_scores_constant_logits_once_per_element(logits) -> None:
    """A constant (or per-row) logit stands for every element of the value, as torch's
    Bernoulli broadcasts it."""
    from torch import distributions as D

    from gmdsl.runtime.distributions import Bernoulli

    value = (torch.rand(3, 5, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    bernoulli = Bernoulli(logits=logits)
    bernoulli.size = 5
    expected = D.Bernoulli(logits=torch.as_tensor(logits, dtype=torch.float64)).log_prob(value).sum(-1)
    torch.testing.assert_close(bernoulli.log_prob(value), expected)


# no latent: p(y | x) has a closed form, p(y) p(x | y) / sum over y
BAYES = """
observed   x : binary[6]
supervised y : onehot[3]
p(y)     = Categorical(probs = uniform)
p(x | y) = Bernoulli(logits = dec(y))
q(y | x) = Categorical(logits = cls(x)) by relaxation(temperature = 0.5)
net cls = mlp(hidden = [5])
net dec = mlp(hidden = [5])
"""


def test_importance_prediction_is_the_models_exact_posterior_when_y_is_the_only_unknown() -> None:
    """predict(method="importance") sums the relaxed label exactly, weighted by p / q: with no
    other unknown that is Bayes' rule on p, whatever q says. The oracle scores each class as a
    given label (the labelled path of the objective, alpha 0: log p(x, y) exactly)."""
    model = compiled(BAYES)
    posterior = model.predict({"x": X}, method="importance")["y"]
    log_joint = torch.stack(
        [model.objective({"x": X, "y": torch.full((len(X),), k)}, alpha=0.0).elbo for k in range(3)],
        dim=-1,
    )
    torch.testing.assert_close(posterior, torch.softmax(log_joint, -1))
    assert not torch.allclose(posterior, model.predict({"x": X})["y"])  # q's own answer differs


def test_importance_prediction_with_a_latent_converges_to_the_posterior_by_quadrature() -> None:
    """With z sampled too, p(y = k | x) is estimated from p(x, k, z) / q(z | x, k) over draws.
    The oracle integrates p(x, k, z) over a grid of the 2-d z. q(z | x, y) is set to the prior,
    so the weights have light tails and 20,000 draws suffice."""
    from gmdsl.runtime.trace import Generation

    model = compiled(LABEL_FIRST)
    last = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, math.log(math.e - 1), math.log(math.e - 1)]))  # N(0, 1)
    grid = torch.linspace(-7, 7, 351, dtype=torch.float64)
    z = torch.cartesian_prod(grid, grid)
    log_joint = torch.empty(len(X), 3, dtype=torch.float64)
    for row in range(len(X)):
        for k in range(3):
            values = {"x": X[row].expand(len(z), 6), "y": torch.eye(3, dtype=torch.float64)[k].expand(len(z), 3)}
            p = Generation(model.by_name, {**values, "z": z}, torch.float64, torch.device("cpu"))
            with torch.no_grad():
                model.decoder(p)
            log_joint[row, k] = torch.logsumexp(p.log_p_observed + p.log_p_latent, 0)  # the cell size cancels
    torch.manual_seed(0)
    posterior = model.predict({"x": X}, samples=20000, method="importance")["y"]
    torch.testing.assert_close(posterior, torch.softmax(log_joint, -1), atol=0.01, rtol=0)


def test_the_dataset_weighted_loss_matches_the_sum_over_the_data_set() -> None:
    """label_weight = dataset: a batch's estimate is each stratum's mean weighted by its share of
    the data, with alpha on the labelled log q(y | x) term alone (a loop over rows in float64)."""
    from gmdsl.runtime.model import Objective
    from gmdsl.train.loop import dataset_objective

    elbo = torch.tensor([-10.0, -20.0, -30.0, -40.0, -50.0], dtype=torch.float64)
    log_q = torch.tensor([-1.0, float("nan"), -2.0, float("nan"), float("nan")], dtype=torch.float64)
    labelled = torch.tensor([True, False, True, False, False])
    share, alpha = 0.01, 3.0
    value = dataset_objective(Objective(elbo, log_q, {}), labelled, share, alpha)
    unlabelled_rows = [elbo[i].item() for i in range(5) if not labelled[i]]
    labelled_rows = [(elbo[i] - alpha * log_q[i]).item() for i in range(5) if labelled[i]]
    label_terms = [alpha * log_q[i].item() for i in range(5) if labelled[i]]
    expected = (
        (1 - share) * sum(unlabelled_rows) / len(unlabelled_rows)
        + share * sum(labelled_rows) / len(labelled_rows)
        + sum(label_terms) / len(label_terms)
    )
    assert value.item() == pytest.approx(expected)
    only_unlabelled = dataset_objective(Objective(elbo, log_q, {}), torch.zeros(5, dtype=torch.bool), share, alpha)
    assert only_unlabelled.item() == pytest.approx((1 - share) * elbo.mean().item())
