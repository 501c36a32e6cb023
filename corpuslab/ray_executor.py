"""Curation on Ray: every per-shard task of a curation step runs as a Ray task, locally or on a cluster.

    curation:
      executor: ray
      ray: {address: auto}      # local (a Ray on this machine for the run) | auto | host:port | ray://host:10001

The steps hand the executor the same top-level functions and work items as the local process pool
(`executor.map(fn, items)`, results in input order), so the decision tables are the same: Ray only
decides where each shard runs. Results come back to the driver, which writes every output, so workers
need corpuslab installed (or `ray.runtime_env`) and read access to the shard paths, not a writable
shared folder. `ray` is imported only when the executor is first used: `pip install 'corpuslab[ray]'`.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from corpuslab.errors import ConfigError
from corpuslab.executor import ExecutorKind, executors
from corpuslab.schema import require, require_int

Item = TypeVar("Item")
Result = TypeVar("Result")

INSTALL_HINT = "the ray package, which is not installed: pip install 'corpuslab[ray]' (or pip install 'ray>=2.60,<3')"


@dataclass(frozen=True)
class RayConfig:
    """address: `local` starts a Ray instance on this machine for the run (bound to 127.0.0.1, stopped at
    the end); `auto` joins the cluster this machine is part of (started with `ray start`, or RAY_ADDRESS);
    `host:port` (the head's GCS port, 6379 by default) or `ray://host:10001` (Ray Client) joins that one.
    A Ray already initialised in this process (`ray.init` in a notebook) is used as it is.
    num_cpus: CPUs of a `local` instance (default: curation.workers, else all cores). cpus_per_task: CPUs
    Ray reserves for each shard task. connect_timeout_s: how long to wait for a cluster's address to answer.
    runtime_env: passed to `ray.init`, e.g. `{pip: [corpuslab]}` when the cluster's workers lack corpuslab."""

    address: str = "local"
    num_cpus: int | None = None
    cpus_per_task: float = 1.0
    connect_timeout_s: float = 10.0
    runtime_env: dict[str, Any] | None = None

    def validate(self, prefix: str) -> None:
        require(isinstance(self.address, str) and self.address.strip() != "", f"{prefix}.address", self.address,
                "local, auto, or a cluster address (host:port or ray://host:port)")
        if self.address not in ("local", "auto"):
            host_port(self.address, f"{prefix}.address")
        require_int(self.num_cpus, f"{prefix}.num_cpus", 1, optional=True)
        require(self.cpus_per_task > 0, f"{prefix}.cpus_per_task", self.cpus_per_task, "a number > 0")
        require(self.connect_timeout_s > 0, f"{prefix}.connect_timeout_s", self.connect_timeout_s, "a number of seconds > 0")


# Ray 2.60 clusters started with `ray start` use token authentication as soon as a token exists
# (~/.ray/auth_token, made by any local `ray.init`), but a process joining one sends its token only under
# RAY_AUTH_MODE=token: without it, Ray retries for 20 s and reports a failed connection.
TOKEN_HINT = ("a Ray cluster this process may join, but the cluster refused it: it runs with token authentication and this "
              "process sent no token or another one; set RAY_AUTH_MODE=token in this process's environment and give it the "
              "cluster's token (the head node's ~/.ray/auth_token copied to this machine, or RAY_AUTH_TOKEN / "
              "RAY_AUTH_TOKEN_PATH); see https://docs.ray.io/en/latest/ray-security/token-auth.html")


def _refused_token(err: BaseException) -> bool:
    """Whether Ray's failure to join a cluster came from token authentication (the cause is a few levels down)."""
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return False
        if type(seen).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def host_port(address: str, key: str) -> tuple[str, int]:
    """('10.0.0.1', 6379) from `10.0.0.1:6379` or `ray://10.0.0.1:6379`."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(key, address, "local, auto, or a cluster address host:port or ray://host:port (e.g. 10.0.0.1:6379)")
    return host.strip("[]"), int(port)


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


@executors.register
class RayKind(ExecutorKind):
    """Shard tasks as Ray tasks, on this machine or a Ray cluster."""

    name = "ray"
    Config = RayConfig

    def build(self, workers: int | None, key: str) -> RayExecutor:
        return RayExecutor(self.config, workers, key)


class RayExecutor:
    """`map(fn, items)` as one Ray task per item, results in input order; `completed` as they finish.

    Connects on first use, so loading a config never starts Ray. It stops only a Ray instance it started."""

    def __init__(self, config: RayConfig | None = None, workers: int | None = None, key: str = "curation.ray"):
        self.config = config or RayConfig()
        self.workers = workers
        self.key = key
        if not ray_installed():
            raise ConfigError(f"{key.rsplit('.', 1)[0]}.executor", "ray", INSTALL_HINT)
        self._started = False  # this executor called ray.init, so close() calls ray.shutdown()
        self._connected = False
        self._remotes: dict[Callable, Any] = {}
        self._pending: list[Any] = []

    # -------------------------------------------------------------- connecting

    def connect(self) -> None:
        import ray

        if self._connected:
            return
        if not ray.is_initialized():
            self._init(ray)
            self._started = True
        self._connected = True

    def check(self) -> None:
        """Before any stage runs: a cluster address that does not answer (or `auto` on a machine where no
        cluster is found) stops the run in seconds."""
        address = self._auto_address() if self.config.address == "auto" else self.config.address
        if address is not None and address != "local":
            self._check_reachable(address, f"{self.key}.address", given=self.config.address)

    def _auto_address(self) -> str | None:
        """The address `auto` resolves to (RAY_ADDRESS, the last `ray start` on this machine, a running cluster),
        as `ray.init` resolves it; None when this Ray offers no way to ask (ray.init then says)."""
        try:
            from ray._private.services import get_ray_address_from_environment
        except ImportError:
            return None
        try:
            return get_ray_address_from_environment("auto", None)
        except ConnectionError:
            raise ConfigError(f"{self.key}.address", "auto", "a running Ray cluster, but no Ray cluster was found from "
                              f"this machine (RAY_ADDRESS is not set and no `ray start` ran here); {self._what_to_do()}") from None
        except Exception:  # an address Ray cannot parse: ray.init reports it with the setting
            return None

    def _init(self, ray: Any) -> None:
        cfg, key = self.config, f"{self.key}.address"
        common = {"include_dashboard": False, "log_to_driver": False, "runtime_env": cfg.runtime_env}
        if cfg.address == "local":
            # Loopback only, and no usage report: a local instance never reaches or listens on an outside address.
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(num_cpus=cfg.num_cpus or self.workers or os.cpu_count() or 1, _node_ip_address="127.0.0.1", **common)
            return
        if cfg.address != "auto":
            self._check_reachable(cfg.address, key)
        try:
            ray.init(address=cfg.address, **common)
        except (ConnectionError, TimeoutError, RuntimeError) as err:
            if _refused_token(err):
                raise ConfigError(key, cfg.address, TOKEN_HINT) from None
            found = "no Ray cluster was found from this machine" if cfg.address == "auto" else f"Ray could not join it: {err}"
            raise ConfigError(key, cfg.address, f"a running Ray cluster, but {found}; {self._what_to_do()}") from None

    def _check_reachable(self, address: str, key: str, given: str | None = None) -> None:
        """Ray itself retries an unreachable address for minutes: a plain TCP connect says so in seconds.
        `given` is the setting's value when it differs from `address` (`auto`, resolved by Ray)."""
        host, port = host_port(address, key)
        resolved = f" (`auto` found {address})" if given not in (None, address) else ""
        try:
            socket.create_connection((host, port), timeout=self.config.connect_timeout_s).close()
        except OSError as err:
            raise ConfigError(key, given or address, f"a reachable Ray cluster{resolved}, but nothing answered at {host}:{port} within "
                              f"{self.config.connect_timeout_s:g} s ({err.strerror or err}); {self._what_to_do()}") from None

    def _what_to_do(self) -> str:
        return (f"start one with `ray start --head` and give its address (host:6379, or ray://host:10001 for Ray Client), "
                f"use `{self.key}.address: auto` on a machine of the cluster, or `{self.key}.address: local` to run Ray "
                "on this machine only")

    # -------------------------------------------------------------- running tasks

    def _submit(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> list[Any]:
        import ray

        self.connect()
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = ray.remote(num_cpus=self.config.cpus_per_task)(fn)
        refs = [remote.remote(item) for item in items]
        self._pending = refs
        return refs

    def map(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[Result]:
        refs = self._submit(fn, items)  # every task is submitted now, as a process pool's map does

        def in_order() -> Iterator[Result]:
            for ref in refs:
                yield _get(ref)

        return in_order()

    def completed(self, fn: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[tuple[int, Result]]:
        """(index, result) in the order the tasks finish."""
        import ray

        refs = self._submit(fn, items)
        index = {ref: i for i, ref in enumerate(refs)}

        def finished() -> Iterator[tuple[int, Result]]:
            waiting = list(refs)
            try:
                while waiting:
                    done, waiting = ray.wait(waiting, num_returns=1)
                    yield index[done[0]], _get(done[0])
            finally:
                # As the local pool does: after a failure (or the caller stopping), tasks not yet started
                # are cancelled rather than left to run for results nobody reads.
                for ref in waiting:
                    ray.cancel(ref)

        return finished()

    def close(self, interrupted: bool = False) -> None:
        """Cancel what is still running after an interrupt; stop the Ray instance if this executor started it."""
        if not self._connected:
            return
        import ray

        if interrupted:
            for ref in self._pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001  (finished or already gone: nothing to cancel)
                    pass
        self._pending = []
        self._remotes.clear()
        if self._started:
            ray.shutdown()
        self._started = self._connected = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(interrupted=exc_type is KeyboardInterrupt)


def _get(ref: Any) -> Any:
    """The task's result; a task's own exception is raised as itself (a ValueError stays a ValueError)."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise
