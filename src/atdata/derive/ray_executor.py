"""Derive on a Ray cluster (needs ``atdata[ray]``): one Ray task per input shard, or per group
of small shards.

Each Ray task runs the same work function as the other executors
(:func:`atdata.derive.work.run_task`), so it writes its output shards straight into the
repository's store (local disk when every node shares this machine's disk, S3 across machines)
and sends back only the small :class:`TaskResult`. The driver commits the entry once, after every
task succeeded; a task that fails makes :meth:`RayExecutor.run` raise (the other tasks are
cancelled; outputs of finished ones stay in the store for the next run to reuse).

**Credentials never travel with a task.** A task is pickled here, by :func:`task_payload`, with
every :class:`~atdata.sources.s3.S3Config` in it replaced by a copy without its secrets
(``secret_access_key``, ``session_token`` and ``access_key_id`` set to None): the endpoint,
region, checksum and retry settings go along, the keys do not. On the node boto3's standard
chain fills them in: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in the environment the node
was started with (``ray start`` passes its environment on to its workers), ``AWS_PROFILE``,
``~/.aws``, or an instance role. Secrets a transform holds in its own fields are the user's to
keep out.

The transform and the sample types must be importable on every node by reference (a
module-level function or lens, as for the process pool): install your package (or put it on
``PYTHONPATH``) where the nodes run.
"""

import io
import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import InvalidArgumentError
from ..sources.s3 import S3Config
from .executors import DeriveTask, TaskResult, WorkFunction

__all__ = ["RayExecutor", "task_payload"]


class _NoSecretsPickler(pickle.Pickler):
    """Pickles like :mod:`pickle`, with every ``S3Config`` stripped of its credentials."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is S3Config and obj.carries_credentials:
            return S3Config.without_credentials, (obj.without_credentials(),)
        return NotImplemented


def task_payload(tasks: Sequence[DeriveTask]) -> bytes:
    """The bytes a Ray task receives: ``tasks`` pickled with S3 credentials left out (see the
    module docs). Unpickled with plain :func:`pickle.loads` on the node."""
    out = io.BytesIO()
    _NoSecretsPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(list(tasks))
    return out.getvalue()


def _run_payload(payload: bytes, work: WorkFunction) -> list[TaskResult]:
    """What a Ray task runs: the tasks of ``payload``, one after another."""
    tasks: list[DeriveTask] = pickle.loads(payload)
    return [work(task) for task in tasks]


class RayExecutor:
    """Runs derive tasks as Ray tasks (``pip install 'atdata[ray]'``).

    ``address``: the cluster to join (``"127.0.0.1:6379"``, ``"auto"``; None: ``$RAY_ADDRESS``,
    else a local Ray started for this process); ignored when Ray is initialised already.
    ``num_cpus``: CPUs of a local Ray started here. ``node_ip_address``: this driver's address
    as the cluster sees it (e.g. a loopback address for a cluster on one machine).
    ``task_cpus``: CPUs each task reserves (1). ``min_task_samples``: consecutive small shards
    are grouped into one Ray task until it holds at least this many input samples (0: one task
    per shard). ``spread``: ask Ray to spread tasks over the nodes (``"SPREAD"`` scheduling)
    rather than pack them.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        *,
        node_ip_address: str | None = None,
        task_cpus: float = 1,
        min_task_samples: int = 0,
        spread: bool = True,
    ) -> None:
        if num_cpus is not None and num_cpus < 1:
            raise InvalidArgumentError(f"num_cpus must be at least 1, got {num_cpus}")
        if task_cpus <= 0:
            raise InvalidArgumentError(f"task_cpus must be positive, got {task_cpus}")
        if min_task_samples < 0:
            raise InvalidArgumentError("min_task_samples must not be negative")
        self.address = address
        self.num_cpus = num_cpus
        self.node_ip_address = node_ip_address
        self.task_cpus = task_cpus
        self.min_task_samples = min_task_samples
        self.spread = spread

    def _ray(self) -> Any:
        from .._optional import require

        ray = require("ray", "ray")
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False}
            if self.node_ip_address is not None:
                options["_node_ip_address"] = self.node_ip_address
            joining = self.address is not None or os.environ.get("RAY_ADDRESS")
            if not joining and self.num_cpus is not None:
                options["num_cpus"] = self.num_cpus  # Ray refuses it when joining a cluster
            ray.init(address=self.address, **options)
        return ray

    def groups(self, tasks: Sequence[DeriveTask]) -> list[list[DeriveTask]]:
        """``tasks`` cut into the groups each Ray task runs, in order."""
        out: list[list[DeriveTask]] = []
        held = 0
        for task in tasks:
            if not out or held >= self.min_task_samples:
                out.append([])
                held = 0
            out[-1].append(task)
            held += sum(i.count for i in task.inputs)
        return out

    def run(self, tasks: Sequence[DeriveTask], work: WorkFunction) -> Iterator[TaskResult]:
        if not tasks:
            return
        ray = self._ray()
        options: dict[str, Any] = {"num_cpus": self.task_cpus, "max_retries": 0}
        if self.spread:
            options["scheduling_strategy"] = "SPREAD"
        remote = ray.remote(_run_payload).options(**options)
        pending = [remote.remote(task_payload(group), work) for group in self.groups(tasks)]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield from ray.get(done[0])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, num_cpus={self.num_cpus})"
