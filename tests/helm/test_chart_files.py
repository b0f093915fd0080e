"""What the chart copies or generates from elsewhere stays in step with its source.

- files/dashboards/ is a copy of dashboards/*.json (Helm reads nothing outside the chart);
- README.md is generated from values.yaml's annotations by helm-docs;
  scripts/sync-chart-files.sh refreshes both.
"""

from __future__ import annotations

import subprocess

import yaml

from tests.helm.conftest import CHART, REPO, tool

SYNC = "run scripts/sync-chart-files.sh and commit the result"


def test_chart_boards_are_the_repositorys_boards() -> None:
    source = {p.name: p.read_bytes() for p in (REPO / "dashboards").glob("*.json")}
    copied = {p.name: p.read_bytes() for p in (CHART / "files" / "dashboards").glob("*.json")}
    assert sorted(copied) == sorted(source), SYNC
    for name, body in source.items():
        assert copied[name] == body, f"{name} differs: {SYNC}"


def test_chart_readme_is_generated_from_the_values() -> None:
    done = subprocess.run(
        [str(tool("helm-docs")), "--dry-run", "--log-level", "error", "--chart-search-root",
         str(CHART.parent), "--template-files", "README.md.gotmpl"],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (CHART / "README.md").read_text().strip(), SYNC


def leaves(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [leaf for key, value in node.items()
                for leaf in leaves(value, f"{prefix}.{key}" if prefix else str(key))]
    return [prefix]


def test_every_value_is_described_in_the_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")[4].strip()
            for line in readme.splitlines()
            if line.startswith("| ") and line.count("|") >= 5}
    missing = []
    for leaf in leaves(values):
        documented = [key for key in rows if leaf == key or leaf.startswith(key + ".")]
        if not documented or not all(rows[key] for key in documented):
            missing.append(leaf)
    assert missing == [], "values without a '# --' description"
