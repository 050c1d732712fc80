"""The import rule: a layer of simulator/ imports only the layers below it.

From top to bottom: cli -> demo, simulation, reliability -> service -> smtp, web ->
delivery -> pipeline, reports -> store -> org -> licensing -> domain (with errors,
logs and the package's own __init__). Siblings on one level (smtp and web,
pipeline and reports) do not import each other. Every import counts, including
those inside functions, so a lazy import cannot hide a broken rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "simulator"

# Rank of each layer's top-level name under `simulator`; a higher rank sits higher.
RANKS = {
    "__main__": 10,
    "cli": 9,
    "demo": 8,
    "simulation": 8,
    "reliability": 8,
    "service": 7,
    "smtp": 6,
    "web": 6,
    "delivery": 5,
    "pipeline": 4,
    "reports": 4,
    "store": 3,
    "org": 2,
    "licensing": 1,
    "domain": 0,
    "defaults": 0,
    "errors": 0,
    "logs": 0,
    "": 0,  # simulator/__init__.py: the version
}
# Third-party imports a layer must never make, and the layers allowed to make them.
ONLY_IN = {"typer": {"cli"}, "rich": {"cli"}}
FORBIDDEN = {
    "pipeline": {"asyncio", "socket", "aiosmtpd", "starlette", "uvicorn"},
    "licensing": {"sqlalchemy", "tomllib"},
    "domain": {"sqlalchemy"},
}


def layer_of(module: str) -> str:
    """`simulator.smtp.handler` -> `smtp`; `simulator` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, importer: str) -> list[str]:
    """Every module `source` imports, relative imports resolved against `importer`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer.split(".")[: -node.level]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "simulator":
                # `from simulator import reports` imports the module simulator.reports.
                found += [f"{base}.{alias.name}" for alias in node.names]
            else:
                found.append(base)
    return found


def violations(sources: dict[str, str]) -> list[str]:
    """One line per broken rule in `sources` (module name -> its source text)."""
    broken = []
    for importer, source in sorted(sources.items()):
        layer = layer_of(importer)
        assert layer in RANKS, f"{importer}: add its layer `{layer}` to RANKS"
        for target in imported_modules(source, importer):
            top = target.split(".")[0]
            if top == "simulator":
                other = layer_of(target)
                if other == layer or other not in RANKS:
                    continue
                if RANKS[other] >= RANKS[layer]:
                    broken.append(f"{importer} imports {target} ({layer} -> {other})")
            elif top in ONLY_IN and layer not in ONLY_IN[top]:
                broken.append(f"{importer} imports {top}, which only {ONLY_IN[top]} may")
            elif top in FORBIDDEN.get(layer, set()):
                broken.append(f"{importer} imports {top}, which {layer} must never import")
    return broken


def package_sources() -> dict[str, str]:
    return {module_name(path): path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py")}


def test_every_layer_imports_only_layers_below_it() -> None:
    sources = package_sources()
    assert len(sources) > 40
    assert violations(sources) == []


@pytest.mark.parametrize(
    ("importer", "source"),
    [
        ("simulator.store.db", "from simulator.pipeline import intake"),  # upward
        ("simulator.smtp.handler", "from simulator.web.app import create_app"),  # sibling
        ("simulator.licensing.costs", "def f():\n    from simulator.org import Org\n"),  # lazy
        ("simulator.domain", "from simulator import __version__, org"),  # `from simulator import`
        ("simulator.pipeline.intake", "import asyncio"),  # forbidden library
        ("simulator.reports.rows", "from rich.table import Table"),  # only the CLI
        ("simulator.pipeline.parse", "from ..service import intake_service"),  # relative
    ],
)
def test_a_broken_rule_is_reported(importer: str, source: str) -> None:
    assert len(violations({importer: source})) == 1


def test_allowed_imports_are_not_reported() -> None:
    allowed = {
        "simulator.cli.listings": "from simulator.reports import rows\nimport typer",
        "simulator.pipeline.intake": "from simulator.pipeline import classify",  # own layer
        "simulator.org": "from simulator.licensing.prices import Pricing",
        "simulator.service": "from simulator.smtp.server import smtp_listener",
    }
    assert violations(allowed) == []


def test_every_package_says_what_it_owns_and_must_never_import() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        doc = " ".join((ast.get_docstring(tree) or "").split())
        assert len(doc.split()) >= 25, f"{init.parent.name}/__init__.py needs its docstring"
        assert "never import" in doc or "Nothing imports" in doc or "nothing below" in doc, (
            f"{init.parent.name}/__init__.py must say what it must never import"
        )


PATH_MENTION = re.compile(
    r"(?<![\w/.-])(?:simulator|tests|docs|benchmarks|fixtures)/[\w/.-]*\w\.(?:py|md|toml|json|png|yml)"
)


def in_repo(mention: str) -> str:
    """Wheel paths of the samples name fixtures/, which ships as simulator.samples."""
    return mention.replace("simulator/samples/", "fixtures/", 1)


def test_no_source_names_a_path_the_repo_does_not_have() -> None:
    """Docstrings and comments that point to a file point to one that exists."""
    root = PACKAGE.parent
    sources = [*PACKAGE.rglob("*.py"), *(root / "tests").rglob("*.py")]
    sources += [*(root / "benchmarks").rglob("*.py"), root / "Makefile", root / "Dockerfile"]
    missing = [
        f"{path.relative_to(root)}: {mention}"
        for path in sources
        for mention in PATH_MENTION.findall(path.read_text(encoding="utf-8"))
        if "*" not in mention and not (root / in_repo(mention)).exists()
    ]
    assert missing == []
