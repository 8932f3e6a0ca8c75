"""Compiled models: every spec compiles and trains, the API keeps its promises, batches are
checked, and the compiled code needs only torch and gmdsl.runtime."""

from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings

import gmdsl
from gmdsl.compiler.pretty import pretty
from gmdsl.runtime import BatchError
from gmdsl.testing import random_batch, spec_trees

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.gm"))


def assert_finite_gradients(model: torch.nn.Module, batch: dict) -> None:
    model.zero_grad()
    result = model.objective(batch)
    assert torch.isfinite(result.elbo).all()
    result.loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_spec_compiles_and_takes_a_step(spec: Path) -> None:
    torch.manual_seed(0)
    model = gmdsl.compile(spec)
    batch = random_batch(model, 8)
    assert_finite_gradients(model, batch)
    before = model.objective(batch).loss.item()
    torch.optim.Adam(model.parameters(), lr=1e-3).step()
    assert model.objective(batch).loss.item() != before


@settings(max_examples=25)
@given(spec_trees(max_variables=4))
def test_random_models_compile_to_a_finite_objective(tree) -> None:
    torch.manual_seed(0)
    model = gmdsl.compile(pretty(tree)).double()
    batch = random_batch(model, 3)
    result = model.objective(batch, samples=2)
    assert result.elbo.shape == (3,)
    assert not torch.isnan(result.elbo).any()


def test_mnist_trains_on_a_fixture() -> None:
    """Two prototype 'digits' with pixel noise, 20 labels: the loss falls and the classes separate."""
    torch.manual_seed(0)
    model = gmdsl.compile(ROOT / "specs" / "mnist.gm")
    prototypes = (torch.rand(10, 784) < 0.3).float()
    labels = torch.randint(0, 10, (512,))
    flips = (torch.rand(512, 784) < 0.05).float()
    images = (prototypes[labels] + flips) % 2
    observed = torch.zeros(512, dtype=torch.bool)
    observed[:40] = True
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(300):
        rows = torch.randint(0, 512, (64,))
        result = model.objective({"x": images[rows], "y": labels[rows], "y_observed": observed[rows]})
        optimiser.zero_grad()
        result.loss.backward()
        optimiser.step()
        losses.append(result.loss.item())
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:20]) / 20
    accuracy = (model.predict({"x": images[40:]})["y"].argmax(-1) == labels[40:]).float().mean()
    assert accuracy > 0.5


def test_predict_and_sample_return_declared_shapes_and_supports() -> None:
    model = gmdsl.compile(ROOT / "specs" / "digit_after_style.gm")
    probabilities = model.predict(random_batch(model, 5))["y"]
    assert probabilities.shape == (5, 10)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(5))
    draws = model.sample(4, given={"y": torch.eye(10)[:4]})
    assert {k: tuple(v.shape) for k, v in draws.items()} == {"x": (4, 784), "y": (4, 10), "z": (4, 16)}
    assert ((draws["x"] == 0) | (draws["x"] == 1)).all()
    torch.testing.assert_close(draws["y"], torch.eye(10)[:4])
    faces = gmdsl.compile(ROOT / "specs" / "faces_light.gm")
    assert faces.predict(random_batch(faces, 2))["light"].shape == (2, 3)
    assert faces.sample(2)["x"].shape == (2, 1, 32, 32)


def test_a_label_on_an_unlabelled_row_changes_nothing() -> None:
    model = gmdsl.compile(ROOT / "specs" / "mnist.gm")
    batch = random_batch(model, 6, labelled=0.5)
    hidden = ~batch["y_observed"]
    other = dict(batch, y=batch["y"].roll(1, dims=-1))
    other["y"][~hidden] = batch["y"][~hidden]
    torch.manual_seed(0)
    first = model.objective(batch).elbo
    torch.manual_seed(0)
    second = model.objective(other).elbo
    torch.testing.assert_close(first, second)


