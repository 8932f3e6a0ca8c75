"""No file name runs code: whatever a spec file is called, its compiled module has the same
statements, and compiling, loading or testing it runs nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gmdsl.build import compile_text, load_model_class

ROOT = Path(__file__).resolve().parent.parent
SPEC = (ROOT / "specs" / "mnist.gm").read_text(encoding="utf-8")


def _shape(source: str) -> str:
    """The module's syntax tree without its docstrings and comments (which name the file)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                body[0].value.value = ""
    return ast.dump(tree)


PLAIN = _shape(compile_text(SPEC, "mnist.gm").source)
HOSTILE = ['c"""+str(__import__("os").system("id>PWNED"))+""".gm', "a\nimport os\n.gm", "b\\\r\x00\u2028'''\".gm"]


@given(st.one_of(st.sampled_from(HOSTILE), st.text(alphabet=st.sampled_from("\"'\\\n\r\t#x.\x00\u2028 "), max_size=30)))
def test_a_file_name_never_changes_the_module_s_statements(name: str) -> None:
    source = compile_text(SPEC, name).source
    assert _shape(source) == PLAIN


def test_the_reported_file_name_runs_nothing_when_compiled_loaded_and_tested(
    gmdsl_cli, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / HOSTILE[0]
    spec.write_text(SPEC, encoding="utf-8")
    code, out, err = gmdsl_cli("test", str(spec), "--examples", "2")
    assert code == 0, out + err
    compiled = compile_text(SPEC, spec.name)
    load_model_class(compiled.source, "hostile", tmp_path / "hostile.py")
    assert not (tmp_path / "PWNED").exists()
    assert 'compiled by gmdsl from c\\"\\"\\"+str(__import__(\\"os\\")' in compiled.source
