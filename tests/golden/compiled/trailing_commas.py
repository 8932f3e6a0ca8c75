"""The model `layout`, compiled by gmdsl from trailing_commas.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 0.1, samples = 2, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  every example:  E_q(by | net)[log p(net, by) - log q(by | net)]

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(by | net) = q(by | net)."""

    def __init__(self):
        super().__init__()
        self.encoder = rt.conv((1, 4, 4), 16, 6, channels=[4], kernel=3, stride=2, hidden=[], activation="relu")  # trailing_commas.gm:15

    def forward(self, q: rt.Recognition) -> None:
        net = q.observed("net")  # trailing_commas.gm:4
        # q(by | net) = Normal(encoder(net))
        q.sample("by", rt.Normal.from_network(self.encoder(rt.join(net))))  # trailing_commas.gm:12


class Decoder(torch.nn.Module):
    """The generative model p(net, by) = p(by) p(net | by)."""

    def __init__(self):
        super().__init__()
        self.decoder = rt.mlp(3, 16, hidden=[16, 16], activation="tanh")  # trailing_commas.gm:14

    def forward(self, p: rt.Generation) -> None:
        # p(by) = Normal(loc = 0, scale = 1)
        by = p.sample("by", rt.Normal(loc=0.0, scale=1.0))  # trailing_commas.gm:7
        # p(net | by) = Normal(loc = decoder(by), scale = 0.5)
        p.sample("net", rt.Normal(loc=self.decoder(rt.join(by)), scale=0.5))  # trailing_commas.gm:8


class Model(rt.CompiledModel):
    """layout: q is `Encoder`, p is `Decoder`."""

    name = "layout"
    variables = (
        rt.Variable("net", "observed", "real", (1, 4, 4)),
        rt.Variable("by", "latent", "real", (3,)),
    )
    options = rt.ObjectiveOptions(alpha=0.1, samples=2, beta=1.0, estimator="snis")
    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact

    def __init__(self):
        super().__init__(Encoder(), Decoder())
