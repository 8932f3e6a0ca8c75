"""The `gmdsl` command line: exit codes, outputs, and no traceback for a user's mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmdsl import build
from gmdsl.compiler.diagnostics import InternalCompilerError

ROOT = Path(__file__).resolve().parent.parent
MNIST = str(ROOT / "specs" / "mnist.gm")


def test_check_ok_and_errors(gmdsl_cli, tmp_path: Path) -> None:
    assert gmdsl_cli("check", MNIST)[0] == 0
    bad = tmp_path / "bad.gm"
    bad.write_text("observed x : binary[784]\np(x) = Bernoulli(logits = 0)\nq(x) = Bernoulli(0.5)\n")
    code, _, err = gmdsl_cli("check", MNIST, str(bad))
    assert code == 1
    assert f"{bad}:3:1: error[E0201]" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [["check", "no/such.gm"], ["frobnicate"], ["check", "--nope", MNIST], ["graph", MNIST, "-o", "x.jpeg"], ["check"]],
)
def test_bad_usage_exits_2(gmdsl_cli, args) -> None:
    code, _, err = gmdsl_cli(*args)
    assert code == 2
    assert "Error:" in err and "Traceback" not in err


def test_directory_is_bad_usage(gmdsl_cli, tmp_path: Path) -> None:
    code, _, err = gmdsl_cli("check", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_dump_ast_and_ir(gmdsl_cli) -> None:
    code, out, _ = gmdsl_cli("compile", MNIST, "--dump-ast")
    assert code == 0
    statements = json.loads(out)["statements"]
    assert statements[0] == {
        "node": "ModelDecl",
        "name": {"node": "Ident", "name": "mnist", "span": [2, 7, 2, 12]},
        "span": [2, 1, 2, 12],
    }
    code, out, _ = gmdsl_cli("compile", MNIST, "--dump-ir")
    assert code == 0
    ir = json.loads(out)
    assert [node["name"] for node in ir["q"]["nodes"]] == ["x", "y", "z"]
    from gmdsl.compiler.ir import ModelIR

    assert ModelIR.model_validate(ir).networks[0].name == "classifier"


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".dot", b"digraph")])
def test_graph_formats(gmdsl_cli, tmp_path: Path, suffix: str, magic: bytes) -> None:
    output = tmp_path / f"m{suffix}"
    code, out, _ = gmdsl_cli("graph", MNIST, "-o", str(output))
    assert code == 0 and f"wrote {output}" in out
    data = output.read_bytes()
    assert data.startswith(magic)
    if suffix != ".png":
        text = data.decode()
        assert "classifier" in text and "decoder" in text and "recognition model q" in text


def test_graph_of_a_bad_spec_writes_nothing(gmdsl_cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gm"
    bad.write_text("observed x : binary[784]\np(x) = Normal(0, 1)\n")
    output = tmp_path / "bad.png"
    code, _, err = gmdsl_cli("graph", str(bad), "-o", str(output))
    assert code == 1 and "error[E0301]" in err and not output.exists()


def test_internal_errors_are_labelled_as_gmdsls(gmdsl_cli, monkeypatch) -> None:
    def broken(_checked):
        raise InternalCompilerError("lowering lost a node")

    monkeypatch.setattr(build, "lower", broken)
    code, _, err = gmdsl_cli("compile", MNIST, "--dump-ir")
    assert code == 3
    assert "internal compiler error: lowering lost a node" in err and "bug in gmdsl" in err
    assert "Traceback" not in err
    code, _, err = gmdsl_cli("--debug", "compile", MNIST, "--dump-ir")
    assert code == 3 and "Traceback" in err


@pytest.mark.parametrize(
    "args",
    [
        ["graph", MNIST, "-o", "/nonexistent-dir/m.png"],
        ["compile", MNIST, "--dump-ir", "-o", "/nonexistent-dir/m.json"],
    ],
)
def test_unwritable_output_is_bad_usage(gmdsl_cli, args) -> None:
    code, _, err = gmdsl_cli(*args)
    assert code == 2 and "cannot write /nonexistent-dir/" in err and "Traceback" not in err


def test_compile_writes_a_module_into_a_directory(gmdsl_cli, tmp_path: Path) -> None:
    code, _, err = gmdsl_cli("compile", MNIST, "-o", str(tmp_path / "out"))
    assert code == 0 and f"wrote {tmp_path / 'out' / 'mnist.py'}" in err
    assert "class Encoder(torch.nn.Module):" in (tmp_path / "out" / "mnist.py").read_text()


def test_dump_checked_shows_what_the_checker_resolved(gmdsl_cli) -> None:
    code, out, _ = gmdsl_cli("compile", MNIST, "--dump-checked")
    assert code == 0
    checked = json.loads(out)
    assert checked["networks"]["encoder"] == {
        "builder": "mlp",
        "options": {"hidden": [256], "activation": "relu"},
        "input_width": 794,
        "output_width": 100,
    }
    assert checked["objective"] == {
        "name": "semisupervised",
        "options": {"alpha": 0.1, "samples": 8, "beta": 1, "estimator": "snis"},
    }
    assert checked["edges"]["q"] == [["x", "y", ["classifier"]], ["x", "z", ["encoder"]], ["y", "z", ["encoder"]]]
    assert checked["diagnostics"] == []


def test_a_missing_package_is_a_clear_message_not_a_bug(gmdsl_cli, monkeypatch) -> None:
    def missing(*args, **kwargs):  # as an import of an absent package fails
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(build, "check_spec", missing)
    code, _, err = gmdsl_cli("graph", MNIST, "-o", "m.png")
    assert code == 1
    assert "needs the Python package `matplotlib`" in err and "pip install matplotlib" in err
    assert "bug in gmdsl" not in err and "Traceback" not in err


def test_every_user_error_is_a_user_error() -> None:
    """One base class, caught in one place by the CLI."""
    from gmdsl.build import NotACompiledModel
    from gmdsl.compiler.diagnostics import SpecError
    from gmdsl.data import DataError
    from gmdsl.runtime import BatchError, UserError
    from gmdsl.train.loop import TrainingDiverged, TrainingInterrupted
    from gmdsl.train.runs import RunError
    from gmdsl.train.settings import ConfigError

    for kind in (
        SpecError,
        BatchError,
        DataError,
        ConfigError,
        RunError,
        TrainingDiverged,
        TrainingInterrupted,
        NotACompiledModel,
    ):
        assert issubclass(kind, UserError), kind
    assert TrainingInterrupted.exit_code == 130


def test_train_flags_come_from_the_settings(gmdsl_cli) -> None:
    from gmdsl.train.settings import FLAGS, TrainSettings

    code, out, _ = gmdsl_cli("train", "--help")
    assert code == 0
    for name in FLAGS:
        assert f"--{name.replace('_', '-')}" in out, name
    flat = " ".join(out.split())
    for shown in ("[default: mnist]", "[default: 5]", "[default: 128]", "[default: 0.001]", "[default: the spec's]"):
        assert shown in flat, shown
    assert set(FLAGS) == set(TrainSettings.model_fields)


def test_a_file_that_is_not_a_spec_is_named_as_such(gmdsl_cli, tmp_path: Path) -> None:
    compiled = tmp_path / "mnist.py"
    compiled.write_text("import torch\n")
    code, _, err = gmdsl_cli("check", str(compiled))
    assert code == 2 and f"{compiled} is not a .gm spec (a compiled model: `gmdsl train` takes it)" in err
    assert "syntax error" not in err


def test_every_option_of_every_command_says_what_it_means() -> None:
    import click

    from gmdsl.cli import cli

    def options(group: click.Group, prefix: str = ""):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from options(command, prefix + name + " ")
            yield from ((prefix + name, p) for p in command.params if isinstance(p, click.Option))

    for command, option in options(cli):
        assert option.help, f"gmdsl {command} {option.opts[0]} has no help"
