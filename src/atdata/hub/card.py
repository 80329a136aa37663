"""The dataset card (``README.md``) of a published repository: written from :class:`CardFacts`,
read back with :func:`read_card`.

The YAML front matter has what the Hub reads (``license``, ``tags``, ``size_categories``,
``configs`` with ``data_files`` per split) and an ``atdata`` block: the dataset name and
version, the entry CID, the schema (as ``Schema.to_dict()``) and every shard with its sha256,
size, sample count and sidecar checksums, so a reader rebuilds the sample type with no class
and checks every byte it reads. :func:`dataset_card` takes the facts, not an index entry, so
that what a card says can grow (lineage, for example) by adding facts.

Reading is defensive: the card is fetched from a server, so it is size-capped, parsed with
``yaml.safe_load`` only, and every field is type-checked; nothing in it is executed.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._optional import require
from ..errors import SourceError
from ..schema import Schema

__all__ = [
    "MAX_CARD_BYTES",
    "CardFacts",
    "CardShard",
    "HubCard",
    "dataset_card",
    "read_card",
    "size_category",
]

#: A card larger than this is refused (a card listing ~100k shards fits).
MAX_CARD_BYTES = 32 << 20
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"))
_SIZES_LARGE = ((1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


@dataclass(frozen=True)
class CardShard:
    """One shard as the card lists it: its path in the repository and what checks it."""

    path: str
    sha256: str
    size: int
    count: int
    split: str = "train"
    sidecars: Mapping[str, str] = field(default_factory=dict)  # suffix -> sha256

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "split": self.split, "sha256": self.sha256}
        out |= {"size": self.size, "count": self.count}
        if self.sidecars:
            out["sidecars"] = dict(self.sidecars)
        return out


@dataclass(frozen=True)
class CardFacts:
    """Everything a card says; ``extra`` goes into the ``atdata`` block as it is."""

    name: str
    version: int
    entry_cid: str
    schema: Schema | None
    shards: Sequence[CardShard]
    description: str | None = None
    license: str | None = None
    tags: Sequence[str] = ()
    repo_id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HubCard:
    """What a card says that reading uses: split -> file patterns, and the atdata block."""

    data_files: dict[str, list[str]]
    schema: Schema | None = None
    shards: tuple[CardShard, ...] = ()
    entry_cid: str | None = None
    name: str | None = None


def size_category(samples: int) -> str:
    """The Hub's ``size_categories`` value for a sample count."""
    for limit, label in _SIZES + _SIZES_LARGE:
        if samples < limit:
            return label
    return "n>100M"


def dataset_card(facts: CardFacts) -> str:
    """The README.md text for ``facts`` (YAML front matter, then a short description)."""
    yaml = require("yaml", "hf")
    splits: dict[str, list[str]] = {}
    for shard in facts.shards:
        folder = shard.path.rsplit("/", 1)[0]
        pattern = f"{folder}/*.tar"
        if pattern not in splits.setdefault(shard.split, []):
            splits[shard.split].append(pattern)
    count = sum(s.count for s in facts.shards)
    atdata: dict[str, Any] = {
        "name": facts.name,
        "version": facts.version,
        "entry_cid": facts.entry_cid,
        "schema": facts.schema.to_dict() if facts.schema is not None else None,
        "shards": [s.to_dict() for s in facts.shards],
        **dict(facts.extra),
    }
    meta: dict[str, Any] = {}
    if facts.license:
        meta["license"] = facts.license
    meta["tags"] = sorted({"atdata", "webdataset", *facts.tags})
    meta["size_categories"] = [size_category(count)]
    meta["configs"] = [
        {
            "config_name": "default",
            "data_files": [{"split": k, "path": v} for k, v in sorted(splits.items())],
        }
    ]
    meta["atdata"] = atdata
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    load = f"hf://datasets/{facts.repo_id}" if facts.repo_id else "hf://datasets/<org>/<name>"
    body = [
        f"# {facts.name}",
        "",
        facts.description or f"Version {facts.version} of `{facts.name}`, published by atdata.",
        "",
        f"{count} samples in {len(facts.shards)} WebDataset shard(s). Load it typed with atdata:",
        "",
        "```python",
        "import atdata",
        f'ds = atdata.load_dataset("{load}", split="{sorted(splits)[0] if splits else "train"}")',
        "```",
        "",
    ]
    return f"---\n{front}---\n\n" + "\n".join(body)


