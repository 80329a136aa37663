"""The public surface of ``import atdata``: exactly ``__all__``, and a light import."""

import json
import subprocess
import sys
import textwrap

import atdata

PUBLIC_API = sorted(
    [
        "AtdataError",
        "AtdataIndexError",
        "AtdataWarning",
        "AtmosphereError",
        "AuthenticationError",
        "ConflictError",
        "Dataset",
        "DatasetDict",
        "DatasetEntry",
        "DictSample",
        "Index",
        "Image",
        "ImageSpec",
        "IndexUnavailableError",
        "Indexed",
        "IntegrityError",
        "InvalidArgumentError",
        "Lens",
        "LensError",
        "LensRegistry",
        "Loader",
        "LocalDiskStore",
        "MemberCodec",
        "NDArray",
        "NotFoundError",
        "PackableSample",
        "SampleBatch",
        "Schema",
        "SchemaError",
        "ShardError",
        "ShardInfo",
        "ShardWriter",
        "Shape",
        "SourceError",
        "StoreError",
        "TransformError",
        "__version__",
        "current_registry",
        "default_registry",
        "from_hf",
        "from_ray",
        "lens",
        "load_dataset",
        "member",
        "packable",
        "register_member_codec",
        "write_samples",
    ]
)

HEAVY = [
    "redis",
    "psycopg",
    "boto3",
    "botocore",
    "httpx",
    "atproto",
    "typer",
    "rich",
    "torch",
    "ray",
    "PIL",
]


def test_all_is_pinned() -> None:
    assert sorted(atdata.__all__) == PUBLIC_API
    assert len(set(atdata.__all__)) == len(atdata.__all__)


def test_every_public_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from atdata import *", namespace)
    for name in PUBLIC_API:
        assert getattr(atdata, name) is not None, name
        if name != "__version__":  # star-imports skip dunder names even when listed
            assert namespace[name] is getattr(atdata, name), name


def test_errors_share_one_base_class() -> None:
    errors = [getattr(atdata, n) for n in PUBLIC_API if n.endswith("Error")]
    assert errors
    assert all(issubclass(e, atdata.AtdataError) for e in errors)
    assert issubclass(atdata.AtdataWarning, UserWarning)
    assert issubclass(atdata.IntegrityError, atdata.ShardError)
    assert issubclass(atdata.NotFoundError, atdata.AtdataIndexError)


def test_version_is_a_string() -> None:
    assert isinstance(atdata.__version__, str) and atdata.__version__.count(".") == 2


def test_import_atdata_stays_light() -> None:
    code = textwrap.dedent(
        f"""
        import json, sys
        import atdata
        atdata.Dataset, atdata.write_samples, atdata.LensRegistry
        heavy = {HEAVY!r}
        loaded = sorted(
            m for m in sys.modules if m.split(".")[0] in heavy
        )
        print(json.dumps(loaded))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_torch_feed_surface_is_pinned() -> None:
    """``atdata.torch.feed.feed``'s options and the ``Feed``'s public members (torch extra)."""
    import inspect

    import pytest

    pytest.importorskip("torch")
    from atdata.torch.feed import Feed, feed

    assert list(inspect.signature(feed).parameters) == [
        "source", "batch_size", "device", "threads", "processes", "prefetch", "pin_memory", "plan",
    ]  # fmt: skip
    assert sorted(n for n in dir(Feed) if not n.startswith("_")) == [
        "batch_size", "close", "epoch", "load_state_dict", "reader_pids", "set_epoch",
        "state_dict",
    ]  # fmt: skip
