# Two images from one file (docs/deploy.md):
#   serve (default, last stage): `digits serve`, runtime dependencies only, no Prefect.
#   train: `digits train` / `digits schedule` / `prefect server start`, with the `pipeline` extra.
# BASE must be a Debian-like image with python3 + venv at the Python version the wheels target;
# CI passes a debootstrapped bookworm instead of pulling one (scripts/container_ci.sh).
# No `# syntax=` line on purpose: RUN --mount and named build contexts are built into
# Docker 23+ and buildah, and an offline build could not fetch a frontend image anyway.
ARG BASE=python:3.11-slim-bookworm

# An optional local wheelhouse for builds without an index. By default it is this empty stage
# and pip uses its index; `--build-context wheels=DIR` (docker buildx and buildah) replaces it,
# and then pip installs from DIR only (--no-index), so the build needs no network.
FROM scratch AS wheels

# ---------------------------------------------------------------------------------------------
# Builders: /app/.venv with dependencies first (cached until pyproject.toml changes), then the
# project itself with --no-deps.
FROM ${BASE} AS deps-serve
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY pyproject.toml deploy/docker/pyproject_requirements.py deploy/docker/pip_install.sh /build/
RUN python3 -m venv /app/.venv \
    && python3 /build/pyproject_requirements.py /build/pyproject.toml > /build/requirements.txt
RUN --mount=type=bind,from=wheels,target=/wheels \
    sh /build/pip_install.sh -r /build/requirements.txt

FROM deps-serve AS deps-train
RUN python3 /build/pyproject_requirements.py /build/pyproject.toml --extra pipeline \
        > /build/requirements-train.txt
RUN --mount=type=bind,from=wheels,target=/wheels \
    sh /build/pip_install.sh -r /build/requirements-train.txt

# The serve image gets no pipeline/ package at all: it could not import without Prefect anyway.
FROM deps-serve AS build-serve
COPY pyproject.toml README.md* /src/
COPY core /src/core
COPY registry /src/registry
COPY service /src/service
COPY cli /src/cli
RUN --mount=type=bind,from=wheels,target=/wheels \
    sh /build/pip_install.sh --no-deps /src

FROM deps-train AS build-train
COPY pyproject.toml README.md* /src/
COPY core /src/core
COPY registry /src/registry
COPY service /src/service
COPY cli /src/cli
COPY pipeline /src/pipeline
RUN --mount=type=bind,from=wheels,target=/wheels \
    sh /build/pip_install.sh --no-deps /src

# ---------------------------------------------------------------------------------------------
# Runtime: same BASE (so the venv's python symlink resolves), a fixed non-root uid so that
# Kubernetes' runAsNonRoot can verify it, and the registry as a mounted volume.
FROM ${BASE} AS runtime
# A writable home for caches (MNIST download, Prefect's database and settings).
RUN groupadd --gid 10001 digits \
    && useradd --no-log-init --uid 10001 --gid digits --create-home --home-dir /home/digits \
        --shell /usr/sbin/nologin digits \
    && mkdir -p /models /app /home/digits/.cache /home/digits/.prefect \
    && chown -R 10001:10001 /models /home/digits
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DIGITS_REGISTRY=/models
WORKDIR /app
VOLUME ["/models"]

FROM runtime AS train
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false
COPY --from=build-train --chown=digits:digits /app/.venv /app/.venv
USER 10001:10001
EXPOSE 4200
ENTRYPOINT ["digits"]
CMD ["train"]

FROM runtime AS serve
COPY --from=build-serve --chown=digits:digits /app/.venv /app/.venv
# Reachable from outside the container. Plaintext gRPC by default inside a private network;
# mount a certificate and set DIGITS_TLS_CERT / DIGITS_TLS_KEY (service/settings.py) for TLS.
ENV DIGITS_HOST=0.0.0.0 \
    DIGITS_PLAINTEXT=true \
    DIGITS_PORT=50051 \
    DIGITS_METRICS_PORT=9100
USER 10001:10001
# gRPC (DIGITS_PORT) and Prometheus metrics (DIGITS_METRICS_PORT).
EXPOSE 50051 9100
# grpc.health.v1 Check on 127.0.0.1:$DIGITS_PORT; exit 0 only when SERVING (a model is loaded).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
ENTRYPOINT ["digits"]
CMD ["serve"]
