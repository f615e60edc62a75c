"""The retailer is another company's system: nothing outside retailer/ may import its models."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_production_code_outside_the_sandbox_imports_its_models():
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {"retailer", ".venv", "var", "node_modules"} or "tests" in rel.parts:
            continue
        if "retailer.models" in imports_of(path):
            offenders.append(str(rel))
    assert offenders == []
