# llmproxy gateway image: slim Python, non-root, state in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LLMPROXY_HOST=0.0.0.0 \
    LLMPROXY_PORT=8080 \
    LLMPROXY_DATA_DIR=/data \
    LLMPROXY_REGISTRY=/data/registry/models.json

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY llmproxy ./llmproxy
COPY scrapers ./scrapers
COPY registry ./registry
# The same pinned versions as CI (constraints.txt); only the runtime dependencies get installed.
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /app llmproxy \
    && mkdir -p /data/registry \
    && chown -R llmproxy /data

USER llmproxy
VOLUME ["/data"]
EXPOSE 8080
# Listening on 0.0.0.0 needs LLMPROXY_MASTER_KEY (from the env file); the gateway refuses otherwise.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["llmproxy", "serve"]
