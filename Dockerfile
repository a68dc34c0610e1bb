# otlp-bridge: small, non-root, state on a volume, listening on all interfaces inside.
#   docker build -t otlp-bridge:0.1.0 .
#   docker run -p 4317:4317 -p 4318:4318 -p 9464:9464 -v otlp-bridge:/var/lib/otlp-bridge otlp-bridge:0.1.0
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otlp_bridge ./otlp_bridge
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin otlp-bridge \
    && mkdir -p /var/lib/otlp-bridge && chown 10001:10001 /var/lib/otlp-bridge
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV OTLP_BRIDGE_SERVER__HOST=0.0.0.0 \
    OTLP_BRIDGE_STATE__DIR=/var/lib/otlp-bridge \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/var/lib/otlp-bridge"]
EXPOSE 4317 4318 9464
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["otlp-bridge"]
CMD ["serve"]
