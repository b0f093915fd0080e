# The MeterFlow image the Helm chart runs: every component is `meterflow <command>`.
#   docker build -t registry.example.com/meterflow:0.1.0 .
# Stage 1 builds the project's wheel and the wheels of its dependencies; stage 2 installs
# the web console's assets from the npm registry (package-lock.json); stage 3 installs the
# wheels and those assets into a clean interpreter image, without compilers or build files,
# and runs as an
# unprivileged user (uid 10001, the chart's runAsUser). The base is pinned to an exact
# Python and Debian release; pin it by digest too when your registry mirrors it.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY runtime ./runtime
COPY pipeline ./pipeline
COPY connectors ./connectors
COPY services ./services
COPY meterflow ./meterflow
RUN pip wheel --wheel-dir /wheels .

FROM node:20.19.5-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11.13-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    METERFLOW_SQL_DIR=/app/sql \
    METERFLOW_STATE_DIR=/var/lib/meterflow
RUN groupadd --system --gid 10001 meterflow \
 && useradd --system --uid 10001 --gid meterflow --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin meterflow \
 && mkdir -p /var/lib/meterflow \
 && chown meterflow:meterflow /var/lib/meterflow
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels /wheels/meterflow-*.whl \
 && rm -rf /wheels
# The console serves these from its static folder (what scripts/setup.sh copies locally).
COPY --from=assets /src/node_modules/uplot/dist/uPlot.esm.js \
     /src/node_modules/uplot/dist/uPlot.min.css \
     /src/node_modules/uplot/LICENSE \
     /usr/local/lib/python3.11/site-packages/meterflow/console/static/vendor/
WORKDIR /app
# The numbered migrations: `meterflow db migrate` reads them from METERFLOW_SQL_DIR.
COPY sql /app/sql
USER 10001:10001
ENTRYPOINT ["meterflow"]
CMD ["--help"]
