"""The model `fashion_cb`, compiled by gmdsl from fashion_cb.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 10, samples = 1, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  y not given:  E_q(y, z | x)[log p(x, y, z) - log q(y, z | x)]
  y given:  E_q(z | x, y)[log p(x, y, z) - log q(y, z | x)]
      + (1 + alpha) log q(y | x), with alpha = 10
      log q(y | x) is exact: no supervised variable has a sampled ancestor in q
  y is summed by enumeration: every one of its 10 values, weighted by q

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(y, z | x) = q(y | x) q(z | x, y)."""

    def __init__(self):
        super().__init__()
        self.classifier = rt.mlp(784, 10, hidden=[500, 500], activation="relu")  # fashion_cb.gm:20
        self.encoder = rt.mlp(794, 100, hidden=[500, 500], activation="relu")  # fashion_cb.gm:21

    def forward(self, q: rt.Recognition) -> None:
        x = q.observed("x")  # fashion_cb.gm:7
        # q(y | x) = Categorical(logits = classifier(x)) by enumeration
        y = q.sample("y", rt.Categorical(logits=self.classifier(rt.join(x))), enumeration=True)  # fashion_cb.gm:17
        # q(z | x, y) = Normal(encoder(x, y))
        encoder_x = rt.Share(x)  # hoisted: encoder's first layer multiplies x at x's own dimensions, not once per draw
        q.sample("z", rt.Normal.from_network(self.encoder.finish(encoder_x, y)))  # fashion_cb.gm:18


class Decoder(torch.nn.Module):
    """The generative model p(x, y, z) = p(y) p(z) p(x | y, z)."""

    def __init__(self):
        super().__init__()
        self.decoder = rt.mlp(60, 784, hidden=[500, 500], activation="relu")  # fashion_cb.gm:22
        self.class_prior = torch.nn.Parameter(torch.full((10,), 0.0))  # fashion_cb.gm:11

    def forward(self, p: rt.Generation) -> None:
        # param class_prior : simplex[10]
        class_prior = rt.softmax(self.class_prior, 10)  # fashion_cb.gm:11
        # p(y) = Categorical(probs = class_prior)
        y = p.sample("y", rt.Categorical(probs=class_prior))  # fashion_cb.gm:13
        # p(z) = Normal(loc = 0, scale = 1)
        z = p.sample("z", rt.Normal(loc=0.0, scale=1.0))  # fashion_cb.gm:14
        # p(x | y, z) = ContinuousBernoulli(logits = decoder(y, z))
        decoder_y = rt.Share(y)  # hoisted: decoder's first layer multiplies y at y's own dimensions, not once per draw
        p.sample("x", rt.ContinuousBernoulli(logits=self.decoder.finish(decoder_y, z)))  # fashion_cb.gm:15


class Model(rt.CompiledModel):
    """fashion_cb: q is `Encoder`, p is `Decoder`."""

    name = "fashion_cb"
    variables = (
        rt.Variable("x", "observed", "binary", (784,)),
        rt.Variable("y", "supervised", "onehot", (10,)),
        rt.Variable("z", "latent", "real", (50,)),
    )
    options = rt.ObjectiveOptions(alpha=10.0, samples=1, beta=1.0, estimator="snis")
    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact
    enumerated = ("y",)  # summed over every value in q where not given

    def __init__(self):
        super().__init__(Encoder(), Decoder())
