"""The `gmdsl` command line: exit codes, outputs, and no traceback for a user's mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmdsl import cli
from gmdsl.errors import InternalCompilerError

ROOT = Path(__file__).resolve().parent.parent
MNIST = str(ROOT / "specs" / "mnist.gm")


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_ok_and_errors(capsys, tmp_path: Path) -> None:
    assert run(capsys, "check", MNIST)[0] == 0
    bad = tmp_path / "bad.gm"
    bad.write_text("observed x : binary[784]\np(x) = Bernoulli(logits = 0)\nq(x) = Bernoulli(0.5)\n")
    code, _, err = run(capsys, "check", MNIST, str(bad))
    assert code == 1
    assert f"{bad}:3:1: error[E0201]" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["check", "no/such.gm"], ["frobnicate"], ["check", "--nope", MNIST],
                                  ["graph", MNIST, "-o", "x.jpeg"], ["check"]])
def test_bad_usage_exits_2(capsys, args) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "Error:" in err and "Traceback" not in err


def test_directory_is_bad_usage(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "check", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_dump_ast_and_ir(capsys) -> None:
    code, out, _ = run(capsys, "compile", MNIST, "--dump-ast")
    assert code == 0
    statements = json.loads(out)["statements"]
    assert statements[0] == {"node": "ModelDecl", "name": {"node": "Ident", "name": "mnist", "span": [2, 7, 2, 12]},
                             "span": [2, 1, 2, 12]}
    code, out, _ = run(capsys, "compile", MNIST, "--dump-ir")
    assert code == 0
    ir = json.loads(out)
    assert ir["q"]["order"] == ["x", "y", "z"]
    from gmdsl.ir import ModelIR

    assert ModelIR.model_validate(ir).networks[0].name == "classifier"


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".dot", b"digraph")])
def test_graph_formats(capsys, tmp_path: Path, suffix: str, magic: bytes) -> None:
    output = tmp_path / f"m{suffix}"
    code, out, _ = run(capsys, "graph", MNIST, "-o", str(output))
    assert code == 0 and f"wrote {output}" in out
    data = output.read_bytes()
    assert data.startswith(magic)
    if suffix != ".png":
        text = data.decode()
        assert "classifier" in text and "decoder" in text and "recognition model q" in text


def test_graph_of_a_bad_spec_writes_nothing(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gm"
    bad.write_text("observed x : binary[784]\np(x) = Normal(0, 1)\n")
    output = tmp_path / "bad.png"
    code, _, err = run(capsys, "graph", str(bad), "-o", str(output))
    assert code == 1 and "error[E0301]" in err and not output.exists()


def test_internal_errors_are_labelled_as_gmdsls(capsys, monkeypatch) -> None:
    def broken(_tree):
        raise InternalCompilerError("lowering lost a node")

    monkeypatch.setattr(cli, "lower", broken)
    code, _, err = run(capsys, "compile", MNIST, "--dump-ir")
    assert code == 3
    assert "internal compiler error: lowering lost a node" in err and "bug in gmdsl" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "--debug", "compile", MNIST, "--dump-ir")
    assert code == 3 and "Traceback" in err


@pytest.mark.parametrize("args", [["graph", MNIST, "-o", "/nonexistent-dir/m.png"],
                                  ["compile", MNIST, "--dump-ir", "-o", "/nonexistent-dir/m.json"]])
def test_unwritable_output_is_bad_usage(capsys, args) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2 and "cannot write /nonexistent-dir/" in err and "Traceback" not in err


def test_compile_writes_a_module_into_a_directory(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "compile", MNIST, "-o", str(tmp_path / "out"))
    assert code == 0 and f"wrote {tmp_path / 'out' / 'mnist.py'}" in err
    assert "class Encoder(torch.nn.Module):" in (tmp_path / "out" / "mnist.py").read_text()
