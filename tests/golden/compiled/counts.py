"""The model `counts`, compiled by gmdsl from counts.gm.

Trained with the semi-supervised objective of Siddharth et al. (2017),
semisupervised(alpha = 1, samples = 4, beta = 1, estimator = snis), per example, from S draws of q
(the spec's S and alpha; `gmdsl train --samples/--alpha` and objective() may set others):
  topic not given:  E_q(topic, themes, style, rate | words, length)[log p(words, length, topic, themes, style, rate) - log q(topic, themes, style, rate | words, length)]
  topic given:  E_q(themes, style, rate | words, length, topic)[log p(words, length, topic, themes, style, rate) - log q(topic, themes, style, rate | words, length)]
      + (1 + alpha) log q(topic | words, length), with alpha = 1
      log q(topic | words, length) is exact: no supervised variable has a sampled ancestor in q
  topic is summed by enumeration: every one of its 5 values, weighted by q

Generated code: change the spec and recompile rather than editing this file.
"""

# Each statement is one factor or network on one line, ending in the spec line it compiles.
# ruff: noqa: E501

import torch

from gmdsl import runtime as rt


class Encoder(torch.nn.Module):
    """The recognition model q(topic, themes, style, rate | words, length) = q(topic | words) q(themes | words, topic) q(style | words, length) q(rate | words, length)."""

    def __init__(self):
        super().__init__()
        self.classifier = rt.mlp(100, 5, hidden=[64], activation="relu")  # counts.gm:33
        self.themer = rt.mlp(105, 8, hidden=[64], activation="relu")  # counts.gm:34
        self.styler = rt.mlp(101, 16, hidden=[64], activation="relu")  # counts.gm:35
        self.rater = rt.mlp(101, 2, hidden=[16], activation="relu")  # counts.gm:36

    def forward(self, q: rt.Recognition) -> None:
        words = q.observed("words")  # counts.gm:8
        length = q.observed("length")  # counts.gm:9
        # q(topic | words) = Categorical(logits = classifier(words)) by enumeration
        topic = q.sample("topic", rt.Categorical(logits=self.classifier(rt.join(words))), enumeration=True)  # counts.gm:25
        # q(themes | words, topic) = Dirichlet(concentration = themer(words, topic))
        themer_words = rt.Share(words)  # hoisted: themer's first layer multiplies words at words's own dimensions, not once per draw
        q.sample("themes", rt.Dirichlet(concentration=rt.softplus(self.themer.finish(themer_words, topic))))  # counts.gm:26
        # q(style | words, length) = LowRankMultivariateNormal(styler(words, length), rank = 2)
        q.sample("style", rt.LowRankMultivariateNormal.from_network(self.styler(rt.join(words, length)), rank=2))  # counts.gm:27
        # q(rate | words, length) = LogNormal(rater(words, length))
        q.sample("rate", rt.LogNormal.from_network(self.rater(rt.join(words, length))))  # counts.gm:28


class Decoder(torch.nn.Module):
    """The generative model p(words, length, topic, themes, style, rate) = p(topic) p(themes | topic) p(style) p(rate) p(words | themes, style, rate) p(length | rate, style)."""

    def __init__(self):
        super().__init__()
        self.theme_prior = rt.mlp(5, 8, hidden=[], activation="relu")  # counts.gm:30
        self.writer = rt.mlp(13, 100, hidden=[64], activation="relu")  # counts.gm:31
        self.measure = rt.mlp(5, 1, hidden=[16], activation="relu")  # counts.gm:32
        self.topic_prior = torch.nn.Parameter(torch.full((5,), 0.0))  # counts.gm:15
        self.length_noise = torch.nn.Parameter(torch.full((1,), 0.5413248546129181))  # counts.gm:16
        self.register_buffer("style_loc", torch.tensor([-2.0, -2.0, -2.0, -2.0, 2.0, 2.0, 2.0, 2.0]), persistent=False)  # counts.gm:20

    def forward(self, p: rt.Generation) -> None:
        # param topic_prior : simplex[5]
        topic_prior = rt.softmax(self.topic_prior, 5)  # counts.gm:15
        # param length_noise : positive[1]
        length_noise = rt.softplus(self.length_noise)  # counts.gm:16
        # p(topic) = Categorical(probs = topic_prior)
        topic = p.sample("topic", rt.Categorical(probs=topic_prior))  # counts.gm:18
        # p(themes | topic) = Dirichlet(concentration = theme_prior(topic))
        themes = p.sample("themes", rt.Dirichlet(concentration=rt.softplus(self.theme_prior(rt.join(topic)))))  # counts.gm:19
        # p(style) = NormalMixture(weights = uniform, loc = [-2, -2, -2, -2, 2, 2, 2, 2], scale = 1, components = 2)
        style = p.sample("style", rt.NormalMixture(weights=rt.UNIFORM, loc=self.style_loc, scale=1.0, components=2))  # counts.gm:20
        # p(rate) = Exponential(rate = 0.1)
        rate = p.sample("rate", rt.Exponential(rate=0.1))  # counts.gm:21
        # p(words | themes, style, rate) = Poisson(rate = writer(themes, style, rate))
        writer_style = rt.Share(style)  # hoisted: writer's first layer multiplies style at style's own dimensions, not once per draw
        writer_rate = rt.Share(rate)  # hoisted: writer's first layer multiplies rate at rate's own dimensions, not once per draw
        p.sample("words", rt.Poisson(rate=rt.softplus(self.writer.finish(themes, writer_style, writer_rate))))  # counts.gm:22
        # p(length | rate, style) = StudentT(df = 4, loc = measure(rate, style), scale = length_noise)
        p.sample("length", rt.StudentT(df=4.0, loc=self.measure(rt.join(rate, style)), scale=length_noise))  # counts.gm:23


class Model(rt.CompiledModel):
    """counts: q is `Encoder`, p is `Decoder`."""

    name = "counts"
    variables = (
        rt.Variable("words", "observed", "count", (100,)),
        rt.Variable("length", "observed", "real", (1,)),
        rt.Variable("topic", "supervised", "onehot", (5,)),
        rt.Variable("themes", "latent", "simplex", (8,)),
        rt.Variable("style", "latent", "real", (4,)),
        rt.Variable("rate", "latent", "positive", (1,)),
    )
    options = rt.ObjectiveOptions(alpha=1.0, samples=4, beta=1.0, estimator="snis")
    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact
    enumerated = ("topic",)  # summed over every value in q where not given

    def __init__(self):
        super().__init__(Encoder(), Decoder())
