"""The driver's journal of finished tasks, so a derive that was killed loses no finished work.

The driver writes one small JSON file per finished task (atomically, as results arrive) under
``$ATDATA_HOME/derive/<digest of repository and name>/``: the task id, its input shards, the
output :class:`ShardInfo` values in the store, the sample counts and the failures recorded.
Nothing is committed to the index until every task finished; a later derive of the same name
that plans a task with a journalled id copies its outputs into the new version (after the
store confirms their bytes) instead of running it again. The journal of a name is cleared when
a derive of that name commits.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .._fs import atomic_write_bytes
from .._home import atdata_home
from ..shards.info import ShardInfo
from .executors import InputShard, SampleFailure, TaskResult

__all__ = ["Journal"]


class Journal:
    """Finished task results of the derives of one dataset name in one repository."""

    def __init__(self, repo: str, name: str, root: Path | None = None) -> None:
        digest = hashlib.sha256(f"{repo}\0{name}".encode()).hexdigest()[:24]
        self.path = (root or atdata_home() / "derive") / digest

    def record(self, result: TaskResult) -> None:
        os.makedirs(self.path, exist_ok=True)
        data = {
            "task_id": result.task_id,
            "inputs": [{"url": i.url, "sha256": i.sha256, "count": i.count} for i in result.inputs],
            "outputs": [s.to_dict() for s in result.outputs],
            "samples_in": result.samples_in,
            "samples_out": result.samples_out,
            "failures": [f.to_dict() for f in result.failures],
        }
        atomic_write_bytes(self.path / f"{result.task_id}.json", json.dumps(data).encode())

    def find(self, task_id: str, index: int) -> TaskResult | None:
        """The journalled result of ``task_id`` (renumbered to ``index``), or None."""
        try:
            data: Any = json.loads((self.path / f"{task_id}.json").read_bytes())
            return TaskResult(
                index=index,
                task_id=task_id,
                inputs=tuple(
                    InputShard(str(i["url"]), str(i["sha256"]), int(i["count"]))
                    for i in data["inputs"]
                ),
                outputs=tuple(ShardInfo.from_dict(s) for s in data["outputs"]),
                samples_in=int(data["samples_in"]),
                samples_out=int(data["samples_out"]),
                failures=tuple(SampleFailure.from_dict(f) for f in data["failures"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or unreadable: the task runs again

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
