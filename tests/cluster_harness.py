"""A real Redis Cluster for tests: 3 primaries + 3 replicas of the Debian redis-server on
loopback, created with `redis-cli --cluster create`, plus the two failovers operators meet
(a graceful `CLUSTER FAILOVER` on a replica, and a primary killed with SIGKILL).

A node's cluster bus listens on its port + 10000, so every node port is below 55536 and
both ports are checked free before the node starts."""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis
from harness import require_binary, wait_until
from redis.cluster import RedisCluster
from redis.crc import key_slot

BUS_PORT_OFFSET = 10_000
HIGHEST_NODE_PORT = 65_535 - BUS_PORT_OFFSET  # 55535: its bus port is still a valid port
NODE_TIMEOUT_MS = 2000


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """`count` node ports below 55536 whose bus port (+10000) is free too."""
    rng = rng or random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(20_000, HIGHEST_NODE_PORT + 1)
        if port in ports or port + BUS_PORT_OFFSET in ports:
            continue
        if _port_free(port) and _port_free(port + BUS_PORT_OFFSET):
            ports.append(port)
    return ports


@dataclass
class ClusterNode:
    port: int
    data_dir: Path
    appendonly: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        binary = require_binary("redis-server")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = self.client()
        wait_until(lambda: _pings(client), 10, message=f"cluster node {self.address}")
        client.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def role(self) -> str:
        """'master' or 'slave' as the node itself reports (ROLE)."""
        client = self.client()
        try:
            reply = client.execute_command("ROLE")
        finally:
            client.close()
        role = reply[0]
        return role.decode() if isinstance(role, bytes) else str(role)


@dataclass
class RedisClusterUnderTest:
    """Six nodes, three of them primaries; `url` is a rediscluster:// URL to any node."""

    nodes: list[ClusterNode] = field(default_factory=list)
    root: Path | None = None
    appendonly: bool = False  # AOF, fsync always: a restarted node loads what it acknowledged

    @property
    def url(self) -> str:
        """A live node as the startup node: like ElastiCache's configuration endpoint, it
        answers while a killed primary is down (a dead startup node cannot bootstrap)."""
        return f"rediscluster://{self.live_nodes()[0].address}"

    @property
    def plain_url(self) -> str:
        return f"redis://{self.live_nodes()[0].address}"

    def start(self, primaries: int = 3, replicas_per_primary: int = 1) -> RedisClusterUnderTest:
        cli = require_binary("redis-cli")
        require_binary("redis-server")
        self.root = Path(tempfile.mkdtemp(prefix="fleet-cluster-"))
        count = primaries * (1 + replicas_per_primary)
        self.nodes = [
            ClusterNode(port, self.root / str(port), self.appendonly)
            for port in free_cluster_ports(count)
        ]
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                str(replicas_per_primary),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until(self.healthy, 60, interval=0.2, message="cluster_state:ok on every node")
        return self

    def healthy(self) -> bool:
        """Every live node says ok, all 16384 slots are served, and each live primary the
        ring knows has a live replica again (after a failover the old primary rejoins)."""
        for node in self.live_nodes():
            try:
                client = node.client()
                info = client.cluster("INFO")
                client.close()
            except redis.RedisError:
                return False
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                return False
        return True

    def live_nodes(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.alive()]

    def client(self) -> RedisCluster:
        # Above the 5 s the tests' WAIT may block for (5 s each raced under load).
        return RedisCluster.from_url(self.plain_url, socket_timeout=15)

    def primary_for(self, key: str) -> ClusterNode:
        """The live primary that serves `key`'s slot now (asked of the nodes themselves)."""
        slot = key_slot(key.encode())
        for node in self.live_nodes():
            client = node.client()
            try:
                ranges = client.execute_command("CLUSTER", "SLOTS")
            finally:
                client.close()
            for start, end, primary, *_replicas in ranges:
                if int(start) <= slot <= int(end):
                    port = int(primary[1])
                    return next(n for n in self.live_nodes() if n.port == port)
        raise AssertionError(f"no live primary serves slot {slot} of {key!r}")

    def replica_of(self, primary: ClusterNode) -> ClusterNode:
        """A live replica attached to `primary` (waits for one to finish its sync)."""

        def attached() -> ClusterNode | None:
            client = primary.client()
            try:
                reply = client.execute_command("ROLE")
            finally:
                client.close()
            # ROLE on a primary: ["master", offset, [[ip, port, offset], ...]]
            ports = [int(entry[1]) for entry in reply[2]]
            return next((node for node in self.live_nodes() if node.port in ports), None)

        found: ClusterNode = wait_until(
            attached, 30, interval=0.1, message=f"a replica of {primary.address}"
        )
        return found

    def graceful_failover(self, key: str) -> tuple[ClusterNode, ClusterNode]:
        """`CLUSTER FAILOVER` on the replica of `key`'s primary: the replica catches up,
        then takes over; nothing acknowledged is lost. Returns (old primary, new primary)."""
        old = self.primary_for(key)
        new = self.replica_of(old)
        client = new.client()
        try:
            client.execute_command("CLUSTER", "FAILOVER")
        finally:
            client.close()
        wait_until(lambda: new.role() == "master", 30, interval=0.1, message="replica promoted")
        wait_until(lambda: old.role() == "slave", 30, interval=0.1, message="old primary demoted")
        wait_until(self.healthy, 30, interval=0.2, message="cluster healthy after failover")
        return old, new

    def kill_primary(self, key: str) -> tuple[ClusterNode, ClusterNode]:
        """SIGKILL of `key`'s primary; its replica is elected after the node timeout.
        Returns (killed primary, promoted replica). Writes not yet replicated are lost:
        Redis replication is asynchronous."""
        old = self.primary_for(key)
        new = self.replica_of(old)
        old.stop(signal.SIGKILL)
        wait_until(lambda: new.role() == "master", 30, interval=0.1, message="replica elected")
        wait_until(self.healthy, 30, interval=0.2, message="cluster healthy after kill")
        return old, new

    def restart(self, node: ClusterNode) -> None:
        """Bring a stopped node back; it rejoins from its nodes.conf as a replica."""
        node.start()
        wait_until(lambda: node.role() == "slave", 30, interval=0.1, message="node rejoined")
        wait_until(self.healthy, 30, interval=0.2, message="cluster healthy after rejoin")

    def restart_primary(self, key: str) -> ClusterNode:
        """SIGTERM of `key`'s primary and a start at once on the same port and data dir (a
        Redis process restarted in place, from its AOF when `appendonly`). Back within the
        node timeout it is still the primary; later, its replica took over and it rejoins
        as the replica: either way the cluster is whole again before this returns."""
        node = self.primary_for(key)
        node.stop()
        node.start()
        wait_until(self.healthy, 30, interval=0.2, message="cluster healthy after restart")
        return node

    def flush(self) -> None:
        for node in self.live_nodes():
            if node.role() == "master":
                client = node.client()
                client.flushall()
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(signal.SIGKILL)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
