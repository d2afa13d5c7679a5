# The image every fleet workload runs (workers, beat, exporter, Flower): `fleet <command>`.
# Runtime dependencies only, pinned by requirements-runtime.lock (`make lock` writes it).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements-runtime.lock ./
RUN pip install --no-deps -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-deps . && rm -rf /root/.cache

# The uid the infra's securityContext runs as (infra/podspec.py APP_UID); the root
# filesystem is read-only there, so writable dirs come from emptyDir mounts.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin fleet
USER 10001

ENTRYPOINT ["fleet"]
CMD ["--help"]
