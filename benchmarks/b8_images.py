"""B8: encoded media. 256x256 JPEG (quality 90) in member layout, decoded to uint8 batches.

    uv run python -m benchmarks.b8_images [--n 20000] [--workers 1,2] [--batch 64] [--repeat 1]

Data: ``--n`` images of smooth random content (a bicubic-upsampled random field plus finer
grain, cropped at random offsets: ~29 KiB per JPEG, like photos, not like white noise), labels
``i % 1000``, written once as member-layout shards of 1,000 samples (``000123.jpg`` +
``000123.cls``) by our ``write_samples(..., layout="members")`` when this tree has it, else by
webdataset's ``TarWriter`` (the same layout). Page cache warm. Then, side by side in one run:

- the bare decode loop: Pillow decoding the same JPEG bytes from memory
  (``np.asarray(Image.open(BytesIO(b)))``) in a tight loop, on 1 and on 2 threads;
- webdataset: ``WebDataset(urls, shardshuffle=False).decode("rgb8").to_tuple("jpg", "cls")
  .batched(B)`` through ``DataLoader(batch_size=None, num_workers=w)``;
- ours: ``Dataset(urls, T).to_torch(B)`` through the same DataLoader, with
  ``$ATDATA_DECODE_THREADS`` = 1 (one decoding thread per worker: the same CPUs as webdataset)
  and 2; and ``Dataset.ordered(batch_size=B)`` in process (no DataLoader) with 1 and 2 threads;
  then the same JPEG bytes in our msgpack layout (``image: Annotated[Image, ImageSpec(...)]``),
  which takes the batch fast path (no per-sample objects: bytes straight to the decoder);
- atdata 0.7 does not apply: its ``Dataset`` reads only ``<key>.msgpack`` members (a shard of
  ``.jpg``/``.cls`` members raises "Sample missing 'msgpack' key") and it has no image field.

Each row: samples/s, CPU seconds (this process plus its reaped DataLoader workers), and the
decode share: the bare 1-thread loop's CPU seconds for the same images divided by the row's CPU
seconds (how much of the CPU the row spends is Pillow decoding; 1.0 = nothing else).
Every pass is checked: sample count and the sum of labels. Results go to
``benchmarks/.data/b8-<time>.json`` and ``.md``.
"""

import argparse
import io
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import numpy as np

DATA = Path(__file__).resolve().parent / ".data"
PER_SHARD = 1000
SIDE = 256


def make_images(n: int, seed: int = 0) -> list[bytes]:
    """``n`` JPEGs (q90) of smooth random content, each a different crop of shared fields."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    fields = []
    for _ in range(4):
        small = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        coarse = np.asarray(Image.fromarray(small).resize((1024, 1024), Image.BICUBIC))
        fine_small = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
        fine = np.asarray(Image.fromarray(fine_small).resize((1024, 1024), Image.BILINEAR))
        fields.append((coarse.astype(np.int16), fine.astype(np.int16)))
    out = []
    for i in range(n):
        coarse, fine = fields[i % len(fields)]
        y, x, y2, x2 = rng.integers(0, 1024 - SIDE, 4)
        img = coarse[y : y + SIDE, x : x + SIDE] + (fine[y2 : y2 + SIDE, x2 : x2 + SIDE] - 128) // 3
        buf = io.BytesIO()
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _sample_type(layout: str = "members") -> type:
    import atdata
    from atdata import Image, ImageSpec

    spec = ImageSpec(shape=(SIDE, SIDE, 3), mode="RGB", format="jpeg")

    @atdata.packable
    class Photo:
        image: Annotated[Image, spec] = atdata.member("jpg")
        label: int = atdata.member("cls")

    @atdata.packable
    class PackedPhoto:
        image: Annotated[Image, spec]
        label: int

    return Photo if layout == "members" else PackedPhoto


def write_msgpack_shards(images: list[bytes], directory: Path) -> list[str]:
    """The same JPEG bytes in our msgpack layout (one ``.msgpack`` member per sample)."""
    import atdata

    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*"):
        old.unlink()
    packed = _sample_type("msgpack")
    samples = (
        packed(image=atdata.Image(data, "jpeg"), label=i % 1000) for i, data in enumerate(images)
    )
    ds = atdata.write_samples(samples, str(directory / "b8m-%06d.tar"), maxcount=PER_SHARD)
    return [s.url for s in ds.shard_infos]


def write_shards(images: list[bytes], directory: Path) -> tuple[list[str], str]:
    """Member-layout shards (ours when available, else webdataset's TarWriter) and the writer."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*"):
        old.unlink()
    import atdata

    photo = _sample_type()
    samples = (
        photo(image=atdata.Image(data, "jpeg"), label=i % 1000) for i, data in enumerate(images)
    )
    try:
        ds = atdata.write_samples(
            samples, str(directory / "b8-%06d.tar"), maxcount=PER_SHARD, layout="members"
        )
        return [s.url for s in ds.shard_infos], "atdata write_samples(layout='members')"
    except TypeError:  # this tree's write_samples has no member layout yet
        pass
    import webdataset as wds

    urls = []
    for s in range(0, len(images), PER_SHARD):
        path = str(directory / f"b8-{s // PER_SHARD:06d}.tar")
        with wds.TarWriter(path) as sink:
            for i in range(s, min(s + PER_SHARD, len(images))):
                sink.write({"__key__": f"{i:08d}", "jpg": images[i], "cls": i % 1000})
        urls.append(path)
    return urls, "webdataset TarWriter"


# --------------------------------------------------------------------------- measuring
def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn: Callable[[], tuple[int, int]]) -> dict[str, Any]:
    cpu0, t0 = _cpu(), time.perf_counter()
    count, label_sum = fn()
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "count": count, "label_sum": label_sum}


