"""Reading a remote shard by position (``to_torch``, shuffled): a member whose header does not
match the offset index is left out (or raised, naming shard and offset), the rest arrive in order."""

from pathlib import Path

import pytest

import atdata
from atdata.errors import ShardError
from atdata.shards.offsets import OffsetIndex
from http_server import FileServer
from torch_helpers import Item, write_shards

N = 40
BAD = (7, 23)


@pytest.fixture
def shard(tmp_path: Path) -> Path:
    write_shards(tmp_path, [N])
    (path,) = sorted(tmp_path.glob("part*.tar"))
    index = OffsetIndex.from_bytes(Path(str(path) + ".idx").read_bytes(), "test")
    data = bytearray(path.read_bytes())
    for member in BAD:
        data[int(index.header_offsets[member]) + 3] ^= 0x20  # the member name: checksum fails
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("shuffle", [False, True])
def test_bad_members_of_a_remote_shard_are_skipped(shard: Path, shuffle: bool) -> None:
    with FileServer(shard.parent) as server:
        ds = atdata.Dataset[Item](server.url_for(shard.name), on_error="skip")
        tds = ds.to_torch(batch_size=8, shuffle=shuffle, seed=1, drop_last=False)
        batches = list(tds)
        plain = list(atdata.Dataset[Item](str(shard), on_error="skip").to_torch(batch_size=8))
    got = [int(i) for b in batches for i in b["idx"]]
    assert sorted(got) == [i for i in range(N) if i not in BAD]
    for b in batches:  # keys and names stay with their samples
        assert b["name"] == [f"item-{int(i)}" for i in b["idx"]]
        assert len(b["__key__"]) == len(b["name"])
    if not shuffle:
        assert got == sorted(got)
    assert [int(i) for b in plain for i in b["idx"]] == list(range(BAD[0]))  # local: stops there


def test_a_bad_remote_member_raises_naming_shard_and_offset(shard: Path) -> None:
    index = OffsetIndex.from_bytes(Path(str(shard) + ".idx").read_bytes(), "test")
    with FileServer(shard.parent) as server:
        ds = atdata.Dataset[Item](server.url_for(shard.name))
        with pytest.raises(ShardError) as caught:
            list(ds.to_torch(batch_size=8))
    assert shard.name in str(caught.value)
    assert str(int(index.header_offsets[BAD[0]])) in str(caught.value)
