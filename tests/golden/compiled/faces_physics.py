"""The model `faces_physics`, compiled by gmdsl from faces_physics.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 100, samples = 1, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  identity, light not given:  E_q(identity, light, shape, reflectance | x)[log p(x, identity, light, shape, reflectance) - log q(identity, light, shape, reflectance | x)]
  identity, light given:  E_q(shape, reflectance | x, identity, light)[log p(x, identity, light, shape, reflectance) - log q(identity, light, shape, reflectance | x)]
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
    """The recognition model q(identity, light, shape, reflectance | x) = q(identity | x) q(light | x) q(shape | x) q(reflectance | x)."""

    def __init__(self):
        super().__init__()
        self.trunk = rt.conv((1, 32, 32), 1024, 256, channels=[32, 64], kernel=4, stride=2, hidden=[256], activation="relu")  # faces_physics.gm:34
        self.identity_net = rt.mlp(256, 38, hidden=[256], activation="relu")  # faces_physics.gm:35
        self.light_net = rt.mlp(256, 3, hidden=[256], activation="relu")  # faces_physics.gm:36
        self.shape_net = rt.mlp(256, 32, hidden=[256], activation="relu")  # faces_physics.gm:37
        self.reflectance_net = rt.mlp(256, 32, hidden=[256], activation="relu")  # faces_physics.gm:38

    def forward(self, q: rt.Recognition) -> None:
        x = q.observed("x")  # faces_physics.gm:7
        # let features : real[256] = trunk(x)
        features = self.trunk(rt.join(x))  # faces_physics.gm:26
        # q(identity | x) = Categorical(logits = identity_net(features)) by relaxation(temperature = 0.66)
        q.sample("identity", rt.Categorical(logits=self.identity_net(rt.join(features))), relaxation=0.66)  # faces_physics.gm:27
        # q(light | x) = Normal(loc = light_net(features), scale = 0.05)
        q.sample("light", rt.Normal(loc=self.light_net(rt.join(features)), scale=0.05))  # faces_physics.gm:28
        # q(shape | x) = Normal(shape_net(features))
        q.sample("shape", rt.Normal.from_network(self.shape_net(rt.join(features))))  # faces_physics.gm:29
        # q(reflectance | x) = Normal(reflectance_net(features))
        q.sample("reflectance", rt.Normal.from_network(self.reflectance_net(rt.join(features))))  # faces_physics.gm:30


class Decoder(torch.nn.Module):
    """The generative model p(x, identity, light, shape, reflectance) = p(identity) p(light) p(shape) p(reflectance) p(x | identity, light, shape, reflectance)."""

    def __init__(self):
        super().__init__()
        self.surface = rt.deconv(54, (3, 32, 32), channels=[64, 32], kernel=4, stride=2, hidden=[256], activation="relu")  # faces_physics.gm:32
        self.skin = rt.deconv(54, (1, 32, 32), channels=[64, 32], kernel=4, stride=2, hidden=[256], activation="relu")  # faces_physics.gm:33

    def forward(self, p: rt.Generation) -> None:
        # p(identity) = Categorical(probs = uniform)
        identity = p.sample("identity", rt.Categorical(probs=rt.UNIFORM))  # faces_physics.gm:13
        # p(light) = Normal(loc = 0, scale = 1)
        light = p.sample("light", rt.Normal(loc=0.0, scale=1.0))  # faces_physics.gm:14
        # p(shape) = Normal(loc = 0, scale = 1)
        shape = p.sample("shape", rt.Normal(loc=0.0, scale=1.0))  # faces_physics.gm:15
        # p(reflectance) = Normal(loc = 0, scale = 1)
        reflectance = p.sample("reflectance", rt.Normal(loc=0.0, scale=1.0))  # faces_physics.gm:16
        # let normals : real[3, 32, 32] = surface(identity, shape)
        normals = self.surface(rt.join(identity, shape))  # faces_physics.gm:17
        # let albedo : unit[1, 32, 32] = skin(identity, reflectance)
        albedo = rt.sigmoid(self.skin(rt.join(identity, reflectance)))  # faces_physics.gm:18
        # let shading : real[1, 32, 32] = lambert(normals, light)
        shading = rt.lambert(normals, light)  # faces_physics.gm:19
        # let mean : real[1, 32, 32] = product(albedo, shading)
        mean = rt.product(albedo, shading)  # faces_physics.gm:20
        # p(x | identity, light, shape, reflectance) = Normal(loc = mean, scale = 0.05)
        p.sample("x", rt.Normal(loc=mean, scale=0.05))  # faces_physics.gm:21


class Model(rt.CompiledModel):
    """faces_physics: q is `Encoder`, p is `Decoder`."""

    name = "faces_physics"
    variables = (
        rt.Variable("x", "observed", "real", (1, 32, 32)),
        rt.Variable("identity", "supervised", "onehot", (38,)),
        rt.Variable("light", "supervised", "real", (3,)),
        rt.Variable("shape", "latent", "real", (16,)),
        rt.Variable("reflectance", "latent", "real", (16,)),
    )
    options = rt.ObjectiveOptions(alpha=100.0, samples=1, beta=1.0, estimator="snis")
    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact

    def __init__(self):
        super().__init__(Encoder(), Decoder())
