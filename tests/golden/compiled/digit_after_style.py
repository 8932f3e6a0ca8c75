"""The model `digit_after_style`, compiled by gmdsl from digit_after_style.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 0.1, samples = 16, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  y not given:  E_q(y, z | x)[log p(x, y, z) - log q(y, z | x)]
  y given:  sum_s (w_s / sum_t w_t) [log p(x, y, z_s) - log q(y, z_s | x)]
      + (1 + alpha) log q(y | x), with alpha = 0.1
      importance weights w_s = q(y | x, z_s); log q(y | x) ~= log (1/S) sum_s w_s
  y is summed by enumeration: every one of its 10 values, weighted by q

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(y, z | x) = q(z | x) q(y | x, z)."""

    def __init__(self):
        super().__init__()
        self.trunk = rt.mlp(784, 128, hidden=[256], activation="relu")  # digit_after_style.gm:17
        self.encoder = rt.mlp(128, 32, hidden=[], activation="relu")  # digit_after_style.gm:18
        self.classifier = rt.mlp(144, 10, hidden=[64], activation="relu")  # digit_after_style.gm:19

    def forward(self, q: rt.Recognition) -> None:
        x = q.observed("x")  # digit_after_style.gm:3
        # let h : real[128] = trunk(x)
        h = self.trunk(rt.join(x))  # digit_after_style.gm:13
        # q(z | x) = Normal(encoder(h))
        z = q.sample("z", rt.Normal.from_network(self.encoder(rt.join(h))))  # digit_after_style.gm:14
        # q(y | x, z) = Categorical(logits = classifier(h, z)) by enumeration
        classifier_h = rt.Share(h)  # hoisted: classifier's first layer multiplies h at h's own dimensions, not once per draw
        q.sample("y", rt.Categorical(logits=self.classifier.finish(classifier_h, z)), enumeration=True)  # digit_after_style.gm:15


class Decoder(torch.nn.Module):
    """The generative model p(x, y, z) = p(z) p(y) p(x | y, z)."""

    def __init__(self):
        super().__init__()
        self.decoder = rt.mlp(26, 784, hidden=[256], activation="relu")  # digit_after_style.gm:20

    def forward(self, p: rt.Generation) -> None:
        # p(z) = Normal(loc = 0, scale = 1)
        z = p.sample("z", rt.Normal(loc=0.0, scale=1.0))  # digit_after_style.gm:7
        # p(y) = Categorical(probs = uniform)
        y = p.sample("y", rt.Categorical(probs=rt.UNIFORM))  # digit_after_style.gm:8
        # p(x | y, z) = Bernoulli(logits = decoder(y, z))
        decoder_y = rt.Share(y)  # hoisted: decoder's first layer multiplies y at y's own dimensions, not once per draw
        decoder_z = rt.Share(z)  # hoisted: decoder's first layer multiplies z at z's own dimensions, not once per draw
        p.sample("x", rt.Bernoulli(logits=self.decoder.finish(decoder_y, decoder_z)))  # digit_after_style.gm:9


class Model(rt.CompiledModel):
    """digit_after_style: q is `Encoder`, p is `Decoder`."""

    name = "digit_after_style"
    variables = (
        rt.Variable("x", "observed", "binary", (784,)),
        rt.Variable("y", "supervised", "onehot", (10,)),
        rt.Variable("z", "latent", "real", (16,)),
    )
    options = rt.ObjectiveOptions(alpha=0.1, samples=16, beta=1.0, estimator="snis")
    constant_weights = False  # a label sits below a sampled variable in q: importance weights
    enumerated = ("y",)  # summed over every value in q where not given

    def __init__(self):
        super().__init__(Encoder(), Decoder())
