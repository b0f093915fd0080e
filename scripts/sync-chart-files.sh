#!/usr/bin/env bash
# Copies what the Helm chart ships from elsewhere in the repository into the chart (Helm
# reads nothing outside the chart folder): the Grafana boards dashboards/*.json into
# helm/meterflow/files/dashboards/, and regenerates the chart README from values.yaml.
# tests/helm/test_chart_files.py fails when either is out of date; run this, then commit.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=helm/meterflow/files/dashboards
mkdir -p "$dest"
find "$dest" -maxdepth 1 -name '*.json' -delete
shopt -s nullglob
boards=(dashboards/*.json)
for board in "${boards[@]}"; do
  cp "$board" "$dest/"
done
echo "${#boards[@]} board(s) copied into $dest"
tools="${METERFLOW_TOOLS_DIR:-.tools}"
"$tools/bin/helm-docs" --log-level warning --chart-search-root helm \
  --template-files README.md.gotmpl
echo "helm/meterflow/README.md regenerated"
