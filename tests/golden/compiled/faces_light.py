"""The model `faces_light`, compiled by gmdsl from faces_light.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 1.0, samples = 4, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  light not given:  E_q(light, shape | x)[log p(x, light, shape) - log q(light, shape | x)]
  light given:  E_q(shape | x, light)[log p(x, light, shape) - log q(light, shape | x)]
      + (1 + alpha) log q(light | x), with alpha = 1.0
      log q(light | x) is exact: no supervised variable has a sampled ancestor in q

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(light, shape | x) = q(light | x) q(shape | x, light)."""

    def __init__(self):
        super().__init__()
        self.light_net = rt.mlp(1024, 6, hidden=[256], activation="relu")  # faces_light.gm:17
        self.shape_net = rt.mlp(1027, 64, hidden=[256], activation="relu")  # faces_light.gm:18

    def forward(self, q: rt.Recognition) -> None:
        x = q.observed("x")  # faces_light.gm:5
        # q(light | x) = Normal(light_net(x))
        light = q.sample("light", rt.Normal.from_network(self.light_net(rt.join(x))))  # faces_light.gm:13
        # q(shape | x, light) = Normal(shape_net(x, light))
        shape_net_x = rt.Share(x)  # hoisted: shape_net's first layer multiplies x at x's own dimensions, not once per draw
        q.sample("shape", rt.Normal.from_network(self.shape_net.finish(shape_net_x, light)))  # faces_light.gm:14


class Decoder(torch.nn.Module):
    """The generative model p(x, light, shape) = p(light) p(shape) p(x | light, shape)."""

    def __init__(self):
        super().__init__()
        self.renderer = rt.mlp(35, 1024, hidden=[512, 512], activation="relu")  # faces_light.gm:16

    def forward(self, p: rt.Generation) -> None:
        # p(light) = Normal(loc = 0, scale = 1)
        light = p.sample("light", rt.Normal(loc=0.0, scale=1.0))  # faces_light.gm:9
        # p(shape) = Normal(loc = 0, scale = 1)
        shape = p.sample("shape", rt.Normal(loc=0.0, scale=1.0))  # faces_light.gm:10
        # p(x | light, shape) = Normal(loc = renderer(light, shape), scale = 0.1)
        p.sample("x", rt.Normal(loc=self.renderer(rt.join(light, shape)), scale=0.1))  # faces_light.gm:11


class Model(rt.CompiledModel):
    """faces_light: q is `Encoder`, p is `Decoder`."""

    name = "faces_light"
    variables = (
        rt.Variable("x", "observed", "real", (1, 32, 32)),
        rt.Variable("light", "supervised", "real", (3,)),
        rt.Variable("shape", "latent", "real", (32,)),
    )
    options = rt.ObjectiveOptions(alpha=1.0, samples=4, beta=1.0, estimator="snis")
    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact

    def __init__(self):
        super().__init__(Encoder(), Decoder())
