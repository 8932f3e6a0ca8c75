"""The semi-supervised objective of Siddharth et al. (2017), estimated once for every row
of a batch, labelled or not, from one vectorised pass of q and p.

For a row, with f = log p(observed | .) + beta * [log p(rest) - log q(unobserved, labels | x)]
evaluated at the drawn values (enumerated values e, samples s), let

    W_es  = the product of q(value) over the variables summed `by enumeration`
            (a label given on the row counts once instead)
    w_es  = the product of q(y | parents) over the supervised variables labelled on the row
    omega = W * w

Then
    log q(y | x) ~= log sum_es omega_es - log sum_es W_es       (= log (1/S) sum_s w_s)
    snis:  elbo = sum_es (omega_es / sum omega) f_es + (1 + alpha) log q(y | x)
    iwae:  elbo = log sum_es W_es exp(f_es) - log sum_es W_es  + (1 + alpha) log q(y | x)

the alpha term only on labelled rows. On an unlabelled row w = 1 and this is the plain
(importance-weighted) ELBO. When no label has a sampled ancestor in q, w does not vary over
e and s: log q(y | x) is exact and the weights are W / S (the compiler then sets
`constant_weights`, which skips the weighting).

`explore` (a share e in [0, 1], a training aid, 0 in the objective proper; only where some
variable is enumerated): on an unlabelled row the value is (1 - e) elbo + e explored, where,
with g_es = f_es + beta log W_es (f without q's log-density of the enumerated values) and
P = softmax_es(g), held constant (self-normalised over the enumerated values and the samples:
the model's posterior over the enumerated values, exact given one draw of the rest),

    explored = mean_es g_es + sum_es P_es log W_es

The first term trains every value's branch alike, so those q finds unlikely early on (a count's
later steps) still learn. The second moves q's enumerated variables towards that posterior
(a wake-phase update, as in reweighted wake-sleep): the elbo's own gradient for a value q
gives ~0 vanishes with it, so q could not otherwise follow where the branches' f now point. A
-log q weighed evenly instead would pay q to rule values out without bound.
"""

from __future__ import annotations

import math

import torch


def semisupervised(
    log_p_observed: torch.Tensor,
    log_p_latent: torch.Tensor,
    log_q: torch.Tensor,
    log_enumeration: torch.Tensor,
    log_w_supervised: torch.Tensor,
    labelled: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    estimator: str,
    constant_weights: bool,
    explore: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(elbo [B], log q(y | x) [B], NaN on unlabelled rows) from per-draw terms whose leading
    dimensions broadcast to [enumerated..., samples, B]."""
    rest = log_p_latent - log_q
    f = log_p_observed + (rest if beta == 1 else beta * rest)  # at beta 1, no product to run and to differentiate
    if constant_weights and log_enumeration.dim() == 0:
        # Nothing enumerated and the label weights constant: every draw weighs the same, so
        # the weighted sums are plain means (the common case, a few operations per step fewer).
        f, log_w_sup = torch.broadcast_tensors(f, log_w_supervised)
        rows = f.shape[-1]
        f = f.reshape(-1, rows)
        log_q_supervised = log_w_sup.reshape(-1, rows)[0]
        if f.shape[0] == 1:  # one draw: its value is the mean and the log-mean-exp alike
            first = f.reshape(rows)
        elif estimator == "iwae":
            first = torch.logsumexp(f, dim=0) - math.log(f.shape[0])
        else:
            first = f.mean(0)
        return _with_labels(first, log_q_supervised, labelled, alpha)
    f, log_w_enum, log_w_sup = torch.broadcast_tensors(f, log_enumeration, log_w_supervised)
    rows = f.shape[-1]
    f, log_w_enum, log_w_sup = (t.reshape(-1, rows) for t in (f, log_w_enum, log_w_sup))
    log_draws = torch.logsumexp(log_w_enum, dim=0)  # log S: enumeration weights sum to 1 per sample
    if constant_weights:
        log_q_supervised = log_w_sup[0]
        log_omega = log_w_enum
    else:
        log_omega = log_w_enum + log_w_sup
        log_q_supervised = torch.logsumexp(log_omega, dim=0) - log_draws
    if estimator == "iwae":
        first = torch.logsumexp(log_w_enum + f, dim=0) - log_draws
    else:
        weights = torch.softmax(log_omega, dim=0)
        first = torch.where(weights > 0, weights * f, torch.zeros_like(f)).sum(0)
    if explore and log_enumeration.dim() > 0:
        explored = _explored(f, log_w_enum, beta)
        first = torch.where(labelled, first, (1 - explore) * first + explore * explored)
    return _with_labels(first, log_q_supervised, labelled, alpha)


def _explored(f: torch.Tensor, log_w_enum: torch.Tensor, beta: float) -> torch.Tensor:
    """mean_es g + sum_es P log W over the draws W gives some weight to ([draws, B] -> [B]; see
    the module doc)."""
    possible = log_w_enum > -math.inf
    g = torch.where(possible, f + beta * log_w_enum, torch.zeros_like(f))
    posterior = torch.softmax(g.detach().masked_fill(~possible, -math.inf), dim=0)
    towards = torch.where(possible, posterior * log_w_enum, torch.zeros_like(f))
    return g.sum(0) / possible.sum(0) + towards.sum(0)


def _with_labels(
    first: torch.Tensor, log_q_supervised: torch.Tensor, labelled: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(elbo, log q(y | x)): the (1 + alpha) log q(y | x) term added on labelled rows."""
    elbo = first + torch.where(labelled, (1 + alpha) * log_q_supervised, 0.0)
    return elbo, torch.where(labelled, log_q_supervised, float("nan"))
