"""``feed(..., processes=N)``: forked reader processes deliver exactly the threaded feed's batches
(same order, contents, state), surface a reader's error, and never outlive the pass or the
training process."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atdata.errors import AtdataError, InvalidArgumentError, SchemaError  # noqa: E402
from atdata.torch.feed import feed  # noqa: E402
from test_torch_feed import Pic, check_batch, write  # noqa: E402
from waiting import wait_until  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reader processes are forked")


def gone(pid: int) -> bool:
    """The process has exited (no such process, or a zombie its new parent has not reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def content(batches: Any) -> list[tuple[Any, ...]]:
    return [
        (b["label"].tolist(), b["image"].sum().item(), b["vec"].tolist(), b["name"], b["__key__"])
        for b in batches
    ]


@pytest.mark.parametrize("rank", [0, 1])
def test_processes_deliver_the_threaded_feeds_batches(tmp_path: Path, rank: int) -> None:
    ds = write(tmp_path, [37, 50, 13, 61, 29])
    plan = dict(shuffle=True, seed=3, drop_last=False, rank=rank, world_size=2)
    expected = content(feed(ds, 16, threads=1, **plan))
    f = feed(ds, 16, processes=2, prefetch=2, **plan)
    held = list(f)  # kept: slots are reused meanwhile, the batches handed out must not change
    assert content(held) == expected and len(held) == len(f)
    for b in held:
        check_batch(b)
    pids = f.reader_pids
    assert len(pids) == 2 and not any(gone(p) for p in pids)  # kept after a complete pass
    f.set_epoch(1)  # the same readers read the next epoch's plan
    again = feed(ds, 16, threads=1, **plan)
    again.set_epoch(1)
    assert content(f) == content(again) != expected
    assert f.reader_pids == pids
    f.close()
    assert f.reader_pids == [] and all(gone(p) for p in pids)


def test_state_dict_resumes_exactly_mid_epoch(tmp_path: Path) -> None:
    ds = write(tmp_path, [37, 50, 13, 61, 29])
    plan = dict(shuffle=True, seed=5, drop_last=False)
    expected = content(feed(ds, 10, threads=1, **plan))
    f = feed(ds, 10, processes=2, **plan)
    head = []
    for n, b in enumerate(f):  # the readers have read ahead of what the loop took
        head.append(b)
        if n == 6:
            state = f.state_dict()
            break
    assert state["position"] == 70
    g = feed(ds, 10, processes=2, **plan)
    g.load_state_dict(state)
    assert content(head) + content(g) == expected
    # readers kept from a complete pass follow a state loaded afterwards
    pids = g.reader_pids
    g.load_state_dict(state)
    assert content(g) == expected[7:] and g.reader_pids == pids
    assert content(g) == expected  # that epoch was read to its end: the next pass starts afresh
    g.close()


def test_a_corrupt_shard_is_named_and_the_readers_are_gone(tmp_path: Path) -> None:
    ds = write(tmp_path, [20, 20])
    shard = next(tmp_path.glob("p01-*.tar"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 3000] = b"\xc1" * 3000  # never valid msgpack
    shard.write_bytes(bytes(data))
    f = feed(ds, 8, processes=2)
    it = iter(f)
    next(it)
    pids = f.reader_pids
    assert len(pids) == 2
    with pytest.raises(SchemaError, match=r"p01-000000\.tar") as info:
        for _ in it:
            pass
    assert "pic-" in str(info.value)
    assert all(gone(p) for p in pids) and f.reader_pids == []


@pytest.mark.parametrize("how", ["break", "close", "collect"])
def test_stopping_early_ends_the_reader_processes(tmp_path: Path, how: str) -> None:
    ds = write(tmp_path, [100])
    f = feed(ds, 4, processes=2, prefetch=2)
    it = iter(f)
    check_batch(next(it))
    pids = f.reader_pids
    assert len(pids) == 2 and not any(gone(p) for p in pids)
    if how == "break":
        it.close()
    elif how == "close":
        f.close()
    else:
        del it
        gc.collect()
    assert all(gone(p) for p in pids)


def test_the_readers_die_with_the_training_process(tmp_path: Path) -> None:
    write(tmp_path, [200])
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_torch_feed import Pic
        import atdata
        from atdata.torch.feed import feed
        ds = atdata.Dataset[Pic]({str(tmp_path / "p*.tar")!r})
        f = feed(ds, 2, processes=2, prefetch=2)
        it = iter(f)
        next(it)
        print(*f.reader_pids, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2
    wait_until(lambda: all(gone(p) for p in pids), "the orphaned readers to exit")


def test_map_stages_and_skipped_samples_take_the_checked_path(tmp_path: Path) -> None:
    ds = write(tmp_path, [30, 11, 1, 18], bad=41)

    def brighten(p: Pic) -> Pic:
        return Pic(p.image + 1, p.vec, p.label, p.name)

    skipped = ds.with_on_error("skip")
    labels = [
        i for b in feed(skipped, 8, processes=2, drop_last=False) for i in b["label"].tolist()
    ]
    assert labels == [i for i in range(60) if i != 41]
    mapped = list(feed(skipped.map(brighten), 8, processes=2, drop_last=False))
    assert [b["image"][0, 0, 0, 0].item() for b in mapped][:2] == [1, 9]


def test_threads_and_processes_are_exclusive(tmp_path: Path) -> None:
    ds = write(tmp_path, [10])
    with pytest.raises(InvalidArgumentError, match="not both"):
        feed(ds, 4, threads=2, processes=2)


def test_arrays_larger_than_a_slot_travel_by_value(tmp_path: Path) -> None:
    """Slots are sized by the first batch; a later batch of larger arrays still arrives whole."""
    import atdata
    from torch_helpers import Item

    sizes = [2] * 8 + [4000] * 8 + [3] * 8  # one array shape per batch of 8
    samples = [Item(i, np.full(n, i, dtype=np.float32), f"item-{i}") for i, n in enumerate(sizes)]
    atdata.write_samples(samples, str(tmp_path / "v-%06d.tar"), maxcount=24)
    ds = atdata.Dataset[Item](str(tmp_path / "v-*.tar"))
    got = list(feed(ds, 8, processes=2))
    assert [tuple(b["vec"].shape) for b in got] == [(8, 2), (8, 4000), (8, 3)]
    for b in got:
        assert (b["vec"] == b["idx"][:, None].float()).all()


def test_a_reader_killed_mid_pass_is_an_error_not_a_hang(tmp_path: Path) -> None:
    ds = write(tmp_path, [100])
    f = feed(ds, 2, processes=2, prefetch=2)
    it = iter(f)
    next(it)
    victim = f.reader_pids[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(AtdataError, match="reader process 1 exited"):
        for _ in it:
            pass
    assert gone(victim)


def test_readers_kept_after_a_pass_go_with_the_feed(tmp_path: Path) -> None:
    ds = write(tmp_path, [40])
    f = feed(ds, 8, processes=2)
    assert len(list(f)) == 5
    pids = f.reader_pids
    assert len(pids) == 2 and not any(gone(p) for p in pids)
    del f
    gc.collect()
    assert all(gone(p) for p in pids)
