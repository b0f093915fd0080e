"""Render the Helm chart with the helm binary that scripts/setup.sh installs (.tools/bin).

The chart's bundled services are dependencies fetched by `helm dependency build`; when they
are not in charts/, the chart is rendered from a copy without its `dependencies:` list, so
MeterFlow's own templates are what these tests check (see scripts/chart-check.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "meterflow"
SCENARIOS = sorted(CHART.glob("ci/*-values.yaml"))
TOOLS = Path(os.environ.get("METERFLOW_TOOLS_DIR", REPO / ".tools"))
Manifest = dict[str, Any]


def tool(name: str) -> Path:
    path = TOOLS / "bin" / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run scripts/setup.sh (it installs {name})")
    return path


def kubernetes_version() -> str:
    versions = dict(line.split("=", 1) for line in
                    (TOOLS / "versions.env").read_text().split() if "=" in line)
    return versions["KUBERNETES_VERSION"]


def stage_chart(dest: Path, source: Path = CHART) -> Path:
    """A copy of the chart that renders here: without the dependencies not in charts/."""
    target = dest / "meterflow"
    shutil.copytree(source, target)
    meta = yaml.safe_load((target / "Chart.yaml").read_text())
    have = {p.name for p in (target / "charts").glob("*.tgz")}
    deps = meta.get("dependencies") or []
    if any(f"{d['name']}-{d['version']}.tgz" not in have for d in deps):
        meta.pop("dependencies")
        (target / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return target


class RenderError(RuntimeError):
    pass


def helm_template(chart: Path, values: Iterable[Path] = (), sets: Iterable[str] = (),
                  release: str = "meterflow") -> list[Manifest]:
    cmd = [str(tool("helm")), "template", release, str(chart), "--namespace", "meterflow",
           "--kube-version", kubernetes_version()]
    for path in values:
        cmd += ["-f", str(path)]
    for item in sets:
        cmd += ["--set", item]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RenderError(done.stderr.strip())
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


Render = Callable[..., list[Manifest]]


@pytest.fixture(scope="session")
def staged_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stage_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="session")
def render(staged_chart: Path) -> Render:
    """render(values_file..., sets=[...]) -> manifests; raises RenderError with helm's words."""
    cache: dict[tuple[Any, ...], list[Manifest]] = {}

    def run(*values: Path, sets: Iterable[str] = ()) -> list[Manifest]:
        key = (values, tuple(sets))
        if key not in cache:
            cache[key] = helm_template(staged_chart, values, sets)
        return cache[key]

    return run


def kinds(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def by_name(manifests: list[Manifest], kind: str, suffix: str) -> Manifest:
    found = [m for m in kinds(manifests, kind) if m["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {[m['metadata']['name'] for m in found]}"
    return found[0]


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def config_data(manifests: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = by_name(manifests, "ConfigMap", "-config")["data"]
    return data
