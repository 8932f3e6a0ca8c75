"""The model `faces`, compiled by gmdsl from faces.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 100, samples = 1, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  identity, light not given:  E_q(identity, light, shading, reflectance | x)[log p(x, identity, light, shading, reflectance) - log q(identity, light, shading, reflectance | x)]
  identity, light given:  E_q(shading, reflectance | x, identity, light)[log p(x, identity, light, shading, reflectance) - log q(identity, light, shading, reflectance | x)]
      + (1 + alpha) log q(identity, light | x), with alpha = 100
      log q(identity, light | x) is exact: no supervised variable has a sampled ancestor in q
  (a row where only some supervised variables are given counts those as given)
  identity is relaxed in q: a Concrete sample at temperature 0.66, scored with the Categorical log-probability

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(identity, light, shading, reflectance | x) = q(identity | x) q(light | x) q(shading | x) q(reflectance | x)."""

    def __init__(self):
        super().__init__()
        self.trunk = rt.conv((1, 32, 32), 1024, 256, channels=[32, 64], kernel=4, stride=2, hidden=[256], activation="relu")  # faces.gm:30
        self.identity_net = rt.mlp(256, 38, hidden=[256], activation="relu")  # faces.gm:31
        self.light_net = rt.mlp(256, 3, hidden=[256], activation="relu")  # faces.gm:32
        self.shading_net = rt.mlp(256, 32, hidden=[256], activation="relu")  # faces.gm:33
        self.reflectance_net = rt.mlp(256, 32, hidden=[256], activation="relu")  # faces.gm:34

    def forward(self, q: rt.Recognition) -> None:
        x = q.observed("x")  # faces.gm:7
        # let features : real[256] = trunk(x)
        features = self.trunk(rt.join(x))  # faces.gm:23
        # q(identity | x) = Categorical(logits = identity_net(features)) by relaxation(temperature = 0.66)
        q.sample("identity", rt.Categorical(logits=self.identity_net(rt.join(features))), relaxation=0.66)  # faces.gm:24
        # q(light | x) = Normal(loc = light_net(features), scale = 0.05)
        q.sample("light", rt.Normal(loc=self.light_net(rt.join(features)), scale=0.05))  # faces.gm:25
        # q(shading | x) = Normal(shading_net(features))
        q.sample("shading", rt.Normal.from_network(self.shading_net(rt.join(features))))  # faces.gm:26
        # q(reflectance | x) = Normal(reflectance_net(features))
        q.sample("reflectance", rt.Normal.from_network(self.reflectance_net(rt.join(features))))  # faces.gm:27


class Decoder(torch.nn.Module):
    """The generative model p(x, identity, light, shading, reflectance) = p(identity) p(light) p(shading) p(reflectance) p(x | identity, light, shading, reflectance)."""

    def __init__(self):
        super().__init__()
        self.renderer = rt.deconv(73, (1, 32, 32), channels=[64, 32], kernel=4, stride=2, hidden=[256], activation="relu")  # faces.gm:29

    def forward(self, p: rt.Generation) -> None:
        # p(identity) = Categorical(probs = uniform)
        identity = p.sample("identity", rt.Categorical(probs=rt.UNIFORM))  # faces.gm:13
        # p(light) = Normal(loc = 0, scale = 1)
        light = p.sample("light", rt.Normal(loc=0.0, scale=1.0))  # faces.gm:14
        # p(shading) = Normal(loc = 0, scale = 1)
        shading = p.sample("shading", rt.Normal(loc=0.0, scale=1.0))  # faces.gm:15
        # p(reflectance) = Normal(loc = 0, scale = 1)
        reflectance = p.sample("reflectance", rt.Normal(loc=0.0, scale=1.0))  # faces.gm:16
        # p(x | identity, light, shading, reflectance) = Normal(loc = renderer(identity, light, shading, reflectance), scale = 0.05)
        p.sample("x", rt.Normal(loc=self.renderer(rt.join(identity, light, shading, reflectance)), scale=0.05))  # faces.gm:17


class Model(rt.CompiledModel):
    """faces: q is `Encoder`, p is `Decoder`."""

    name = "faces"
    variables = (
        rt.Variable("x", "observed", "real", (1, 32, 32)),
        rt.Variable("identity", "supervised", "onehot", (38,)),
        rt.Variable("light", "supervised", "real", (3,)),
        rt.Variable("shading", "latent", "real", (16,)),
        rt.Variable("reflectance", "latent", "real", (16,)),
    )
    options = rt.ObjectiveOptions(alpha=100.0, samples=1, beta=1.0, estimator="snis")
    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact

    def __init__(self):
        super().__init__(Encoder(), Decoder())
