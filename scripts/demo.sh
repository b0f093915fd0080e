#!/usr/bin/env bash
# The MeterFlow demo: installs what is missing, starts the local stack, applies the schema,
# and runs `meterflow demo` (simulated meters -> Kafka -> pipeline -> TimescaleDB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
.venv/bin/meterflow stack up
.venv/bin/meterflow db migrate
exec .venv/bin/meterflow demo "$@"
