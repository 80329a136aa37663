"""Member-layout datasets published to a real local PDS load back by ``@handle/name`` and by
``at://`` URI in a fresh process with no class, with the same content: one written by
``Index.write`` from a member-layout type, and one written by ``webdataset`` and adopted into the
index with ``Index.insert(..., sample_type=..., copy=True)``. (An untyped index entry has no
schema and is refused by publish.)"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import webdataset as wds

import atdata
from atdata.atmosphere import AtmosphereSession
from atdata.atmosphere.publish import publish_dataset
from atdata.errors import AtmosphereError
from atdata.index import Index
from atmosphere_helpers import (
    loopback_only,  # noqa: F401 - autouse guard
    new_account_session,
)
from fresh_env import fresh_env

pytestmark = pytest.mark.services


@atdata.packable
class Card:
    caption: str = atdata.member("txt")
    label: int = atdata.member("cls")
    meta: dict[str, Any] = atdata.member("json")


TYPED = "caption,label,meta"


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {"txt": f"card {i}", "cls": i % 3, "json": {"i": i, "odd": bool(i % 2)}} for i in range(n)
    ]


@pytest.fixture
def session(pds: dict[str, Any]) -> AtmosphereSession:
    return new_account_session(pds)  # type: ignore[no-any-return]


def _load_fresh(ref: str, pds: dict[str, Any], home: Path, fields: str) -> list[list[Any]]:
    """``load_dataset(ref)`` in a new interpreter that has no sample class; each sample's
    ``fields`` (attributes of the class made from the stored schema, or DictSample keys)."""
    code = (
        "import json, sys, atdata\n"
        "ds = atdata.load_dataset(sys.argv[1], split='train')\n"
        "names = sys.argv[2].split(',')\n"
        "get = (lambda s, n: s[n]) if isinstance(ds[0], atdata.DictSample) else getattr\n"
        "print(json.dumps([[get(s, n) for n in names] for s in ds]))\n"
    )
    env = fresh_env(home, ATDATA_PLC_URL=pds["plc"], ATDATA_HANDLE_RESOLVER=pds["pds"])
    done = subprocess.run(
        [sys.executable, "-c", code, ref, fields],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[list[Any]] = json.loads(done.stdout)
    return loaded


def _want(n: int) -> list[list[Any]]:
    return [[r["txt"], r["cls"], r["json"]] for r in _rows(n)]


def test_an_index_written_member_dataset_publishes_and_loads_without_its_class(
    pds: dict[str, Any], session: AtmosphereSession, tmp_path: Path
) -> None:
    with Index(home=tmp_path / "home") as index:
        cards = [Card(r["txt"], r["cls"], r["json"]) for r in _rows(13)]
        index.write(cards, "cards", maxcount=5)
        published = publish_dataset(index, "cards", to=session)
    fresh = tmp_path / "fresh"
    assert _load_fresh(f"@{session.handle}/cards", pds, fresh, TYPED) == _want(13)
    assert _load_fresh(str(published.uri), pds, fresh, TYPED) == _want(13)


def test_adopted_webdataset_shards_publish_and_load_without_a_class(
    pds: dict[str, Any], session: AtmosphereSession, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with wds.ShardWriter(str(src / "cards-%06d.tar"), maxcount=4, verbose=0) as sink:
        for i, row in enumerate(_rows(10)):
            sink.write({"__key__": f"card{i:04d}", **row})
    urls = sorted(str(p) for p in src.glob("cards-*.tar"))
    with Index(home=tmp_path / "home") as index:
        # typed on adoption: publishing needs a schema (an untyped dataset is refused, below)
        index.insert(atdata.Dataset(urls), name="adopted", sample_type=Card, copy=True)
        index.insert(atdata.Dataset(urls), name="untyped", copy=True)
        with pytest.raises(AtmosphereError, match="has no schema"):
            publish_dataset(index, "untyped", to=session)
        published = publish_dataset(index, "adopted", to=session)
    fresh = tmp_path / "fresh"
    assert _load_fresh(f"@{session.handle}/adopted", pds, fresh, TYPED) == _want(10)
    assert _load_fresh(str(published.uri), pds, fresh, TYPED) == _want(10)
