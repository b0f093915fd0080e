"""The layers of docs/architecture.md, checked on the imports of every module.

Each application module belongs to the layer of its longest matching package below; an
import (at module level or inside a function) may only reach its own layer or one that
layer lists as below it. The contracts and the billing domain stay free of I/O
libraries, and the root command line is imported by nothing: the sub-commands take the
settings from the context (``meterflow.subcommands.settings_of``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "runtime", "pipeline", "connectors", "services", "meterflow")

#: Layer -> the layers it may import, as drawn in docs/architecture.md.
LAYERS: dict[str, frozenset[str]] = {
    "contracts": frozenset(),
    "runtime": frozenset({"contracts"}),
    "pipeline.billing": frozenset({"contracts"}),
    "pipeline": frozenset({"contracts", "runtime", "pipeline.billing"}),
    "connectors": frozenset({"contracts", "runtime", "pipeline.billing"}),
    "services": frozenset({"contracts", "runtime", "pipeline.billing", "pipeline",
                           "connectors"}),
    "meterflow": frozenset({"contracts", "runtime", "pipeline.billing", "pipeline",
                            "connectors", "services"}),
}
#: Third-party packages that do I/O or belong to an interface, kept out of the pure layers.
IO_LIBRARIES = frozenset({"psycopg", "psycopg_pool", "kafka", "quixstreams", "confluent_kafka",
                          "paho", "pymodbus", "serial", "httpx", "typer", "rich", "fastapi",
                          "uvicorn", "grafana_client", "openpyxl"})
PURE_LAYERS = ("contracts", "pipeline.billing")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (longest matching prefix), None outside them."""
    best = None
    for layer in LAYERS:
        if (module == layer or module.startswith(layer + ".")) and \
                (best is None or len(layer) > len(best)):
            best = layer
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every absolute import in a file; ``from a import b``
    counts as ``a.b`` so that importing a submodule through its package is seen."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def application_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def violations() -> list[str]:
    problems: list[str] = []
    for path in application_files():
        here = module_name(path)
        mine = layer_of(here)
        assert mine is not None, here
        for line, target in imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            top = target.split(".")[0]
            if mine in PURE_LAYERS and top in IO_LIBRARIES:
                problems.append(f"{where}: {mine} is pure but imports {top}")
            theirs = layer_of(target)
            if theirs is None or theirs == mine:
                continue
            if theirs not in LAYERS[mine]:
                problems.append(f"{where}: {mine} may not import {theirs} ({target})")
        for line, target in imports(path):
            if target.startswith("meterflow.cli.") or target == "meterflow.cli":
                problems.append(f"{path.relative_to(ROOT)}:{line}: the root command line "
                                f"is imported by nothing")
            if (target.startswith("meterflow.subcommands.") and here != "meterflow.cli"
                    and not here.startswith("meterflow.subcommands")
                    and target != "meterflow.subcommands.settings_of"):
                problems.append(f"{path.relative_to(ROOT)}:{line}: {here} imports the "
                                f"command module {target}")
    return problems


def test_every_module_has_a_layer() -> None:
    assert application_files(), "no application modules found"
    assert all(layer_of(module_name(p)) for p in application_files())


def test_no_import_runs_upward() -> None:
    problems = violations()
    assert not problems, "\n".join(problems)


#: The node names of the drawing in docs/architecture.md, as layers.
DRAWN = {"contracts": "contracts", "runtime": "runtime", "billing": "pipeline.billing",
         "pipeline": "pipeline", "connectors": "connectors", "services": "services",
         "meterflow": "meterflow"}


def drawn_layers() -> dict[str, set[str]]:
    """The arrows of the layer drawing in docs/architecture.md, closed transitively."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Layers", 1)[1].split("```mermaid", 1)[1].split("```", 1)[0]
    below: dict[str, set[str]] = {layer: set() for layer in DRAWN.values()}
    for upper, lower in re.findall(r"^\s*(\w+) --> (\w+)\s*$", section, re.MULTILINE):
        below[DRAWN[upper]].add(DRAWN[lower])
    changed = True
    while changed:
        changed = False
        for lower in below.values():
            reach = set().union(*(below[x] for x in lower)) - lower if lower else set()
            if reach:
                lower |= reach
                changed = True
    return below


def test_the_drawing_says_what_the_check_enforces() -> None:
    assert drawn_layers() == {layer: set(lower) for layer, lower in LAYERS.items()}


def test_nothing_below_the_interfaces_reads_settings_from_the_environment() -> None:
    """Settings are read once at the entry point (meterflow.cli) and passed down."""
    found = [f"{p.relative_to(ROOT)}: {target}" for p in application_files()
             if layer_of(module_name(p)) != "meterflow"
             for _, target in imports(p) if target.startswith("meterflow.settings")]
    found += [f"{p.relative_to(ROOT)}: os.environ read" for p in application_files()
              if layer_of(module_name(p)) != "meterflow"
              and re.search(r"os\.(environ\.get|getenv)|os\.environ\[", p.read_text())]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("module", "layer"), [
    ("contracts.topics", "contracts"), ("pipeline.billing.rating", "pipeline.billing"),
    ("pipeline.processor", "pipeline"), ("meterflow.api.app", "meterflow"),
    ("pipelines", None), ("yaml", None),
])
def test_layer_of(module: str, layer: str | None) -> None:
    assert layer_of(module) == layer


if __name__ == "__main__":
    print("\n".join(violations()) or "layers: no violation")
