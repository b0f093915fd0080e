#!/usr/bin/env bash
# Checks the Helm chart: `helm lint --strict` and `helm template` of every ci/*-values.yaml
# scenario, then kubeconform (strict, offline schemas) on every rendered manifest, for the
# Kubernetes version pinned in scripts/setup.sh. Needs the tools setup.sh installs.
#
# The bundled services (Kafka, TimescaleDB, Grafana) are chart dependencies that
# `helm dependency build` fetches into charts/. When they are not there, the chart is
# checked from a copy without its `dependencies:` list: MeterFlow's own templates render in
# every scenario (bundled ones included, with their addresses and secrets of the bundled
# services), the dependencies' own manifests are not rendered, and this says so.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${METERFLOW_TOOLS_DIR:-$PWD/.tools}"
. "$tools/versions.env"
chart=helm/meterflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

deps_missing=$(.venv/bin/python - "$chart" <<'PY'
import sys, yaml, pathlib
chart = pathlib.Path(sys.argv[1])
deps = yaml.safe_load((chart / "Chart.yaml").read_text()).get("dependencies") or []
have = {p.name for p in (chart / "charts").glob("*.tgz")} if (chart / "charts").is_dir() else set()
print(" ".join(d["name"] for d in deps if f"{d['name']}-{d['version']}.tgz" not in have))
PY
)
target="$chart"
if [ -n "$deps_missing" ]; then
  echo "note: dependency charts not in $chart/charts ($deps_missing): checking MeterFlow's own templates only"
  cp -r "$chart" "$work/meterflow"
  .venv/bin/python - "$work/meterflow/Chart.yaml" <<'PY'
import sys, yaml, pathlib
path = pathlib.Path(sys.argv[1])
meta = yaml.safe_load(path.read_text())
meta.pop("dependencies", None)
path.write_text(yaml.safe_dump(meta, sort_keys=False))
PY
  target="$work/meterflow"
fi

k8s="$KUBERNETES_VERSION"
schemas="$tools/kubernetes-json-schema/{{.NormalizedKubernetesVersion}}-standalone{{.StrictSuffix}}/{{.ResourceKind}}{{.KindSuffix}}.json"
status=0
for values in "$chart"/ci/*-values.yaml; do
  scenario=$(basename "$values" -values.yaml)
  echo "-- $scenario"
  "$tools/bin/helm" lint --strict --quiet "$target" -f "$values" --kube-version "$k8s" || status=1
  out="$work/$scenario.yaml"
  if "$tools/bin/helm" template meterflow "$target" -f "$values" --namespace meterflow \
       --kube-version "$k8s" > "$out"; then
    # No -skip and no CRD schemas needed: every kind rendered is a built-in one.
    "$tools/bin/kubeconform" -strict -summary -kubernetes-version "$k8s" \
      -schema-location "$schemas" "$out" || status=1
  else
    status=1
  fi
done
exit $status
