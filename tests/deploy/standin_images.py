"""Images for the deploy test, built without any registry:

- a stand-in for the Dockerfile's base image (python:3.11-slim-bookworm): Debian bookworm
  from `debootstrap`, Python 3.11 as /usr/local/bin/python like the official image (a venv at
  /usr/local over Debian's python3), tagged with the base image's name;
- the project image from the UNCHANGED Dockerfile, `podman build --network none` with pip
  reading only a local wheelhouse of requirements-runtime.lock (no index at build time);
- a stand-in for the in-cluster Redis image from Debian's redis-server;
- a stand-in for the in-cluster PostgreSQL image (`results.mode: postgres` in dev) from
  Debian's postgresql, with an entrypoint doing what the official image's does for the
  variables the rendered StatefulSet sets (see POSTGRES_ENTRYPOINT).

Each image carries a label with the hash of what it was built from, so a warm run reuses it
and any change to the recipe, the Dockerfile, the lock or the service sources rebuilds it."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import REPO
from podman_runtime import Podman, cache_dir

KEY_LABEL = "io.celery-fleet.deploy-test.key"
CACHE_REPO = "localhost/celery-fleet-deploy"
SUITE = "bookworm"
PYTHON_INCLUDE = ("python3", "python3-venv")
REDIS_INCLUDE = ("redis-server",)
# The official images' conventions the rendered pods rely on: python on PATH under
# /usr/local; redis's uid 999 owning /data (the official redis image's VOLUME).
PYTHON_SETUP = "python3 -m venv /usr/local"
REDIS_SETUP = "mkdir -p /data && chown 999:999 /data"
# Debian's postgresql (15 in bookworm) made to look like the official postgres image: the
# `postgres` user is uid/gid 999, the server's binaries are on PATH, the sample config listens
# on every address, the data and socket directories exist for uid 999 (a fresh volume is
# populated from the image's directory, ownership included; /var/run is a directory, not
# Debian's symlink to /run: podman 4.3 resolves a mount path's symlink on the HOST when it
# populates a volume, and would copy the host's /run/postgresql). Debian's own cluster (`main`,
# created when the package is configured) is removed: the entrypoint makes one in PGDATA.
POSTGRES_INCLUDE = ("postgresql",)
POSTGRES_ENTRYPOINT = r"""#!/bin/bash
# The official postgres image's entrypoint, reduced to what the rendered StatefulSet uses.
# On an empty PGDATA: initdb with POSTGRES_USER as the bootstrap superuser and
# POSTGRES_PASSWORD, trust over the local socket and scram-sha-256 for every TCP client (as
# the official image's pg_hba.conf), POSTGRES_DB created, /docker-entrypoint-initdb.d run.
# Then the server in the foreground.
set -Eeo pipefail
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?is required}"
  POSTGRES_USER="${POSTGRES_USER:-postgres}"
  POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
  mkdir -p "$PGDATA" && chmod 00700 "$PGDATA"
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") -D "$PGDATA"
  printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  export PGUSER="$POSTGRES_USER"
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --no-password --dbname postgres --set db="$POSTGRES_DB" \
      <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) . "$f" ;;
      *.sql) psql -v ON_ERROR_STOP=1 --no-password --dbname "$POSTGRES_DB" -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGUSER
fi
exec "$@"
"""
POSTGRES_SETUP = f"""set -e
groupmod -g 999 postgres && usermod -u 999 -g 999 postgres
rm -rf /etc/postgresql/* /var/lib/postgresql/*
ln -s /usr/lib/postgresql/*/bin/* /usr/local/bin/
sed -ri "s!^#?(listen_addresses)\\s*=\\s*\\S+.*!\\1 = '*'!" \\
  /usr/share/postgresql/*/postgresql.conf.sample
