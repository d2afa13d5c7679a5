"""Ports for the dev stack. A preferred port that is taken moves to a free one, and the
move is recorded so the endpoint table can say where each component went."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from service.catalog.naming import EXPORTER_PORT, FLOWER_PORT, REDIS_PORT, WORKER_METRICS_PORT

DEFAULT_PORTS = {
    "redis": REDIS_PORT,
    "worker_metrics": WORKER_METRICS_PORT,
    "exporter": EXPORTER_PORT,
    "flower": FLOWER_PORT,
    "prometheus": 9090,
    "smtp": 8025,
    "external_api": 8099,
}


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on `port` and we may bind it ourselves."""
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            return False
    with socket.socket() as sock:
        # As the servers themselves do: TIME_WAIT leftovers do not make a port taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class PortPlan:
    """The port each component listens on; `moved` maps a name to the port it wanted."""

    ports: dict[str, int]
    moved: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.ports[name]

    def note(self, name: str) -> str:
        """' (9090 was taken)' for a moved port, '' otherwise."""
        wanted = self.moved.get(name)
        return f" ({wanted} was taken)" if wanted is not None else ""


def plan_ports(preferred: dict[str, int], skip: frozenset[str] = frozenset()) -> PortPlan:
    """Keep each preferred port when free, else take a free one. Names in `skip` are kept
    as given (e.g. Redis when an existing server is used and nothing will bind)."""
    ports: dict[str, int] = {}
    moved: dict[str, int] = {}
    for name, port in preferred.items():
        taken_here = port in ports.values()
        if name in skip or (not taken_here and port_free(port)):
            ports[name] = port
            continue
        new = any_free_port()
        while new in ports.values():
            new = any_free_port()
        ports[name] = new
        moved[name] = port
    return PortPlan(ports, moved)
