# otlp-bridge: small, non-root, state on a volume, listening on all interfaces inside.
#   docker build -t otlp-bridge:0.1.0 .
#   docker run -p 127.0.0.1:4317:4317 -p 127.0.0.1:4318:4318 -p 127.0.0.1:9464:9464 \
#     -v otlp-bridge:/var/lib/otlp-bridge otlp-bridge:0.1.0
# Dependencies come from requirements.lock (exact versions and hashes, see its header). To pin the
# base by digest: --build-arg BASE=python:3.11.11-slim-bookworm@sha256:<digest from your registry>.
# Offline builds: put the lock's wheels in .wheels/ (see tests/test_container.py) and nothing is fetched.
ARG BASE=python:3.11.11-slim-bookworm

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/otlp-bridge
WORKDIR /src
COPY requirements.lock ./
COPY .wheels/ /wheels/
RUN if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheels; fi \
    && /opt/otlp-bridge/bin/pip install --require-hashes --no-deps --only-binary :all: -r requirements.lock "$@"
COPY pyproject.toml README.md ./
COPY otlp_bridge ./otlp_bridge
# The lock holds the build backend too, so the project itself builds with nothing fetched.
RUN /opt/otlp-bridge/bin/pip install --no-deps --no-build-isolation --no-index . \
    && /opt/otlp-bridge/bin/pip uninstall --yes setuptools

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="otlp-bridge" \
      org.opencontainers.image.description="Claude Code's OpenTelemetry metrics and events as exact Prometheus series" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="python:3.11.11-slim-bookworm"
RUN groupadd --system --gid 10001 otlp-bridge \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin otlp-bridge \
    && mkdir -p /var/lib/otlp-bridge && chown 10001:10001 /var/lib/otlp-bridge
COPY --from=build /opt/otlp-bridge /opt/otlp-bridge
ENV PATH=/opt/otlp-bridge/bin:$PATH \
    OTLP_BRIDGE_SERVER__HOST=0.0.0.0 \
    OTLP_BRIDGE_STATE__DIR=/var/lib/otlp-bridge \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
VOLUME ["/var/lib/otlp-bridge"]
EXPOSE 4317 4318 9464
# Reads the same config and environment as `serve`: right on any metrics port, with or without TLS.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["otlp-bridge", "health"]
ENTRYPOINT ["otlp-bridge"]
CMD ["serve"]
