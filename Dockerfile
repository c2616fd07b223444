# Tocsin: one image for the API (`tocsin serve --no-worker`) and the workers (`tocsin worker`).
#   docker build -t tocsin .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOCSIN_DATA_DIR=/var/lib/tocsin

# The repository root is the package `tocsin`; installed, then the sources are dropped.
COPY . /tmp/tocsin-src
RUN pip install /tmp/tocsin-src \
    && rm -rf /tmp/tocsin-src \
    && useradd --system --uid 10001 --home-dir /var/lib/tocsin --shell /usr/sbin/nologin tocsin \
    && install -d -m 0700 -o tocsin -g tocsin /var/lib/tocsin

USER tocsin
WORKDIR /var/lib/tocsin
EXPOSE 8000 9000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]

CMD ["tocsin", "serve", "--host", "0.0.0.0", "--port", "8000"]