rm /var/run && mkdir /var/run
mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d
chown -R 999:999 /var/lib/postgresql /var/run/postgresql
chmod 1777 /var/lib/postgresql/data && chmod 3777 /var/run/postgresql
cat > /usr/local/bin/docker-entrypoint.sh <<'ENTRYPOINT'
{POSTGRES_ENTRYPOINT}ENTRYPOINT
chmod 755 /usr/local/bin/docker-entrypoint.sh
"""
POSTGRES_CHANGES = (
    "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV=LANG=C.UTF-8",
    "ENV=PGDATA=/var/lib/postgresql/data",
    "STOPSIGNAL=SIGINT",
    'ENTRYPOINT=["docker-entrypoint.sh"]',
    'CMD=["postgres"]',
)
PYTHON_CHANGES = (
    "ENV=PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV=LANG=C.UTF-8",
    'CMD=["python3"]',
)
REDIS_CHANGES = (
    "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "WORKDIR=/data",
    'CMD=["redis-server"]',
)


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def debian_mirror() -> str:
    """The Debian archive apt already uses here (deb822 .sources or sources.list)."""
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in files:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (line.partition(":") for line in stanza.splitlines())
                if v and not k.startswith("#")
            )
            suites = fields.get("suites", "").split()
            if SUITE in suites and "main" in fields.get("components", "").split():
                return fields["uris"].split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            match = re.match(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s.*\bmain\b", line)
            if match:
                return match.group(1)
    raise AssertionError(f"no apt source for Debian {SUITE} main: debootstrap needs one")


def rootfs_image(
    podman: Podman, tag: str, include: tuple[str, ...], setup: str, changes: tuple[str, ...]
) -> str:
    """debootstrap + setup in a chroot + `podman import`; reused while the recipe is unchanged."""
    key = digest(SUITE, *include, setup, *changes)
    if podman.label(tag, KEY_LABEL) == key:
        return tag
    debs = cache_dir() / "debs"
    debs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fleet-rootfs-") as tmp:
        root = Path(tmp) / "root"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(include)}",
                f"--cache-dir={debs}",
                SUITE,
                str(root),
                debian_mirror(),
            ],
            timeout=900,
        )
        run(["chroot", str(root), "sh", "-c", setup])
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives"):
            shutil.rmtree(root / junk, ignore_errors=True)
        flags = [f"--change={c}" for c in (*changes, f"LABEL={KEY_LABEL}={key}")]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", *flags, "-", tag],
            stdin=tar.stdout,
            env=podman.env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        tar.wait()
        assert imported.returncode == 0, imported.stderr
    return tag


def run(argv: list[str], timeout: float = 600) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv[:3]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def base_image_name() -> str:
    """The Dockerfile's FROM, fully qualified the way podman stores docker.io images."""
    match = re.search(r"^FROM\s+(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "Dockerfile has no FROM"
    return qualified(match.group(1))


def qualified(ref: str) -> str:
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{ref}"
    return ref


def build_base(podman: Podman) -> str:
    return rootfs_image(podman, base_image_name(), PYTHON_INCLUDE, PYTHON_SETUP, PYTHON_CHANGES)


def build_redis(podman: Podman, name: str) -> str:
    return rootfs_image(podman, qualified(name), REDIS_INCLUDE, REDIS_SETUP, REDIS_CHANGES)


def build_postgres(podman: Podman, name: str) -> str:
    return rootfs_image(podman, qualified(name), POSTGRES_INCLUDE, POSTGRES_SETUP, POSTGRES_CHANGES)


def setuptools_pin() -> str:
    """The build backend `pip install .` needs, at the version the dev lock pins."""
    match = re.search(r"^setuptools==(\S+)", (REPO / "requirements.lock").read_text(), re.M)
    assert match, "requirements.lock pins no setuptools"
    return f"setuptools=={match.group(1)}"


def wheelhouse() -> Path:
    """Wheels of requirements-runtime.lock (+ the build backend), downloaded once per lock."""
    lock = (REPO / "requirements-runtime.lock").read_text()
    path = cache_dir() / f"wheels-{digest(lock, setuptools_pin())}"
    if (path / ".complete").exists():
        return path
    path.mkdir(exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    run([*pip, "-d", str(path), "-r", str(REPO / "requirements-runtime.lock")], timeout=600)
    run([*pip, "-d", str(path), setuptools_pin()], timeout=600)
    (path / ".complete").touch()
    return path


def dockerfile_sources() -> list[Path]:
    """Everything the Dockerfile COPYs (its build context), in a stable order."""
    text = (REPO / "Dockerfile").read_text()
    sources: list[Path] = []
    for line in re.findall(r"^COPY\s+(.+)$", text, re.MULTILINE):
        for item in line.split()[:-1]:
            if not item.startswith("--"):
                sources.append(REPO / item)
    return sources


def context_files() -> list[Path]:
    files = [REPO / "Dockerfile"]
    for source in dockerfile_sources():
        if source.is_dir():
            files += sorted(
                p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            )
        else:
            files.append(source)
    return files


def build_project(podman: Podman, name: str) -> str:
    """The Dockerfile as it is, on the base stand-in, installing only from the wheelhouse."""
    base = build_base(podman)
    base_id = podman.out("image", "inspect", base, "--format", "{{.Id}}")
    files = context_files()
    key = digest(
        base_id, *(f"{p.relative_to(REPO)}" for p in files), *(p.read_bytes() for p in files)
    )
    cached = f"{CACHE_REPO}:{key}"
    if not podman.image_exists(cached):
        wheels = wheelhouse()
        pip_conf = cache_dir() / "pip.conf"
        pip_conf.write_text("[global]\nno-index = true\nfind-links = /wheels\n")
        with tempfile.TemporaryDirectory(prefix="fleet-context-") as tmp:
            context = Path(tmp)
            for path in files:
                target = context / path.relative_to(REPO)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            podman.run(
                "build",
                "--network", "none",
                "--pull=never",
                "--volume", f"{wheels}:/wheels:ro",
                "--volume", f"{pip_conf}:/etc/pip.conf:ro",
                "--tag", cached,
                str(context),
                timeout=900,
            )  # fmt: skip
    # Older builds (other source hashes) would pile up run after run: untag them. Only
    # tags of our cache repository (a listing shows every name of a matching image).
    tags = podman.out("images", "--format", "{{.Repository}}:{{.Tag}}", CACHE_REPO)
    for tag in tags.splitlines():
        if tag.startswith(f"{CACHE_REPO}:") and tag != cached:
            podman.run("untag", tag, tag, check=False)
    podman.run("tag", cached, qualified(name))
    assert podman.image_exists(qualified(name))
    return qualified(name)
