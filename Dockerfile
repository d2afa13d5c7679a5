# The image every fleet workload runs (workers, beat, exporter, Flower): `fleet <command>`.
# Runtime dependencies only, pinned with hashes by requirements-runtime.lock (`make lock`
# writes it): pip refuses any file whose hash is not in the lock (--require-hashes). The lock
# carries the build backend too, so the project itself builds without build isolation and
# nothing unhashed is downloaded. .dockerignore keeps the context to what is COPYed here.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements-runtime.lock ./
RUN pip install --no-deps --require-hashes -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-deps --no-build-isolation . && rm -rf /root/.cache

# The uid the infra's securityContext runs as (infra/podspec.py APP_UID); the root
# filesystem is read-only there, so writable dirs come from emptyDir mounts.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin fleet
USER 10001

ENTRYPOINT ["fleet"]
CMD ["--help"]
