# syntax=docker/dockerfile:1
#
# The dbferry worker image: `docker build -t dbferry .` (deploy/kubernetes/README.md).
# The same image runs every other command too: `docker run --rm dbferry status shop`.
# The local demo and dev server (`dbferry demo`, `dbferry dev-server`) need a Temporal CLI and
# PostgreSQL/MariaDB servers, which this image does not have: run those from a checkout.
#
# Not built by this project's CI (its machines have no container engine); test/unit/
# deploy-files.test.ts checks what can be checked without one.

# ---- build: compile the TypeScript, prebuild the workflow bundle, keep production packages ----
FROM node:22-bookworm-slim AS build
WORKDIR /src
ENV NPM_CONFIG_UPDATE_NOTIFIER=false

# The locked versions, dev packages included (TypeScript compiles; @temporalio/worker bundles).
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# What scripts/build.sh compiles: tsconfig.build.json's "include" folders.
COPY tsconfig.json tsconfig.build.json ./
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY client ./client
COPY local ./local
COPY plan ./plan
COPY scripts ./scripts

# dist/ (dist/client/cli.js is the CLI) and dist/workflow-bundle.js (a worker starts without
# webpack), then drop the dev packages from node_modules.
RUN bash scripts/build.sh \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && test -f dist/client/cli.js \
 && test -f dist/workflow-bundle.js

# ---- runtime ----
FROM node:22-bookworm-slim AS runtime

# pg_dump / pg_restore (schema objects in every mode; the whole copy in mode dump-restore).
# pg_dump must be at least the SOURCE server's major version (it refuses to dump a newer server;
# dbferry's preflight checks it): set PG_MAJOR to the newest source major you migrate from
# (e.g. --build-arg PG_MAJOR=18). A newer pg_dump reads every older server. The packages come
# from the PostgreSQL Global Development Group's apt repository (apt.postgresql.org), which has
# every supported major for Debian bookworm; Debian's own has only 15.
ARG PG_MAJOR=17
ARG DBFERRY_VERSION=0.1.0
ARG REVISION=unknown

LABEL org.opencontainers.image.title="dbferry" \
      org.opencontainers.image.description="dbferry worker: PostgreSQL and MySQL/MariaDB to PostgreSQL migrations as Temporal workflows" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${DBFERRY_VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/node:22-bookworm-slim"

RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
      https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    codename="$(. /etc/os-release && echo "$VERSION_CODENAME")"; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${codename}-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump" --version; \
    "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_restore" --version

# A fixed numeric uid, so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 dbferry \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/dbferry --create-home --shell /usr/sbin/nologin dbferry

WORKDIR /app
# DBFERRY_PG_BIN: where dbferry takes pg_dump and pg_restore from (it would find them anyway).
# NODE_OPTIONS: AsyncLocalStorage (Temporal's activity context) in async context frames, not
# async hooks, which every promise pays for: CDC applied a 1M-row backlog in 4.4 s instead of
# 6.1 s (bench/README.md, "CDC on Node.js 22"). Node.js 24 has them by default. Keep the flag
# when you set NODE_OPTIONS yourself.
ENV NODE_ENV=production \
    NODE_OPTIONS=--experimental-async-context-frame \
    DBFERRY_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin

# Owned by root, read-only for the worker. dist/client/cli.js reads ../../package.json (its version).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The plan's JSON Schema: `dbferry init` points editors at it (`dbferry schema` prints it from the code).
COPY schema ./schema

USER 10001:10001

# Prometheus metrics, when the worker runs with --metrics-port 9464 (or DBFERRY_METRICS_PORT=9464).
EXPOSE 9464

# node itself is PID 1: the worker handles SIGTERM (running activities get 10 s to finish,
# shutdown is forced after 1 min), so give it a stop timeout of about 90 s
# (docker stop -t 90; Kubernetes: terminationGracePeriodSeconds: 90).
ENTRYPOINT ["node", "/app/dist/client/cli.js"]
CMD ["worker"]
