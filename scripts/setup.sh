#!/usr/bin/env bash
# Installs what MeterFlow needs on a Debian 12 machine, idempotently:
#   - system packages (PostgreSQL 15, build tools, Mosquitto, Java 17, Maven, kcat),
#   - the TimescaleDB extension (Apache-2 edition) built from Debian 13's source package
#     when PostgreSQL 15 does not have it yet,
#   - the Python virtual environment in .venv with the project installed.
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
log "ready"