BAD_BATCHES = {
    "missing": ({}, "the batch has no `x` (observed x : binary[784]): pass a tensor of shape [B, 784]"),
    "shape": ({"x": torch.zeros(4, 28, 28)}, "batch['x'] has shape [4, 28, 28], expected [B, 784]"),
    "nan": ({"x": torch.full((4, 784), float("nan"))}, "batch['x'] has 3136 NaN or infinite values"),
    "pixels": ({"x": torch.full((4, 784), 255.0)}, "divide 8-bit pixels by 255"),
    "unknown": ({"x": torch.zeros(4, 784), "label": torch.zeros(4)}, "batch['label'] is not a variable"),
    "latent": ({"x": torch.zeros(4, 784), "z": torch.zeros(4, 50)}, "`z` is latent"),
    "numpy": ({"x": [[0.0] * 784]}, "not a torch.Tensor"),
    "sizes": ({"x": torch.zeros(4, 784), "y": torch.zeros(3, dtype=torch.long)}, "disagree on the batch size"),
    "mask": (
        {"x": torch.zeros(4, 784), "y": torch.zeros(4, dtype=torch.long), "y_observed": torch.ones(4)},
        "batch['y_observed'] has dtype torch.float32; a label mask is a bool tensor [B]",
    ),
    "classes": ({"x": torch.zeros(4, 784), "y": torch.tensor([0, 1, 2, 10])}, "class indices outside 0..9"),
    "onehot": ({"x": torch.zeros(4, 784), "y": torch.ones(4, 10)}, "each row must be one-hot"),
    "dtype": ({"x": torch.zeros(4, 784, dtype=torch.complex64)}, "has dtype torch.complex64"),
    "observed mask": (
        {"x": torch.zeros(4, 784), "x_observed": torch.ones(4, dtype=torch.bool)},
        "only supervised variables take a label mask",
    ),
}


BAD_BATCHES["mask shape"] = (
    {"x": torch.zeros(4, 784), "y": torch.zeros(4, dtype=torch.long), "y_observed": torch.ones(4, 1, dtype=torch.bool)},
    "batch['y_observed'] has shape [4, 1]; a label mask is a bool tensor [B]",
)
BAD_BATCHES["onehot shape"] = (
    {"x": torch.zeros(4, 784), "y": torch.zeros(4, 9)},
    "batch['y'] has shape [4, 9], expected [B, 10] or class indices [B] for supervised y : onehot[10]",
)


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_bad_batches_name_the_variable_and_the_shape(case: str) -> None:
    model = gmdsl.compile(ROOT / "specs" / "mnist.gm")
    batch, message = BAD_BATCHES[case]
    with pytest.raises(BatchError) as caught:
        model.objective(batch)
    assert message in str(caught.value)


