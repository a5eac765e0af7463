# The adaptrec API / scheduler image. Configuration comes only from environment variables.
FROM python:3.11-slim

# A C compiler builds the LightFM extension (rectools-lightfm ships only an sdist).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/adaptrec
COPY pyproject.toml README.md ./
COPY app ./app
COPY jobs ./jobs
COPY cli ./cli
COPY migrations ./migrations
COPY sql ./sql
# Editable install: migrations/ and sql/ are read from beside the package.
RUN pip install --no-cache-dir -e . \
    && useradd --system --uid 10001 --home /srv/adaptrec adaptrec \
    && mkdir -p /srv/adaptrec/reports && chown adaptrec /srv/adaptrec/reports
USER adaptrec

ENV ADAPTREC_HOST=0.0.0.0 ADAPTREC_PORT=8000 ADAPTREC_WORKERS=2
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
# Migrations run first (safe when several replicas start at once), then gunicorn serves.
CMD ["adaptrec", "serve"]