def read_card(text: str, where: str) -> HubCard:
    """The data files and atdata facts of a card's front matter (``where`` names it in errors);
    a card without front matter has none."""
    if len(text) > MAX_CARD_BYTES:
        raise SourceError(f"{where}: the dataset card is over {MAX_CARD_BYTES} bytes; refused")
    if not text.startswith("---"):
        return HubCard({})
    end = text.find("\n---", 3)
    if end < 0:
        raise SourceError(f"{where}: the card's YAML front matter is not closed by '---'")
    yaml = require("yaml", "hf")
    try:
        meta = yaml.safe_load(text[3:end])
    except yaml.YAMLError as exc:
        raise SourceError(f"{where}: the card's YAML does not parse: {exc}") from None
    if meta is None:
        return HubCard({})
    if not isinstance(meta, dict):
        raise SourceError(f"{where}: the card's YAML is not a mapping")
    data_files = _data_files(meta.get("configs"), where)
    block = meta.get("atdata")
    if block is None:
        return HubCard(data_files)
    if not isinstance(block, dict):
        raise SourceError(f"{where}: the card's 'atdata' block is not a mapping")
    schema_dict = block.get("schema")
    schema = Schema.from_dict(schema_dict) if isinstance(schema_dict, dict) else None
    shards = tuple(_shard(item, where) for item in _list(block.get("shards"), "shards", where))
    cid, name = block.get("entry_cid"), block.get("name")
    return HubCard(
        data_files,
        schema,
        shards,
        cid if isinstance(cid, str) else None,
        name if isinstance(name, str) else None,
    )


def _list(value: Any, what: str, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(f"{where}: the card's {what!r} is not a list")
    return value


def _data_files(configs: Any, where: str) -> dict[str, list[str]]:
    """Split -> patterns of the ``default`` config (else the first one)."""
    items = [c for c in _list(configs, "configs", where) if isinstance(c, dict)]
    if not items:
        return {}
    chosen = next((c for c in items if c.get("config_name") == "default"), items[0])
    spec = chosen.get("data_files")
    out: dict[str, list[str]] = {}
    if isinstance(spec, str):
        return {"train": [spec]}
    for item in _list(spec, "data_files", where):
        if not isinstance(item, dict) or not isinstance(item.get("split", "train"), str):
            raise SourceError(f"{where}: a data_files item is not {{split, path}}")
        paths = item.get("path")
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise SourceError(f"{where}: data_files paths must be strings")
        out.setdefault(item.get("split", "train"), []).extend(paths)
    return out


def _shard(item: Any, where: str) -> CardShard:
    ok = isinstance(item, dict) and isinstance(item.get("path"), str)
    ok = ok and isinstance(item.get("sha256"), str) and len(item["sha256"]) == 64
    ok = ok and all(isinstance(item.get(k, 0), int) for k in ("size", "count"))
    sidecars = item.get("sidecars", {}) if isinstance(item, dict) else None
    ok = ok and isinstance(sidecars, dict) and all(isinstance(v, str) for v in sidecars.values())
    if not ok or not isinstance(sidecars, dict):
        raise SourceError(
            f"{where}: a shard in the card's atdata block is malformed: {item!r:.200}"
        )
    return CardShard(
        item["path"],
        item["sha256"].lower(),
        int(item.get("size", 0)),
        int(item.get("count", 0)),
        str(item.get("split", "train")),
        {str(k): str(v) for k, v in sidecars.items()},
    )
