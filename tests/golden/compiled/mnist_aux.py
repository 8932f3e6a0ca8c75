"""The model `mnist_aux`, compiled by gmdsl from mnist_aux.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 10, samples = 1, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  y not given:  E_q(y, z, a | x)[log p(x, y, z, a) - log q(y, z, a | x)]
  y given:  sum_s (w_s / sum_t w_t) [log p(x, y, z_s, a_s) - log q(y, z_s, a_s | x)]
      + (1 + alpha) log q(y | x), with alpha = 10
      importance weights w_s = q(y | x, a_s); log q(y | x) ~= log (1/S) sum_s w_s
  y is summed by enumeration: every one of its 10 values, weighted by q

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(y, z, a | x) = q(a | x) q(y | x, a) q(z | x, y, a)."""

    def __init__(self):
        super().__init__()
        self.auxiliary_encoder = rt.mlp(784, 200, hidden=[500, 500], activation="relu")  # mnist_aux.gm:23
        self.classifier = rt.mlp(884, 10, hidden=[500, 500], activation="relu")  # mnist_aux.gm:25
        self.encoder = rt.mlp(894, 100, hidden=[500, 500], activation="relu")  # mnist_aux.gm:26

    def forward(self, q: rt.Recognition) -> None:
        x = q.observed("x")  # mnist_aux.gm:9
        # q(a | x) = Normal(auxiliary_encoder(x))
        a = q.sample("a", rt.Normal.from_network(self.auxiliary_encoder(rt.join(x))))  # mnist_aux.gm:19
        # q(y | x, a) = Categorical(logits = classifier(x, a)) by enumeration
        classifier_x = rt.Share(x)  # hoisted: classifier's first layer multiplies x at x's own dimensions, not once per draw
        y = q.sample("y", rt.Categorical(logits=self.classifier.finish(classifier_x, a)), enumeration=True)  # mnist_aux.gm:20
        # q(z | x, y, a) = Normal(encoder(x, y, a))
        encoder_x = rt.Share(x)  # hoisted: encoder's first layer multiplies x at x's own dimensions, not once per draw
        encoder_y = rt.Share(y)  # hoisted: encoder's first layer multiplies y at y's own dimensions, not once per draw
        encoder_a = rt.Share(a)  # hoisted: encoder's first layer multiplies a at a's own dimensions, not once per draw
        q.sample("z", rt.Normal.from_network(self.encoder.finish(encoder_x, encoder_y, encoder_a)))  # mnist_aux.gm:21


class Decoder(torch.nn.Module):
    """The generative model p(x, y, z, a) = p(y) p(z) p(x | y, z) p(a | x, y, z)."""

    def __init__(self):
        super().__init__()
        self.decoder = rt.mlp(60, 784, hidden=[500, 500], activation="relu")  # mnist_aux.gm:27
        self.auxiliary_decoder = rt.mlp(844, 200, hidden=[500, 500], activation="relu")  # mnist_aux.gm:24

    def forward(self, p: rt.Generation) -> None:
        # p(y) = Categorical(probs = uniform)
        y = p.sample("y", rt.Categorical(probs=rt.UNIFORM))  # mnist_aux.gm:14
        # p(z) = Normal(loc = 0, scale = 1)
        z = p.sample("z", rt.Normal(loc=0.0, scale=1.0))  # mnist_aux.gm:15
        # p(x | y, z) = Bernoulli(logits = decoder(y, z))
        decoder_y = rt.Share(y)  # hoisted: decoder's first layer multiplies y at y's own dimensions, not once per draw
        x = p.sample("x", rt.Bernoulli(logits=self.decoder.finish(decoder_y, z)))  # mnist_aux.gm:16
        # p(a | x, y, z) = Normal(auxiliary_decoder(x, y, z))
        auxiliary_decoder_x = rt.Share(x)  # hoisted: auxiliary_decoder's first layer multiplies x at x's own dimensions, not once per draw
        auxiliary_decoder_y = rt.Share(y)  # hoisted: auxiliary_decoder's first layer multiplies y at y's own dimensions, not once per draw
        p.sample("a", rt.Normal.from_network(self.auxiliary_decoder.finish(auxiliary_decoder_x, auxiliary_decoder_y, z)))  # mnist_aux.gm:17


class Model(rt.CompiledModel):
    """mnist_aux: q is `Encoder`, p is `Decoder`."""

    name = "mnist_aux"
    variables = (
        rt.Variable("x", "observed", "binary", (784,)),
        rt.Variable("y", "supervised", "onehot", (10,)),
        rt.Variable("z", "latent", "real", (50,)),
        rt.Variable("a", "latent", "real", (100,)),
    )
    options = rt.ObjectiveOptions(alpha=10.0, samples=1, beta=1.0, estimator="snis")
    constant_weights = False  # a label sits below a sampled variable in q: importance weights
    enumerated = ("y",)  # summed over every value in q where not given

    def __init__(self):
        super().__init__(Encoder(), Decoder())
