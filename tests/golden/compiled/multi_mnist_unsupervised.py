"""The model `multi_mnist`, compiled by gmdsl from multi_mnist_unsupervised.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 100, samples = 1, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  count not given:  E_q(count, digit, style, where | x)[log p(x, count, digit, style, where) - log q(count, digit, style, where | x)]
  count given:  E_q(digit, style, where | x, count)[log p(x, count, digit, style, where) - log q(count, digit, style, where | x)]
      + (1 + alpha) log q(count | x), with alpha = 100
      log q(count | x) is exact: no supervised variable has a sampled ancestor in q
  digit is relaxed in q: a Concrete sample at temperature 0.66, scored with the Categorical log-probability
  count is summed by enumeration: every one of its 4 values, weighted by q
  digit, style, where repeat for k = 1..3: a step's log-densities count where k <= count, and the repeat's `let`s read after it are their values at step count

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(count, digit, style, where | x) = q(count | x) q(where | x) q(digit | x, where) q(style | x, where, digit)."""

    def __init__(self):
        super().__init__()
        self.trunk = rt.conv((1, 64, 64), 4096, 256, channels=[32, 64], kernel=4, stride=2, hidden=[256], activation="relu")  # multi_mnist_unsupervised.gm:49
        self.counter = rt.mlp(256, 4, hidden=[256], activation="relu")  # multi_mnist_unsupervised.gm:50
        self.reader = rt.gru(525, 256)  # multi_mnist_unsupervised.gm:51
        self.locator = rt.mlp(256, 6, hidden=[256], activation="relu")  # multi_mnist_unsupervised.gm:52
        self.classifier = rt.mlp(784, 10, hidden=[256], activation="relu")  # multi_mnist_unsupervised.gm:53
        self.encoder = rt.mlp(794, 20, hidden=[256], activation="relu")  # multi_mnist_unsupervised.gm:54

    def forward(self, q: rt.Recognition) -> None:
        x = q.observed("x")  # multi_mnist_unsupervised.gm:14
        # let features : real[256] = trunk(x)
        features = self.trunk(rt.join(x))  # multi_mnist_unsupervised.gm:20
        # q(count | x) = Categorical(logits = counter(features)) by enumeration
        q.sample("count", rt.Categorical(logits=self.counter(rt.join(features))), enumeration=True)  # multi_mnist_unsupervised.gm:21
        # repeat k < count: steps 1..3; those past the value of count add nothing
        for _ in q.repeat("k", "count", steps=3, lets={"state": 256}):  # multi_mnist_unsupervised.gm:24
            # let state : real[256] = reader(features, digit[k - 1], where[k - 1], state[k - 1])
            state = q.keep("state", self.reader(rt.join(features, q.before("digit"), q.before("where"), q.before("state"))))  # multi_mnist_unsupervised.gm:39
            # q(where | x) = Normal(locator(state))
            where = q.sample("where", rt.Normal.from_network(self.locator(rt.join(state))))  # multi_mnist_unsupervised.gm:40
            # let seen : real[1, 28, 28] = glimpse(x, where)
            seen = rt.glimpse(x, where, shapes=((1, 64, 64), (3,), (1, 28, 28)))  # multi_mnist_unsupervised.gm:41
            # q(digit | x, where) = Categorical(logits = classifier(seen)) by relaxation(temperature = 0.66)
            digit = q.sample("digit", rt.Categorical(logits=self.classifier(rt.join(seen))), relaxation=0.66)  # multi_mnist_unsupervised.gm:42
            # q(style | x, where, digit) = Normal(encoder(seen, digit))
            q.sample("style", rt.Normal.from_network(self.encoder(rt.join(seen, digit))))  # multi_mnist_unsupervised.gm:43


class Decoder(torch.nn.Module):
    """The generative model p(x, count, digit, style, where) = p(count) p(digit) p(style) p(where) p(x | digit, style, where)."""

    def __init__(self):
        super().__init__()
        self.writer = rt.mlp(20, 784, hidden=[256], activation="relu", output_bias=-6)  # multi_mnist_unsupervised.gm:55
        self.register_buffer("count_probs", torch.tensor([0.989901, 0.009899, 9.9e-05, 1e-06]), persistent=False)  # multi_mnist_unsupervised.gm:18
        self.register_buffer("where_loc", torch.tensor([0.36, 0.0, 0.0]), persistent=False)  # multi_mnist_unsupervised.gm:34
        self.register_buffer("where_scale", torch.tensor([0.02, 0.5, 0.5]), persistent=False)  # multi_mnist_unsupervised.gm:34

    def forward(self, p: rt.Generation) -> None:
        # p(count) = Categorical(probs = [0.989901, 0.009899, 9.9e-05, 1e-06])
        p.sample("count", rt.Categorical(probs=self.count_probs))  # multi_mnist_unsupervised.gm:18
        # repeat k < count: steps 1..3; those past the value of count add nothing
        for _ in p.repeat("k", "count", steps=3, lets={"canvas": 4096}):  # multi_mnist_unsupervised.gm:24
            # p(digit) = Categorical(probs = uniform)
            digit = p.sample("digit", rt.Categorical(probs=rt.UNIFORM))  # multi_mnist_unsupervised.gm:30
            # p(style) = Normal(loc = 0, scale = 1)
            style = p.sample("style", rt.Normal(loc=0.0, scale=1.0))  # multi_mnist_unsupervised.gm:31
            # p(where) = Normal(loc = [0.36, 0, 0], scale = [0.02, 0.5, 0.5])
            where = p.sample("where", rt.Normal(loc=self.where_loc, scale=self.where_scale))  # multi_mnist_unsupervised.gm:34
            # let patch : unit[1, 28, 28] = writer(digit, style)
            patch = rt.sigmoid(self.writer(rt.join(digit, style)))  # multi_mnist_unsupervised.gm:35
            # let canvas : real[1, 64, 64] = place(patch, where, canvas[k - 1])
            canvas = p.keep("canvas", rt.place(patch, where, p.before("canvas"), shapes=((1, 28, 28), (3,), (1, 64, 64), (1, 64, 64))))  # multi_mnist_unsupervised.gm:36
        canvas = p.final("canvas")  # its value at step count
        # p(x | digit, style, where) = Normal(loc = canvas, scale = 0.3)
        p.sample("x", rt.Normal(loc=canvas, scale=0.3))  # multi_mnist_unsupervised.gm:47


class Model(rt.CompiledModel):
    """multi_mnist: q is `Encoder`, p is `Decoder`."""

    name = "multi_mnist"
    variables = (
        rt.Variable("x", "observed", "real", (1, 64, 64)),
        rt.Variable("count", "supervised", "onehot", (4,)),
        rt.Variable("digit", "latent", "onehot", (3, 10), repeat="k"),
        rt.Variable("style", "latent", "real", (3, 10), repeat="k"),
        rt.Variable("where", "latent", "real", (3, 3), repeat="k"),
    )
    options = rt.ObjectiveOptions(alpha=100.0, samples=1, beta=1.0, estimator="snis")
    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact
    enumerated = ("count",)  # summed over every value in q where not given

    def __init__(self):
        super().__init__(Encoder(), Decoder())
