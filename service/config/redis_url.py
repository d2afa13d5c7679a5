"""Redis URLs the fleet accepts, and what each selects (pure functions, no I/O).

- `redis://`, `rediss://` (TLS), `redis+socket://`: one Redis (redis-py's `Redis`).
- `rediscluster://host:port` and its TLS form `redisscluster://host:port`: Redis Cluster
  (redis-py's `RedisCluster`). The rule: append `cluster` to the scheme of the URL you would
  write for one node. The host is any node (ElastiCache: the configuration endpoint); the
  client discovers the others. Everything else is the `redis://` / `rediss://` syntax that
  redis-py's `parse_url` reads (user, password, `?ssl_cert_reqs=required`,
  `socket_timeout=...`), except that a cluster has only database 0 and no unix socket.

Not `rediscluster+tls://`: Celery and kombu read a `+` in a scheme as `<backend>+<url>`."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from redis.connection import parse_url

# scheme -> the one-node scheme redis-py parses the rest of the URL with
CLUSTER_SCHEMES = {"rediscluster": "redis", "redisscluster": "rediss"}
SINGLE_SCHEMES = ("redis", "rediss", "redis+socket")
ACCEPTED_SCHEMES = (*SINGLE_SCHEMES, *CLUSTER_SCHEMES)


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def node_url(url: str) -> str:
    """The `redis://`/`rediss://` form redis-py parses: the same URL with a one-node scheme."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, *parts[1:]))


def check_redis_url(url: str) -> None:
    """Raise ValueError with a message that never contains the URL (it may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ACCEPTED_SCHEMES:
        raise ValueError(
            f"must be a Redis URL ({', '.join(s + '://' for s in ACCEPTED_SCHEMES)}), "
            f"got scheme {parts.scheme or '(none)'!r}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if parts.scheme not in CLUSTER_SCHEMES:
        return
    if not parts.hostname:
        raise ValueError(f"{parts.scheme}:// needs a host: any node, or the configuration endpoint")
    try:
        options = parse_url(node_url(url))  # type: ignore[no-untyped-call]
    except ValueError as exc:  # redis-py names the option, never its value
        raise ValueError(f"has an invalid query option: {exc}") from None
    if int(options.get("db", 0)) != 0:
        raise ValueError("a Redis Cluster has only database 0 (drop the /N path or ?db=)")