def test_compiled_code_imports_only_torch_and_the_runtime(tmp_path: Path) -> None:
    (tmp_path / "mnist.py").write_text(gmdsl.compile_source(ROOT / "specs" / "mnist.gm"))
    probe = (
        "import sys, torch, mnist\n"
        "model = mnist.Model()\n"
        "model.objective({'x': torch.zeros(2, 784)})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('networkx', 'lark', 'pydantic')))\n"
        "print(sorted(m for m in sys.modules if m.startswith('gmdsl')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    heavy, ours = result.stdout.splitlines()
    assert heavy == "[]"
    assert all(m.startswith("gmdsl.runtime") or m == "gmdsl" for m in eval(ours))


def test_tracebacks_show_generated_lines() -> None:
    model = gmdsl.compile(ROOT / "specs" / "mnist.gm")
    model.decoder.decoder = None  # break the decoder network, to get a traceback out of forward
    with pytest.raises(TypeError) as caught:
        model.objective(random_batch(model, 2))
    text = "".join(traceback.format_exception(caught.value))
    assert "gmdsl-compiled/mnist-" in text
    assert 'p.sample("x", rt.Bernoulli(logits=self.decoder(rt.join(y, z))))  # mnist.gm:11' in text


def test_runtime_imports_nothing_from_the_compiler_or_training() -> None:
    """runtime/ is the ground floor: its modules import torch and each other, nothing above."""
    import ast as python_ast

    for source in sorted((ROOT / "runtime").glob("*.py")):
        for node in python_ast.walk(python_ast.parse(source.read_text())):
            if isinstance(node, python_ast.ImportFrom):
                assert node.level <= 1 and not (node.module or "").startswith("gmdsl"), f"{source.name}: {node.module}"
            elif isinstance(node, python_ast.Import):
                assert not any(alias.name.startswith("gmdsl") for alias in node.names), source.name


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_compiled_modules_are_ruff_clean(spec: Path, tmp_path: Path) -> None:
    module = tmp_path / f"{spec.stem}.py"
    module.write_text(gmdsl.compile_source(spec))
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"), str(module)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_enumeration_tables_are_built_once() -> None:
    model = gmdsl.compile(ROOT / "specs" / "mnist_enum.gm")
    batch = random_batch(model, 3)
    model.objective(batch)
    from gmdsl.runtime.distributions import _onehot_support

    before = _onehot_support.cache_info()
    model.objective(batch)
    after = _onehot_support.cache_info()
    assert after.misses == before.misses and after.hits > before.hits


def test_the_cached_enumeration_table_cannot_be_reached() -> None:
    """Neither a caller writing into the values a pass returns, nor inference_mode around the
    first pass, may change what later passes (and their gradients) see."""
    from gmdsl.runtime.distributions import _onehot_support

    _onehot_support.cache_clear()
    model = gmdsl.compile(ROOT / "specs" / "mnist_enum.gm")
    batch = random_batch(model, 3)
    with torch.inference_mode():
        model.objective(batch).values["y"].mul_(0)
    torch.manual_seed(0)
    result = model.objective(batch)
    result.loss.backward()  # no "inference tensors cannot be saved for backward"
    assert torch.equal(_onehot_support(1, 10, (), torch.float32, torch.device("cpu")), torch.eye(10))


def test_one_batch_convention_for_objective_predict_and_sample() -> None:
    """Placeholders on unlabelled rows are never read (-1 for a class index as NaN for a real);
    sample(given=...) takes class indices as the objective does."""
    model = gmdsl.compile(ROOT / "specs" / "mnist.gm")
    x = torch.zeros(4, 784)
    mask = torch.tensor([True, False, True, False])
    torch.manual_seed(0)
    with_placeholder = model.objective({"x": x, "y": torch.tensor([3, -1, 7, -1]), "y_observed": mask}).elbo
    torch.manual_seed(0)
    with_zeros = model.objective({"x": x, "y": torch.tensor([3, 0, 7, 0]), "y_observed": mask}).elbo
    torch.testing.assert_close(with_placeholder, with_zeros)
    faces = gmdsl.compile(ROOT / "specs" / "faces_light.gm")
    light = torch.tensor([[0.1, 0.2, 0.3], [float("nan")] * 3])
    assert torch.isfinite(
        faces.objective(
            {"x": torch.zeros(2, 1, 32, 32), "light": light, "light_observed": torch.tensor([True, False])}
        ).elbo
    ).all()
    drawn = model.sample(3, given={"y": torch.tensor([0, 4, 9])})
    assert drawn["y"].argmax(-1).tolist() == [0, 4, 9]
    with pytest.raises(BatchError, match=r"given\['y'\] has 2 rows, but sample\(\) was asked for 3"):
        model.sample(3, given={"y": torch.tensor([0, 4])})
    with pytest.raises(BatchError, match=r"given\['y'\] holds class indices outside 0..9"):
        model.sample(2, given={"y": torch.tensor([0, 10])})


BETA_IWAE = """
observed x : binary[4]
supervised y : onehot[3]
latent z : real[2]
p(y) = Categorical(probs = uniform)
p(x | y) = Bernoulli(logits = d(y))
p(z | x) = Normal(m(x))
q(y | x) = Categorical(logits = c(x)) by enumeration
q(z | x, y) = Normal(e(x, y))
net d = mlp()
net m = mlp()
net c = mlp()
net e = mlp()
objective semisupervised(beta = 0.5, estimator = iwae, samples = 4)
"""


def test_the_module_docstring_states_the_objective_it_computes() -> None:
    """beta weighs the p factor of each unobserved variable (z's has an observed parent), iwae
    averages over sampled z only, and y, summed by enumeration, carries no sample index."""
    doc = gmdsl.compile_source(BETA_IWAE)
    integrand = "log p(x | y) + 0.5 [log p(y) + log p(z_s | x) - log q(y, z_s | x)]"
    assert f"  y not given:  log (1/S) sum_s exp({integrand})\n" in doc
    assert f"  y given:  log (1/S) sum_s exp({integrand})\n      + (1 + alpha) log q(y | x), with alpha = 0.1\n" in doc
    assert "  y is summed by enumeration: every one of its 3 values, weighted by q\n" in doc


def test_the_reserved_names_cover_every_attribute_of_a_module() -> None:
    """The emitter's list of nn.Module attributes (kept as data so that compiling does not import
    torch) holds every attribute the installed torch gives a module; a network named after one
    gets another attribute name."""
    from gmdsl.compiler.reserved import MODULE_ATTRIBUTES

    assert set(dir(torch.nn.Module())) <= MODULE_ATTRIBUTES
    spec = (ROOT / "specs" / "mnist.gm").read_text().replace("encoder", "training")
    assert "self.training_ = rt.mlp(" in gmdsl.compile_source(spec)


def test_compiling_a_spec_does_not_import_torch(tmp_path: Path) -> None:
    probe = "import sys\nimport gmdsl\ngmdsl.compile_source(sys.argv[1])\nprint('torch' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "specs" / "mnist.gm")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


_BIASED = """
observed x : real[1, 8, 8]
latent   z : real[4]
p(z)     = Normal(0, 1)
let patch : unit[1, 8, 8] = writer(z)
p(x | z) = Normal(loc = patch, scale = 0.3)
q(z | x) = Normal(reader(x))
net reader = READER
net writer = WRITER
"""


@pytest.mark.parametrize(
    ("reader", "writer", "biased"),
    [
        ("mlp()", "mlp(hidden = [8]OPTION)", "writer"),
        ("mlp()", "deconv(channels = [4], hidden = [8]OPTION)", "writer"),
        ("conv(channels = [4]OPTION)", "mlp()", "reader"),
    ],
)
def test_output_bias_starts_the_output_layer_at_it_and_only_where_given(reader: str, writer: str, biased: str) -> None:
    spec = _BIASED.replace("READER", reader).replace("WRITER", writer)
    model = gmdsl.compile(spec.replace("OPTION", ", output_bias = -2"))
    network = model.encoder.reader if biased == "reader" else model.decoder.writer
    last = [m for m in network.modules() if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d))][-1]
    assert torch.equal(last.bias, torch.full_like(last.bias, -2.0))
    assert "output_bias=-2" in gmdsl.build.compile_text(spec.replace("OPTION", ", output_bias = -2"), "s.gm").source
    # unset, the biases keep PyTorch's random start and the compiled text does not mention it
    assert "output_bias" not in gmdsl.build.compile_text(spec.replace("OPTION", ""), "s.gm").source
    unset = gmdsl.compile(spec.replace("OPTION", ""))
    network = unset.encoder.reader if biased == "reader" else unset.decoder.writer
    last = [m for m in network.modules() if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d))][-1]
    assert not torch.equal(last.bias, torch.full_like(last.bias, -2.0))
