"""Static check: nothing in monai_core can run code from a file it reads.

No ``eval``/``exec``, no ``pickle``/``marshal``/``shelve`` loading, no ``torch.load`` without
``weights_only=True``, no ``numpy.load(allow_pickle=True)`` and no ``yaml.load`` without a safe loader, and no ``torch.jit.load``
(TorchScript carries code): inference builds both networks from ``torch.nn`` and loads state dicts.
The scan works on the syntax tree, so comments and strings do not count, and it is itself tested on
snippets that must be flagged.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monai_core"


def _name(node: ast.AST) -> str:
    """Dotted name of a call target: ``torch.load``, ``pickle.loads``, ``eval``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def unsafe_calls(source: str, filename: str = "<snippet>") -> list[str]:
    found = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] in {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib"} for n in names):
                found.append(f"{filename}:{node.lineno}: imports a pickle-like module")
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        last = name.rsplit(".", 1)[-1]
        where = f"{filename}:{node.lineno}: {name}"
        if name in {"eval", "exec", "builtins.eval", "builtins.exec", "__import__"}:
            found.append(where)
        elif last in {"load", "loads", "Unpickler"} and name.split(".")[0] in {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib"}:
            found.append(where)
        elif name.endswith("torch.load") or name == "load" and _keyword(node, "weights_only") is not None:
            value = _keyword(node, "weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                found.append(where + " without weights_only=True")
        elif name in {"np.load", "numpy.load"}:
            value = _keyword(node, "allow_pickle")
            if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                found.append(where + " with allow_pickle")
        elif name.endswith("jit.load"):
            found.append(where + " (TorchScript carries code)")
        elif name == "yaml.load" or name == "yaml.load_all":
            loader = _keyword(node, "Loader")
            if loader is None or "Safe" not in _name(loader):
                found.append(where + " without a safe loader")
        elif name in {"yaml.unsafe_load", "yaml.full_load"}:
            found.append(where)
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "eval(text)",
        "exec(compile(src, 'x', 'exec'))",
        "import pickle\npickle.load(f)",
        "from pickle import loads",
        "torch.load(path)",
        "torch.load(path, weights_only=False)",
        "torch.load(path, map_location='cpu', weights_only=flag)",
        "np.load(path, allow_pickle=True)",
        "yaml.load(text)",
        "marshal.loads(blob)",
        "torch.jit.load(path)",
    ],
)
def test_the_scan_flags_unsafe_code(snippet):
    assert unsafe_calls(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    ["torch.load(path, map_location='cpu', weights_only=True)", "np.load(path)", "yaml.safe_load(text)", "json.loads(text)"],
)
def test_the_scan_accepts_safe_code(snippet):
    assert unsafe_calls(snippet) == []


def test_monai_core_never_runs_code_from_files():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    found = [hit for path in files for hit in unsafe_calls(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    assert found == [], "\n".join(found)


def test_the_weights_loader_uses_weights_only():
    source = (PACKAGE / "weights.py").read_text()
    assert "weights_only=True" in source
