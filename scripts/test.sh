#!/usr/bin/env bash
# Runs every check MeterFlow has: setup (idempotent), ruff, mypy, the Helm chart (helm lint,
# helm template of every ci/ scenario, kubeconform strict) and the whole pytest suite.
# Tests that need services start their own local stack on separate ports and stop it after.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
echo "== ruff"
.venv/bin/ruff check contracts runtime pipeline connectors services meterflow tests bench scripts
echo "== mypy"
.venv/bin/mypy
echo "== helm chart"
bash scripts/chart-check.sh
echo "== pytest"
# The pure billing domain, with the money arithmetic and ids it takes from the contracts,
# keeps at least 95% line coverage (docs/architecture.md, layers).
exec .venv/bin/python -m pytest --cov=pipeline.billing --cov=contracts.money --cov=contracts.ids \
    --cov-report=term:skip-covered --cov-fail-under=95 "$@"
