"""notifications sits below dunning: it never imports it, nor names its models in strings."""

from __future__ import annotations

import ast
from pathlib import Path

import notifications

UPPER_LAYERS = ("dunning", "reporting")


def _sources() -> list[Path]:
    return sorted(Path(notifications.__file__).parent.rglob("*.py"))


def test_notifications_never_imports_dunning_or_reporting() -> None:
    offending = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                "__import__",
                "import_module",
            ):
                names = [
                    a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                ]
            offending += [f"{path.name}: {n}" for n in names if n.split(".")[0] in UPPER_LAYERS]
    assert offending == []


def test_no_model_reference_to_dunning_by_string() -> None:
    offending = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value.strip()
                if value.startswith(("dunning.", "reporting.")) and " " not in value:
                    offending.append(f"{path.name}: {value}")
    assert offending == []