def bare(images: list[bytes], threads: int) -> Callable[[], tuple[int, int]]:
    from PIL import Image

    def decode(chunk: list[bytes]) -> int:
        for data in chunk:
            arr = np.asarray(Image.open(io.BytesIO(data)))
            assert arr.shape == (SIDE, SIDE, 3)
        return len(chunk)

    def run() -> tuple[int, int]:
        if threads == 1:
            count = decode(images)
        else:
            step = -(-len(images) // threads)
            with ThreadPoolExecutor(threads) as pool:
                parts = [images[i : i + step] for i in range(0, len(images), step)]
                count = sum(pool.map(decode, parts))
        return count, sum(i % 1000 for i in range(count))

    return run


def _count(
    batches: Any, image: Callable[[Any], Any], labels: Callable[[Any], Any]
) -> tuple[int, int]:
    count = total = 0
    for b in batches:
        img = image(b)
        assert tuple(img.shape[1:]) == (SIDE, SIDE, 3) and str(img.dtype) in (
            "uint8",
            "torch.uint8",
        )
        count += img.shape[0]
        total += int(sum(int(x) for x in labels(b)))
    return count, total


def wds_loader(urls: list[str], workers: int, batch: int) -> Callable[[], tuple[int, int]]:
    def run() -> tuple[int, int]:
        import webdataset as wds
        from torch.utils.data import DataLoader

        pipe = (
            wds.WebDataset(urls, shardshuffle=False, empty_check=False)
            .decode("rgb8")
            .to_tuple("jpg", "cls")
            .batched(batch)
        )
        loader = DataLoader(pipe, batch_size=None, num_workers=workers)
        return _count(loader, lambda b: b[0], lambda b: b[1])

    return run


def ours_loader(
    urls: list[str], workers: int, threads: int, batch: int, layout: str = "members"
) -> Callable[[], tuple[int, int]]:
    def run() -> tuple[int, int]:
        from torch.utils.data import DataLoader

        import atdata

        os.environ["ATDATA_DECODE_THREADS"] = str(threads)
        ds = atdata.Dataset(urls, _sample_type(layout))
        loader = DataLoader(
            ds.to_torch(batch, drop_last=False), batch_size=None, num_workers=workers
        )
        return _count(loader, lambda b: b["image"], lambda b: b["label"])

    return run


def ours_ordered(
    urls: list[str], threads: int, batch: int, layout: str = "members"
) -> Callable[[], tuple[int, int]]:
    def run() -> tuple[int, int]:
        import atdata

        os.environ["ATDATA_DECODE_THREADS"] = str(threads)
        ds = atdata.Dataset(urls, _sample_type(layout))
        return _count(ds.ordered(batch_size=batch), lambda b: b.image, lambda b: b.label)

    return run


# --------------------------------------------------------------------------- the run
def run(args: argparse.Namespace) -> dict[str, Any]:
    from .report import environment

    t0 = time.perf_counter()
    images = make_images(args.n)
    directory = DATA / f"B8-{args.n}"
    urls, writer = write_shards(images, directory)
    murls = write_msgpack_shards(images, DATA / f"B8-{args.n}-msgpack")
    setup_s = time.perf_counter() - t0
    for u in urls + murls:  # warm the page cache
        Path(u).read_bytes()
    expected = (args.n, sum(i % 1000 for i in range(args.n)))
    rows: list[tuple[str, str, Callable[[], tuple[int, int]]]] = []
    for t in args.threads:
        rows.append((f"bare Pillow decode loop, threads={t}", "bare", bare(images, t)))
    for w in args.workers:
        rows.append(
            (
                f"webdataset .decode('rgb8') + DataLoader w={w}",
                "wds",
                wds_loader(urls, w, args.batch),
            )
        )
        for t in args.threads:
            rows.append(
                (
                    f"ours to_torch + DataLoader w={w}, decode threads={t}",
                    "ours",
                    ours_loader(urls, w, t, args.batch),
                )
            )
    for t in args.threads:
        rows.append(
            (
                f"ours ordered(batch_size) in process, decode threads={t}",
                "ours",
                ours_ordered(urls, t, args.batch),
            )
        )
    for w in args.workers:  # the same JPEG bytes in our msgpack layout
        rows.append(
            (
                f"ours msgpack layout, to_torch + DataLoader w={w}, decode threads=1",
                "ours",
                ours_loader(murls, w, 1, args.batch, "msgpack"),
            )
        )
    for t in args.threads:
        rows.append(
            (
                f"ours msgpack layout, ordered in process, decode threads={t}",
                "ours",
                ours_ordered(murls, t, args.batch, "msgpack"),
            )
        )
    results: dict[str, Any] = {
        "env": environment({}),
        "n": args.n,
        "batch": args.batch,
        "writer": writer,
        "jpeg_kib_mean": round(sum(map(len, images)) / len(images) / 1024, 1),
        "setup_s": round(setup_s, 1),
        "loadavg_before": os.getloadavg(),
        "rows": {},
        "repeat": args.repeat,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in rows}
    for round_no in range(args.repeat):  # rows interleaved round by round; medians reported
        for name, kind, fn in rows:
            r = measure(fn)
            r["kind"] = kind
            r["ok"] = (r["count"], r["label_sum"]) == expected
            runs[name].append(r)
            print(
                f"[{round_no + 1}/{args.repeat}] {name:62s} {r['count'] / r['wall_s']:8.0f}/s  "
                f"cpu {r['cpu_s']:6.1f}s  ok={r['ok']}",
                flush=True,
            )
    for name, _, _ in rows:
        got = runs[name]
        wall = statistics.median(x["wall_s"] for x in got)
        results["rows"][name] = {
            "kind": got[0]["kind"],
            "ok": all(x["ok"] for x in got),
            "wall_s": wall,
            "cpu_s": statistics.median(x["cpu_s"] for x in got),
            "samples_per_s": args.n / wall,
            "rounds": [(x["wall_s"], x["cpu_s"]) for x in got],
        }
    results["loadavg_after"] = os.getloadavg()
    decode_cpu = results["rows"][f"bare Pillow decode loop, threads={args.threads[0]}"]["cpu_s"]
    for r in results["rows"].values():
        r["decode_share"] = min(1.0, decode_cpu / r["cpu_s"]) if r["cpu_s"] else None
    return results


def render(res: dict[str, Any]) -> str:
    rows = res["rows"]
    bare_by_threads = {
        int(k.rsplit("=", 1)[1]): v["samples_per_s"] for k, v in rows.items() if v["kind"] == "bare"
    }
    wds_by_workers = {
        int(k.rsplit("=", 1)[1]): v["samples_per_s"] for k, v in rows.items() if v["kind"] == "wds"
    }
    lines = [
        f"B8: {res['n']} JPEGs 256x256 q90 (mean {res['jpeg_kib_mean']} KiB), member layout "
        f"written by {res['writer']}, batches of {res['batch']}, page cache warm, "
        f"medians of {res.get('repeat', 1)} interleaved round(s); "
        f"load average before {res['loadavg_before'][0]:.1f}, after {res['loadavg_after'][0]:.1f}",
        "",
        "| reader | samples/s | CPU s | decode share | vs webdataset (same workers) | bare loop / this (same CPUs) | exact |",
        "|---|---:|---:|---:|---:|---:|:-:|",
    ]
    for name, r in rows.items():
        vs_wds = bare_ratio = ""
        if r["kind"] == "ours" and "w=" in name:
            w = int(name.split("w=")[1].split(",")[0])
            vs_wds = f"{r['samples_per_s'] / wds_by_workers[w]:.2f}x" if w in wds_by_workers else ""
        cpus = None
        if "threads=" in name and r["kind"] != "wds":
            t = int(name.rsplit("=", 1)[1])
            cpus = t if "w=" not in name else min(2, t * int(name.split("w=")[1].split(",")[0]))
        elif "w=" in name:
            cpus = min(2, int(name.split("w=")[1].split(",")[0]))
        if cpus in bare_by_threads and r["kind"] != "bare":
            bare_ratio = f"{bare_by_threads[cpus] / r['samples_per_s']:.2f}x"
        share = f"{r['decode_share']:.0%}" if r.get("decode_share") is not None else ""
        lines.append(
            f"| {name} | {r['samples_per_s']:,.0f} | {r['cpu_s']:.1f} | {share} | {vs_wds} | "
            f"{bare_ratio} | {'yes' if r['ok'] else 'NO'} |"
        )
    lines.append("")
    lines.append(
        "atdata 0.7: not applicable (reads only `<key>.msgpack` members: a `.jpg`/`.cls` shard "
        "raises \"Sample missing 'msgpack' key\"; no image field type)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeat", type=int, default=1, help="rounds, rows interleaved; medians")
    args = p.parse_args(argv)
    args.workers = [int(x) for x in args.workers.split(",")]
    args.threads = [int(x) for x in args.threads.split(",")]
    res = run(args)
    text = render(res)
    print(text)
    DATA.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (DATA / f"b8-{stamp}.json").write_text(json.dumps(res, indent=1, default=str))
    (DATA / f"b8-{stamp}.md").write_text(text + "\n")
    return 0 if all(r["ok"] for r in res["rows"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
