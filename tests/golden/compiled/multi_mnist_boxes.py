"""The model `multi_mnist_boxes`, compiled by gmdsl from multi_mnist_boxes.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 100, samples = 1, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  count, digits, where not given:  E_q(count, digits, where, style | x)[log p(x, count, digits, style, where) - log q(count, digits, where, style | x)]
  count, digits, where given:  E_q(style | x, count, digits, where)[log p(x, count, digits, style, where) - log q(count, digits, where, style | x)]
      + (1 + alpha) log q(count, digits, where | x), with alpha = 100
      log q(count, digits, where | x) is exact: no supervised variable has a sampled ancestor in q
  (a row where only some supervised variables are given counts those as given)
  digits is relaxed in q: a Concrete sample at temperature 0.66, scored with the Categorical log-probability
  count is summed by enumeration: every one of its 4 values, weighted by q
  digits, style, where repeat for k = 1..3: a step's log-densities count where k <= count, and the repeat's `let`s read after it are their values at step count

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(count, digits, style, where | x) = q(count | x) q(where | x) q(digits | x) q(style | x, digits)."""

    def __init__(self):
        super().__init__()
        self.trunk = rt.conv((1, 64, 64), 4096, 256, channels=[32, 64], kernel=4, stride=2, hidden=[256], activation="relu")  # multi_mnist_boxes.gm:44
        self.counter = rt.mlp(256, 4, hidden=[256], activation="relu")  # multi_mnist_boxes.gm:45
        self.reader = rt.gru(525, 256)  # multi_mnist_boxes.gm:46
        self.locator = rt.mlp(256, 3, hidden=[256], activation="relu")  # multi_mnist_boxes.gm:47
        self.spread = rt.mlp(256, 3, hidden=[64], activation="relu")  # multi_mnist_boxes.gm:50
        self.classifier = rt.conv((1, 28, 28), 784, 10, channels=[32, 64], kernel=4, stride=2, hidden=[256], activation="relu")  # multi_mnist_boxes.gm:48
        self.encoder = rt.mlp(794, 20, hidden=[256], activation="relu")  # multi_mnist_boxes.gm:49

    def forward(self, q: rt.Recognition) -> None:
        x = q.observed("x")  # multi_mnist_boxes.gm:14
        # let features : real[256] = trunk(x)
        features = self.trunk(rt.join(x))  # multi_mnist_boxes.gm:19
        # q(count | x) = Categorical(logits = counter(features)) by enumeration
        q.sample("count", rt.Categorical(logits=self.counter(rt.join(features))), enumeration=True)  # multi_mnist_boxes.gm:20
        # repeat k < count: steps 1..3; those past the value of count add nothing
        for _ in q.repeat("k", "count", steps=3, lets={"state": 256}):  # multi_mnist_boxes.gm:22
            # let state : real[256] = reader(features, digits[k - 1], where[k - 1], state[k - 1])
            state = q.keep("state", self.reader(rt.join(features, q.before("digits"), q.before("where"), q.before("state"))))  # multi_mnist_boxes.gm:34
            # let box : real[3] = locator(state)
            box = self.locator(rt.join(state))  # multi_mnist_boxes.gm:35
            # q(where | x) = Normal(loc = box, scale = spread(state))
            q.sample("where", rt.Normal(loc=box, scale=rt.softplus(self.spread(rt.join(state)))))  # multi_mnist_boxes.gm:36
            # let seen : real[1, 28, 28] = glimpse(x, box)
            seen = rt.glimpse(x, box, shapes=((1, 64, 64), (3,), (1, 28, 28)))  # multi_mnist_boxes.gm:37
            # q(digits | x) = Categorical(logits = classifier(seen)) by relaxation(temperature = 0.66)
            digits = q.sample("digits", rt.Categorical(logits=self.classifier(rt.join(seen))), relaxation=0.66)  # multi_mnist_boxes.gm:38
            # q(style | x, digits) = Normal(encoder(seen, digits))
            encoder_seen = rt.Share(seen)  # hoisted: encoder's first layer multiplies seen at seen's own dimensions, not once per draw
            q.sample("style", rt.Normal.from_network(self.encoder.finish(encoder_seen, digits)))  # multi_mnist_boxes.gm:39


class Decoder(torch.nn.Module):
    """The generative model p(x, count, digits, style, where) = p(count) p(digits) p(style) p(where) p(x | digits, style, where)."""

    def __init__(self):
        super().__init__()
        self.writer = rt.mlp(20, 784, hidden=[256], activation="relu", output_bias=-2)  # multi_mnist_boxes.gm:51
        self.register_buffer("where_loc", torch.tensor([0.36, 0.0, 0.0]), persistent=False)  # multi_mnist_boxes.gm:30
        self.register_buffer("where_scale", torch.tensor([0.05, 0.5, 0.5]), persistent=False)  # multi_mnist_boxes.gm:30

    def forward(self, p: rt.Generation) -> None:
        # p(count) = Categorical(probs = uniform)
        p.sample("count", rt.Categorical(probs=rt.UNIFORM))  # multi_mnist_boxes.gm:17
        # repeat k < count: steps 1..3; those past the value of count add nothing
        for _ in p.repeat("k", "count", steps=3, lets={"canvas": 4096}):  # multi_mnist_boxes.gm:22
            # p(digits) = Categorical(probs = uniform)
            digits = p.sample("digits", rt.Categorical(probs=rt.UNIFORM))  # multi_mnist_boxes.gm:27
            # p(style) = Normal(loc = 0, scale = 1)
            style = p.sample("style", rt.Normal(loc=0.0, scale=1.0))  # multi_mnist_boxes.gm:28
            # p(where) = Normal(loc = [0.36, 0, 0], scale = [0.05, 0.5, 0.5])
            where = p.sample("where", rt.Normal(loc=self.where_loc, scale=self.where_scale))  # multi_mnist_boxes.gm:30
            # let patch : unit[1, 28, 28] = writer(digits, style)
            patch = rt.sigmoid(self.writer(rt.join(digits, style)))  # multi_mnist_boxes.gm:31
            # let canvas : real[1, 64, 64] = place(patch, where, canvas[k - 1])
            canvas = p.keep("canvas", rt.place(patch, where, p.before("canvas"), shapes=((1, 28, 28), (3,), (1, 64, 64), (1, 64, 64))))  # multi_mnist_boxes.gm:32
        canvas = p.final("canvas")  # its value at step count
        # p(x | digits, style, where) = Normal(loc = canvas, scale = 0.3)
        p.sample("x", rt.Normal(loc=canvas, scale=0.3))  # multi_mnist_boxes.gm:42


class Model(rt.CompiledModel):
    """multi_mnist_boxes: q is `Encoder`, p is `Decoder`."""

    name = "multi_mnist_boxes"
    variables = (
        rt.Variable("x", "observed", "real", (1, 64, 64)),
        rt.Variable("count", "supervised", "onehot", (4,)),
        rt.Variable("digits", "supervised", "onehot", (3, 10), repeat="k"),
        rt.Variable("style", "latent", "real", (3, 10), repeat="k"),
        rt.Variable("where", "supervised", "real", (3, 3), repeat="k"),
    )
    options = rt.ObjectiveOptions(alpha=100.0, samples=1, beta=1.0, estimator="snis")
    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact
    enumerated = ("count",)  # summed over every value in q where not given

    def __init__(self):
        super().__init__(Encoder(), Decoder())
