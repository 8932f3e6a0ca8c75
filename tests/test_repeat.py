"""`repeat k < count { ... }`: a random number of variables (runtime/repeat.py, the checker's
repeat_rules.py). The objective is checked against a naive loop written out by hand and against
its own definition (an unlabelled row is the q-weighted sum of the labelled rows' terms)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gmdsl
from gmdsl.build import SpecError, compile_spec
from gmdsl.compiler.parser import parse
from gmdsl.compiler.pretty import pretty

ROOT = Path(__file__).resolve().parent.parent

SPEC = """
model scene
observed   x     : real[16]
supervised count : onehot[4]

p(count)     = Categorical(probs = uniform)
q(count | x) = Categorical(logits = counter(x)) by enumeration

repeat k < count {
    latent d : real[2]
    p(d) = Normal(0, 1)
    let canvas : real[16] = painter(d, canvas[k - 1])
    let h : real[8] = cell(x, d[k - 1], h[k - 1])
    q(d | x) = Normal(reader(h))
}
p(x | d) = Normal(loc = canvas, scale = 1)

net counter = mlp(hidden = [8])
net cell    = gru()
net reader  = mlp(hidden = [8])
net painter = mlp(hidden = [8])
objective semisupervised(alpha = 0, samples = 1)
"""
ROWS = 5


def _model() -> gmdsl.runtime.CompiledModel:
    torch.manual_seed(0)
    return gmdsl.compile(SPEC).double()


def _count(value: int) -> torch.Tensor:
    return F.one_hot(torch.full((ROWS,), value), 4).double()


def _by_hand(model, x: torch.Tensor, count: int) -> torch.Tensor:
    """The labelled rows' objective (alpha = 0, one draw), as a plain loop over the steps that
    hold: log p(x | canvas_count) + log p(count) + sum_k<=count [log p(d_k) - log q(d_k | x)]."""
    encoder, decoder = model.encoder, model.decoder
    d_before, h_before, canvas = torch.zeros(1, ROWS, 2), torch.zeros(1, ROWS, 8), torch.zeros(1, ROWS, 16)
    d_before, h_before, canvas = d_before.double(), h_before.double(), canvas.double()
    total = torch.full((1, ROWS), -math.log(4), dtype=torch.double)
    for k in range(1, 4):  # every step is drawn, in order, whatever the count
        h = encoder.cell(torch.cat([x.expand(1, ROWS, 16), d_before, h_before], -1))
        loc, scale = encoder.reader(h).chunk(2, -1)
        scale = F.softplus(scale)
        d = loc + scale * torch.empty(1, ROWS, 2, dtype=torch.double).normal_()
        canvas_k = decoder.painter(torch.cat([d, canvas], -1))
        if k <= count:
            q_d = torch.distributions.Normal(loc, scale).log_prob(d).sum(-1)
            p_d = torch.distributions.Normal(0.0, 1.0).log_prob(d).sum(-1)
            total = total + p_d - q_d
            canvas = canvas_k
        d_before, h_before = d, h
    return (total + torch.distributions.Normal(canvas, 1.0).log_prob(x).sum(-1))[0]


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_a_labelled_count_scores_its_steps_and_no_later_ones(count: int) -> None:
    model = _model()
    x = torch.randn(ROWS, 16, dtype=torch.double)
    torch.manual_seed(1)
    elbo = model.objective({"x": x, "count": _count(count)}).elbo
    torch.manual_seed(1)
    expected = _by_hand(model, x, count)
    torch.testing.assert_close(elbo, expected)


def test_an_unlabelled_row_sums_the_counts_weighted_by_q() -> None:
    """With the count enumerated, the row's objective is sum_j q(j | x) (L_j - log q(j | x)),
    L_j the labelled objective at count j (the same draws: the steps do not read the count)."""
    model = _model()
    x = torch.randn(ROWS, 16, dtype=torch.double)
    labelled = []
    for count in range(4):
        torch.manual_seed(2)
        labelled.append(model.objective({"x": x, "count": _count(count)}).elbo)
    torch.manual_seed(2)
    unlabelled = model.objective({"x": x}).elbo
    q = model.predict({"x": x})["count"]
    expected = sum(q[:, j] * (labelled[j] - q[:, j].log()) for j in range(4))
    torch.testing.assert_close(unlabelled, expected)


def test_gradients_reach_every_network_and_values_keep_their_steps() -> None:
    model = _model()
    x = torch.randn(ROWS, 16, dtype=torch.double)
    model.objective({"x": x}).loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.infer({"x": x})["d"].shape == (ROWS, 3, 2)
    drawn = model.sample(7)
    assert drawn["d"].shape == (7, 3, 2) and drawn["x"].shape == (7, 16) and drawn["count"].shape == (7, 4)
    # each step draws its own value from p
    assert not torch.equal(drawn["d"][:, 0], drawn["d"][:, 1]) and not torch.equal(drawn["d"][:, 1], drawn["d"][:, 2])
    given = model.sample(7, given={"count": F.one_hot(torch.zeros(7, dtype=torch.long), 4).double()})
    # no step holds: the canvas is its start, zeros, whatever the steps drew
    assert torch.equal(model.sample(7, given={"count": given["count"]}, observed_means=True)["x"], torch.zeros(7, 16))


def test_pretty_printing_a_repeat_parses_back_the_same() -> None:
    spec = parse(SPEC)
    text = pretty(spec)
    assert "repeat k < count {\n    latent d : real[2]" in text and "canvas[k - 1]" in text
    assert parse(text) == spec


def test_the_compiled_step_loop_reads_like_the_spec() -> None:
    source = gmdsl.build.compile_text(SPEC, "scene.gm").source
    assert 'for _ in q.repeat("k", "count", steps=3, lets={"h": 8}):' in source
    assert 'h = q.keep("h", self.cell(rt.join(x, q.before("d"), q.before("h"))))' in source
    assert 'canvas = p.final("canvas")  # its value at step count' in source
    assert 'rt.Variable("d", "latent", "real", (3, 2), repeat="k")' in source


def test_a_repeat_inside_a_repeat_is_a_located_error() -> None:
    inner = "    q(d | x) = Normal(reader(h))\n    repeat j < count {\n    }\n"
    nested = SPEC.replace("    q(d | x) = Normal(reader(h))\n", inner)
    with pytest.raises(SpecError) as caught:
        gmdsl.compile(nested)
    (diagnostic,) = [d for d in caught.value.diagnostics if d.code == "E0803"]
    assert diagnostic.message == "a `repeat` cannot hold another `repeat`" and diagnostic.span.line == 15


def _tiny_scenes(path: Path, rows: int, seed: int) -> None:
    """16 x 16 canvases of 1 to 3 bright 4 x 4 squares in separate quadrants, with their count."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", rows), ("test", rows // 4)):
        counts = rng.integers(1, 4, size=n)
        images = np.zeros((n, 1, 16, 16), dtype=np.uint8)
        for row, count in enumerate(counts):
            for quadrant in rng.permutation(4)[:count]:
                top, left = 8 * (quadrant // 2) + rng.integers(0, 4), 8 * (quadrant % 2) + rng.integers(0, 4)
                images[row, 0, top : top + 4, left : left + 4] = 255
        arrays[f"image_{split}"], arrays[f"count_{split}"] = images, counts.astype(np.int64)
    np.savez(path, **arrays)


SCENES = """
model scenes
observed   x     : real[1, 16, 16]
supervised count : onehot[4]
p(count) = Categorical(probs = uniform)
q(count | x) = Categorical(logits = counter(x)) by enumeration
repeat k < count {
    latent where : real[3]
    p(where) = Normal(0, 1)
    let patch  : unit[1, 4, 4] = writer(where)
    let canvas : real[1, 16, 16] = place(patch, where, canvas[k - 1])
    let state : real[16] = reader(x, where[k - 1], state[k - 1])
    q(where | x) = Normal(locator(state))
}
p(x | where) = Normal(loc = canvas, scale = 0.2)
net counter = mlp(hidden = [32])
net reader  = gru()
net locator = mlp(hidden = [32])
net writer  = mlp(hidden = [32])
objective semisupervised(alpha = 1, samples = 1)
"""


def test_training_and_evaluating_a_repeated_spec_end_to_end(gmdsl_cli, tmp_path: Path) -> None:
    """`gmdsl train` (two epochs, so the second starts from the first's state) and `gmdsl eval`
    on generated scenes, with the count labelled on some of them."""
    (tmp_path / "scenes.gm").write_text(SCENES, encoding="utf-8")
    _tiny_scenes(tmp_path / "scenes.npz", 600, seed=0)
    run = tmp_path / "run"
    code, _, err = gmdsl_cli(
        "train", str(tmp_path / "scenes.gm"), "--dataset", str(tmp_path / "scenes.npz"), "--labels", "150",
        "--validation", "100", "--epochs", "2", "--batch-size", "50", "--run", str(run), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = gmdsl_cli("eval", str(run))
    assert code == 0, err
    assert "count" in out


def test_graph_draws_a_repeat_as_a_plate_around_its_nodes_only() -> None:
    from gmdsl.compiler.draw import layout, plates, to_dot

    model = gmdsl.load(SPEC)
    assert 'subgraph cluster_q_k { label="k = 1..count (at most 3)"; q_h; q_d; }' in to_dot(model)
    for graph in (model.p, model.q):
        positions = layout(graph)
        ((left, bottom, width, height),) = plates(graph, positions).values()
        inside = {
            name for name, (x, y) in positions.items() if left <= x <= left + width and bottom <= y <= bottom + height
        }
        assert inside == {node.name for node in graph.nodes if node.repeat == "k"}


LABELLED_STEPS = """
model labelled_steps
observed   x     : real[16]
supervised count : onehot[4]
p(count)     = Categorical(probs = uniform)
q(count | x) = Categorical(logits = counter(x)) by enumeration
repeat k < count {
    supervised c : onehot[3]
    latent     d : real[2]
    p(c) = Categorical(probs = uniform)
    p(d) = Normal(0, 1)
    let canvas : real[16] = painter(c, d, canvas[k - 1])
    let h : real[8] = cell(x, c[k - 1], h[k - 1])
    q(c | x) = Categorical(logits = classifier(h)) by relaxation
    q(d | x, c) = Normal(reader(h, c))
}
p(x | c, d) = Normal(loc = canvas, scale = 1)
net counter    = mlp(hidden = [8])
net cell       = gru()
net classifier = mlp(hidden = [8])
net reader     = mlp(hidden = [8])
net painter    = mlp(hidden = [8])
objective semisupervised(alpha = 1, samples = 1)
"""


def test_labels_per_step_are_scored_at_the_steps_that_have_them() -> None:
    """log q(labels | x) of a row = log q(count | x) + the log q(c_k | ...) of its steps k <= count
    that have a class, each read by hand off the networks (every c a step reads is given)."""
    torch.manual_seed(0)
    model = gmdsl.compile(LABELLED_STEPS).double()
    x = torch.randn(4, 16, dtype=torch.double)
    counts = torch.tensor([2, 3, 1, 0])
    classes = torch.tensor([[2, 0, -1], [1, 1, 2], [0, -1, -1], [-1, -1, -1]])
    result = model.objective({"x": x, "count": counts, "c": classes})
    encoder = model.encoder
    expected = torch.log_softmax(encoder.counter(x), -1)[torch.arange(4), counts]
    c_before, h_before = torch.zeros(4, 3, dtype=torch.double), torch.zeros(4, 8, dtype=torch.double)
    for k in range(3):
        h = encoder.cell(torch.cat([x, c_before, h_before], -1))
        log_q = torch.log_softmax(encoder.classifier(h), -1)
        counted = (classes[:, k] >= 0) & (k < counts)
        expected = expected + torch.where(counted, log_q[torch.arange(4), classes[:, k].clamp_min(0)], 0.0)
        c_before, h_before = F.one_hot(classes[:, k].clamp_min(0), 3).double() * (classes[:, k : k + 1] >= 0), h
    torch.testing.assert_close(result.log_q_supervised, expected)


def test_a_step_without_a_class_is_drawn_and_a_class_past_the_count_counts_for_nothing() -> None:
    torch.manual_seed(0)
    model = gmdsl.compile(LABELLED_STEPS).double()
    x = torch.randn(1, 16, dtype=torch.double).expand(3, 16)  # one image, three ways of labelling it
    counts = torch.tensor([1, 1, 1])
    result = model.objective({"x": x, "count": counts, "c": torch.tensor([[2, -1, -1], [2, 1, 0], [2, 0, 1]])})
    # the classes after step 1 lie past the count: the label term cannot see them
    torch.testing.assert_close(result.log_q_supervised[1:], result.log_q_supervised[:1].expand(2))
    drawn = result.values["c"].reshape(-1, 3, 3, 3)[..., 1:, :]  # rows' steps 2 and 3: relaxed draws
    assert torch.allclose(drawn.sum(-1), torch.ones_like(drawn.sum(-1))) and ((drawn > 0) & (drawn < 1)).any()
    predicted = model.predict({"x": x})
    assert predicted["c"].shape == (3, 3, 3) and predicted["count"].shape == (3, 4)
    torch.testing.assert_close(predicted["c"].sum(-1), torch.ones(3, 3, dtype=torch.double))


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (torch.tensor([[3, 0, -1]]), "holds classes outside -1..2"),
        (
            torch.tensor([[0.0, 1.0, 0.0] * 2 + [0.5, 0.5, 0.0]]).reshape(1, 3, 3),
            "each step must be one-hot or all zeros",
        ),
    ],
)
def test_a_bad_class_per_step_names_the_variable(classes: torch.Tensor, message: str) -> None:
    model = gmdsl.compile(LABELLED_STEPS)
    with pytest.raises(gmdsl.runtime.BatchError, match=message):
        model.objective({"x": torch.randn(1, 16), "count": torch.tensor([2]), "c": classes})


VALUED_STEPS = SPEC.replace("latent d : real[2]", "supervised d : real[2]").replace("alpha = 0", "alpha = 1")


def test_values_per_step_are_scored_at_the_steps_that_have_them() -> None:
    """A supervised real inside the repeat: log q(labels | x) of a row = log q(count | x) + the
    log q(d_k | x) of its steps k <= count whose value is given (not NaN), read by hand off the
    networks; a step's value feeds the next step's state wherever it is given."""
    torch.manual_seed(0)
    model = gmdsl.compile(VALUED_STEPS).double()
    x = torch.randn(3, 16, dtype=torch.double)
    counts = torch.tensor([2, 3, 1])
    values = torch.randn(3, 3, 2, dtype=torch.double)
    values[0, 2] = values[2, 1:] = float("nan")  # steps past the count have none
    result = model.objective({"x": x, "count": counts, "d": values})
    encoder = model.encoder
    expected = torch.log_softmax(encoder.counter(x), -1)[torch.arange(3), counts]
    d_before, h_before = torch.zeros(3, 2, dtype=torch.double), torch.zeros(3, 8, dtype=torch.double)
    for k in range(3):
        h = encoder.cell(torch.cat([x, d_before, h_before], -1))
        loc, scale = encoder.reader(h).chunk(2, -1)
        given = ~torch.isnan(values[:, k]).any(-1)
        d = torch.nan_to_num(values[:, k])
        log_q = torch.distributions.Normal(loc, F.softplus(scale)).log_prob(d).sum(-1)
        expected = expected + torch.where(given & (k < counts), log_q, 0.0)
        d_before, h_before = d, h
    torch.testing.assert_close(result.log_q_supervised[[0, 1, 2]], expected)


def test_a_step_without_a_value_is_drawn_like_a_hidden_label() -> None:
    torch.manual_seed(0)
    model = gmdsl.compile(VALUED_STEPS).double()
    x = torch.randn(2, 16, dtype=torch.double)
    values = torch.full((2, 3, 2), float("nan"), dtype=torch.double)
    values[:, 0] = torch.tensor([0.5, -0.5])
    torch.manual_seed(1)
    result = model.objective({"x": x, "count": torch.tensor([2, 2]), "d": values})
    steps = result.values["d"].reshape(-1, 2, 3, 2)
    torch.testing.assert_close(steps[..., 0, :], values[:, 0].expand_as(steps[..., 0, :]))
    assert torch.isfinite(steps).all() and (steps[..., 1, :] != 0).all()  # step 2: drawn
    # labelled only at step 1 scores exactly what a model labelled at step 1 and hidden after does
    torch.testing.assert_close(
        result.log_q_supervised,
        model.objective({"x": x, "count": torch.tensor([1, 1]), "d": values}).log_q_supervised
        - torch.log_softmax(model.encoder.counter(x), -1)[:, 1]
        + torch.log_softmax(model.encoder.counter(x), -1)[:, 2],
    )
    predicted = model.predict({"x": x})
    assert predicted["d"].shape == (2, 3, 2) and torch.isfinite(predicted["d"]).all()
    with pytest.raises(gmdsl.runtime.BatchError, match="given\\['d'\\] has 8 NaN or infinite values"):
        model.sample(2, given={"d": values})  # p draws from values: none may be missing


@pytest.mark.parametrize(
    ("fill", "message"),
    [
        ((0, 0, 0), "1 step\\(s\\) with some values NaN but not all"),
        ((0, 0, slice(None)), None),  # a whole step NaN: no label there, accepted
        ((0, 1, slice(None)), None),
    ],
)
def test_a_value_per_step_is_nan_throughout_or_not_at_all(fill: tuple, message: str | None) -> None:
    model = gmdsl.compile(VALUED_STEPS)
    values = torch.zeros(1, 3, 2)
    values[fill] = float("nan")
    batch = {"x": torch.randn(1, 16), "count": torch.tensor([2]), "d": values}
    if message is None:
        assert torch.isfinite(model.objective(batch).elbo).all()
    else:
        with pytest.raises(gmdsl.runtime.BatchError, match=message):
            model.objective(batch)


def test_values_per_step_on_no_labelled_row_are_not_read() -> None:
    model = gmdsl.compile(VALUED_STEPS)
    batch = {"x": torch.randn(2, 16), "count": torch.tensor([1, 2]), "d": torch.full((2, 3, 2), float("nan"))}
    batch["d_observed"] = torch.tensor([False, False])
    assert torch.isfinite(model.objective(batch).elbo).all()


# a memory each graph reads only at the step before: p's `m`, q's `seen`
MEMORY = """
model memory
observed   x : real[8]
supervised n : onehot[3]
p(n) = Categorical(probs = uniform)
q(n | x) = Categorical(logits = counter(x)) by enumeration
repeat k < n {
    latent z : real[2]
    let m    : real[4] = remember(z[k - 1], m[k - 1])
    let seen : real[4] = glance(x, z[k - 1], seen[k - 1])
    let out  : real[4] = write(z, out[k - 1])
    p(z) = Normal(loc = recall(m[k - 1]), scale = 1)
    q(z | x) = Normal(encoder(seen[k - 1]))
}
p(x | z) = Normal(loc = decoder(out), scale = 1)
net counter  = mlp(hidden = [8])
net remember = mlp(hidden = [8])
net glance   = mlp(hidden = [8])
net write    = mlp(hidden = [8])
net recall   = mlp(hidden = [8])
net encoder  = mlp(hidden = [8])
net decoder  = mlp(hidden = [8])
"""


def test_a_let_read_only_at_the_step_before_is_computed_and_kept() -> None:
    """A spec that checks runs: a let each graph reads only as `name[k - 1]` is computed at
    every step (it used to be left out, and reading it raised KeyError at run time)."""
    compilation = compile_spec(MEMORY)
    assert 'p.keep("m", ' in compilation.source and 'q.keep("seen", ' in compilation.source
    model = compilation.new_model()
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    result = model.objective({"x": x, "n": torch.tensor([0, 1, 2, 2, 1])})
    assert torch.isfinite(result.elbo).all()
    result.loss.backward()
    assert all(p.grad is not None for name, p in model.named_parameters() if "remember" in name or "glance" in name)
    assert model.predict({"x": x})["n"].shape == (5, 3)
    assert model.sample(4)["z"].shape == (4, 2, 2)


def test_an_observed_bound_checks_and_runs() -> None:
    """The count may be known for every example (docs/reference.md says so)."""
    spec = (
        MEMORY.replace("supervised n : onehot[3]", "observed n : onehot[3]")
        .replace("q(n | x) = Categorical(logits = counter(x)) by enumeration\n", "")
        .replace("net counter  = mlp(hidden = [8])\n", "")
    )
    model = compile_spec(spec).new_model()
    result = model.objective({"x": torch.randn(4, 8), "n": torch.tensor([0, 1, 2, 2])})
    assert torch.isfinite(result.elbo).all()


AFTER = """
observed x : real[4]
supervised n : onehot[3]
p(n) = Categorical(probs = uniform)
q(n | x) = Categorical(logits = counter(x)) by enumeration
repeat k < n {
    latent d : real[2]
    p(d) = Normal(0, 1)
    let pos : real[1] = step(k)
    q(d | x) = Normal(reader(x, pos))
    let total : real[2] = sum(total[k - 1], d)
}
supervised m : onehot[3]
p(m) = Categorical(probs = uniform)
q(m | x) = Categorical(logits = counter2(x)) by enumeration
repeat j < m {
    latent e : real[2]
    p(e | d) = Normal(loc = follow(d, total), scale = 1)
    q(e | x, d) = Normal(reader2(x, total))
}
p(x | d, e) = Normal(loc = decoder(d, e), scale = 1)
net counter  = mlp()
net counter2 = mlp()
net reader   = mlp(hidden = [8])
net reader2  = mlp(hidden = [8])
net follow   = mlp()
net decoder  = mlp(hidden = [8])
"""


def test_after_its_block_a_variable_reads_as_its_last_step_and_a_later_repeat_reads_the_block() -> None:
    """A repeated variable (or let) read after its block, at the top level or in a later repeat,
    is its value at step n (zeros when n = 0); `step(k)` is the step's number."""
    compilation = compile_spec(AFTER)
    source = compilation.source
    assert 'd = p.final("d")' in source and 'total = q.final("total")' in source
    assert "pos = q.step_number()" in source
    model = compilation.new_model().double()
    torch.manual_seed(0)
    x = torch.randn(3, 4, dtype=torch.float64)
    n = torch.tensor([0, 1, 2])
    q = model._recognise({"x": x, "n": n, "m": torch.tensor([1, 1, 1])}, samples=1)
    steps = q.values["d"].reshape(1, 3, 2, 2)  # [samples, rows, K_max, 2]: every step side by side
    last = torch.stack([torch.zeros(2, dtype=torch.float64), steps[0, 1, 0], steps[0, 2, 1]])
    assert torch.allclose(q.final("d")[0], last)
    totals = torch.stack([torch.zeros(2, dtype=torch.float64), steps[0, 1, 0], steps[0, 2, 0] + steps[0, 2, 1]])
    assert torch.allclose(q.final("total")[0], totals)
    # `step(k)` fed the reader 1 then 2: the two steps' q differ for one row and one network
    means = [d.params["loc"][0, 0] for d in q.step_distributions["d"]]
    assert not torch.allclose(means[0], means[1])
    result = model.objective({"x": x, "n": n, "m": torch.tensor([0, 2, 1])})
    assert torch.isfinite(result.elbo).all()
    result.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
