"""``atdata verify NAME|PATH``: re-hash shards and compare them with what was recorded.

The argument is resolved once (:func:`atdata.cli.targets.open_target`); what each shard is
checked against depends on where the record of it is:

* a dataset in the index (``name``, ``name@3``, ``@local/name@3``): each shard is re-hashed by
  the repository's store against the entry's record, as :meth:`atdata.index.Index.verify` does
  (one shard at a time here, for the progress bar);
* shards named by a path: each is hashed against the size and sha256 kept in its ``.idx``
  sidecar (a shard without a recorded sha256 cannot be verified and counts as a problem), then
  the sidecar is checked against a scan of the shard's members;
* a published dataset (``@handle/name``, ``at://``): each shard is downloaded and checked
  against its entry record (blobs: CID, size and sha256; URLs: sha256).

The last two share one hashing loop; every form shares one report. Exit status 1 when anything
does not match.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.text import Text

from .._fs import hash_stream
from ..errors import AtdataError, IntegrityError
from ..shards.reader import load_offsets
from ..shards.sidecar_check import sidecar_problem
from ..sources import open_source
from ..stores.base import ShardProblem
from ._shared import JsonOption, ProgressBar, emit_json, human_size, out_console
from .targets import Resolved, open_target, remote_shards

__all__ = ["Outcome", "register", "verify_command", "verify_path_shard"]


@dataclass(frozen=True)
class Outcome:
    """What was checked and what did not match; ``against`` and ``how`` word the report,
    ``extra`` adds to its JSON."""

    label: str
    shards: int
    size: int
    problems: list[ShardProblem]
    against: str = "their checksums"
    how: str = "re-hashed"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.label,
            "ok": not self.problems,
            "shards": self.shards,
            "bytes": self.size,
            "problems": [
                {"url": p.url, "problem": p.problem, "expected": p.expected, "actual": p.actual}
                for p in self.problems
            ],
            **self.extra,
        }

    def show(self, as_json: bool) -> None:
        if as_json:
            emit_json(self.to_dict())
            return
        console = out_console()
        if self.problems:
            against = "" if self.against == "their checksums" else f" {self.against}"
            console.print(
                Text(
                    f"✗ {len(self.problems)} of {self.shards} shard(s) of {self.label} "
                    f"do not match{against}:",
                    style="bold red",
                ),
                soft_wrap=True,
            )
            for p in self.problems:
                console.print(Text(f"  {p}", style="red"), soft_wrap=True)
        else:
            console.print(
                Text(
                    f"✓ {self.shards} shard(s) of {self.label} match {self.against} "
                    f"({human_size(self.size)} {self.how})",
                    style="bold green",
                ),
                soft_wrap=True,
            )


def hash_shard(
    url: str,
    shown: str,
    advance: Callable[[float], None],
    *,
    size: int | None,
    sha256: str | None,
) -> tuple[int, str | ShardProblem]:
    """Read the shard at ``url`` through, comparing it with ``size`` and ``sha256`` when given;
    (bytes read, its sha256 hex digest or the problem, named ``shown``). A shard that cannot be
    read through counts as 0 bytes read."""
    try:
        with open_source(url).open() as stream:
            digest, done = hash_stream(stream, on_chunk=lambda chunk: advance(len(chunk)))
    except IntegrityError as exc:  # an at:// blob that does not hash to its CID
        return 0, ShardProblem(shown, str(exc).split(" [shard ", 1)[0])
    except (AtdataError, OSError) as exc:
        return 0, ShardProblem(shown, f"cannot be read: {exc}")
    if size is not None and done != size:
        return done, ShardProblem(shown, "size differs", str(size), str(done))
    if sha256 is not None and digest != sha256:
        return done, ShardProblem(shown, "sha256 differs", sha256, digest)
    return done, digest


def verify_path_shard(url: str, advance: Callable[[float], None]) -> ShardProblem | None:
    """Hash one shard against its sidecar's size and sha256; the problem, or None."""
    try:
        source = open_source(url)
        index = load_offsets(source)
    except AtdataError as exc:
        return ShardProblem(url, f"cannot be read: {exc}")
    if index is None:
        return ShardProblem(url, "has no .idx sidecar, so there is no sha256 to check against")
    if index.sha256 is None:
        return ShardProblem(url, "its .idx sidecar records no sha256 to check against")
    size, result = hash_shard(url, url, advance, size=index.shard_size, sha256=index.sha256)
    if isinstance(result, ShardProblem):
        return result
    # the shard matches what its sidecar claims: now the sidecar must list the shard's members
    problem = sidecar_problem(source, size=size, sha256=index.sha256, required=True)
    return None if problem is None else ShardProblem(url, problem)


class _Counter:
    """Counts the bytes hashed and moves the progress bar."""

    def __init__(self, bar: ProgressBar) -> None:
        self.bar, self.done = bar, 0

    def __call__(self, n: float) -> None:
        self.done += int(n)
        self.bar.advance(n)


def _verify(found: Resolved, show_progress: bool) -> Outcome:
    if found.kind == "index":
        index, entry = found.index, found.entry
        assert index is not None and entry is not None
        with ProgressBar(
            f"verifying {entry.ref}", entry.size, unit="bytes", enabled=show_progress
        ) as bar:
            problems = index.verify(entry.ref, on_shard=lambda shard: bar.advance(shard.size))
        return Outcome(entry.ref, len(entry.shards), entry.size, problems)
    if found.kind == "atmosphere":
        assert found.remote is not None
        shards = remote_shards(found.remote)
        size = found.remote.entry.size
        total = size.bytes if size else None
    else:
        total = _total_size(found.urls)
    problems = []
    with ProgressBar(f"verifying {found.text}", total, unit="bytes", enabled=show_progress) as bar:
        counted = _Counter(bar)
        if found.kind == "atmosphere":
            for shard in shards:
                n, result = hash_shard(
                    shard.url, shard.shown, bar.advance, size=shard.size, sha256=shard.sha256
                )
                counted.done += n  # downloaded through
                if isinstance(result, ShardProblem):
                    problems.append(result)
        else:
            for url in found.urls:
                problem = verify_path_shard(url, counted)
                if problem is not None:
                    problems.append(problem)
    if found.kind == "atmosphere":
        assert found.remote is not None
        return Outcome(
            found.text,
            len(shards),
            counted.done,
            problems,
            against="their record",
            how="downloaded and re-hashed",
            extra={"uri": str(found.remote.uri)},
        )
    return Outcome(found.text, len(found.urls), counted.done, problems)


def _total_size(urls: list[str]) -> int | None:
    sizes: list[int | None] = []
    for url in urls:
        size = getattr(open_source(url), "size", None)
        try:
            sizes.append(int(size()) if callable(size) else None)
        except (OSError, AtdataError):
            sizes.append(None)
    return sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None


def verify_command(
    target: Annotated[
        str,
        typer.Argument(
            help="A dataset in the index (name[@version], @local/name[@version]), shards "
            "(path, glob, brace pattern, URL) with .idx sidecars, or a published dataset "
            "(@handle/name[@version], at://...).",
            metavar="NAME|PATH",
            show_default=False,
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Re-hash shards against their recorded checksums; exit 1 on a mismatch.

    A dataset in the index is checked against its record; shards named by a path against the
    size and sha256 in each .idx sidecar (a shard without one fails); a published dataset is
    downloaded and checked against its entry record.
    """
    with open_target(target, "verify") as found:
        outcome = _verify(found, not as_json)
    outcome.show(as_json)
    if outcome.problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify", short_help="Re-hash shards against their checksums.")(verify_command)
