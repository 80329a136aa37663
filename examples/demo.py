"""What ``atdata demo`` does, from Python: write, load by name, batch, view through a lens, verify.

The logic lives in :mod:`atdata.demo` (read it: it is short). Here it runs against an index in a
temporary directory instead of the default ``$ATDATA_HOME``.

Run: uv run python examples/demo.py
"""

import tempfile

from atdata.demo import run_demo
from atdata.index import Index


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Index(home=tmp) as index:
        result = run_demo(index, count=2_000, stage=lambda step: print(f"- {step}"))
        print(
            f"{result.ref}: {result.count} samples in {result.shards} shards; loaded as "
            f"{result.loaded_type}; {result.batches} batches of {result.batch_size}; "
            f"{result.view_samples} {result.view_type} views of shape {result.view_image_shape}"
        )
        print(f"checksums: {'all shards match' if not result.problems else result.problems}")


if __name__ == "__main__":
    main()
