"""``atdata verify NAME|PATH``: re-hash shards and compare them with what was recorded.

For a dataset in the index (``name``, ``name@3``, ``@local/name@3``) each shard is re-hashed by
the repository's store against the entry's record, as :meth:`atdata.index.Index.verify` does (one
shard at a time here, for the progress bar). For shards named by a path, each one is hashed
against the size and sha256 kept in its ``.idx`` sidecar; a shard without a recorded sha256
cannot be verified and counts as a problem. Sidecars are checked too: against the digest recorded
for them in the entry, else against a scan of the shard's members. Exit status 1 when anything does not match.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.text import Text

from .._fs import hash_stream
from ..errors import AtdataError
from ..shards.reader import load_offsets
from ..shards.sidecar_check import sidecar_problem
from ..sources import open_source
from ..stores.base import ShardProblem
from ._samples import expand_shards
from ._shared import (
    ProgressBar,
    atmosphere_function,
    classify_target,
    emit_json,
    human_size,
    open_index,
    out_console,
)

__all__ = ["Outcome", "register", "verify_command", "verify_path_shard"]


@dataclass(frozen=True)
class Outcome:
    """What was checked and what did not match."""

    label: str
    shards: int
    size: int
    problems: list[ShardProblem]

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
        }


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
    try:
        with source.open() as stream:
            digest, size = hash_stream(stream, on_chunk=lambda chunk: advance(len(chunk)))
    except (AtdataError, OSError) as exc:
        return ShardProblem(url, f"cannot be read: {exc}")
    if size != index.shard_size:
        return ShardProblem(url, "size differs", str(index.shard_size), str(size))
    if digest != index.sha256:
        return ShardProblem(url, "sha256 differs", index.sha256, digest)
    # the shard matches what its sidecar claims: now the sidecar must list the shard's members
    problem = sidecar_problem(source, size=size, sha256=index.sha256, required=True)
    return None if problem is None else ShardProblem(url, problem)


def _verify_entry(ref: str, show_progress: bool) -> Outcome:
    with open_index() as index:
        entry = index.get(ref)
        with ProgressBar(
            f"verifying {entry.ref}", entry.size, unit="bytes", enabled=show_progress
        ) as bar:
            problems = index.verify(entry.ref, on_shard=lambda shard: bar.advance(shard.size))
    return Outcome(entry.ref, len(entry.shards), entry.size, problems)


def _verify_paths(text: str, show_progress: bool) -> Outcome:
    urls = expand_shards(text)
    sizes: list[int | None] = []
    for url in urls:
        src = open_source(url)
        size = getattr(src, "size", None)
        try:
            sizes.append(int(size()) if callable(size) else None)
        except (OSError, AtdataError):
            sizes.append(None)
    total = sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None
    problems: list[ShardProblem] = []
    done = 0
    with ProgressBar(f"verifying {text}", total, unit="bytes", enabled=show_progress) as bar:

        def counted(n: float) -> None:
            nonlocal done
            done += int(n)
            bar.advance(n)

        for url in urls:
            problem = verify_path_shard(url, counted)
            if problem is not None:
                problems.append(problem)
    return Outcome(text, len(urls), done, problems)


def verify_command(
    target: Annotated[
        str,
        typer.Argument(
            help="A dataset in the index (name[@version], @local/name[@version]) or shards "
            "(path, glob, brace pattern, URL) with .idx sidecars.",
            metavar="NAME|PATH",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Re-hash shards against their recorded checksums; exit 1 on a mismatch.

    A dataset in the index is checked against its record; shards named by a path against the
    size and sha256 in each .idx sidecar (a shard without one fails).
    """
    found = classify_target(target)
    if found.kind == "atmosphere":
        atmosphere_function("verify_remote", f"verify {target}")(target, as_json=as_json)
        return
    if found.kind == "index":
        outcome = _verify_entry(found.ref, not as_json)
    else:
        outcome = _verify_paths(target, not as_json)
    if as_json:
        emit_json(outcome.to_dict())
    else:
        console = out_console()
        if outcome.problems:
            console.print(
                Text(
                    f"✗ {len(outcome.problems)} of {outcome.shards} shard(s) of {outcome.label} "
                    "do not match:",
                    style="bold red",
                ),
                soft_wrap=True,
            )
            for p in outcome.problems:
                console.print(Text(f"  {p}", style="red"), soft_wrap=True)
        else:
            console.print(
                Text(
                    f"✓ {outcome.shards} shard(s) of {outcome.label} match their checksums "
                    f"({human_size(outcome.size)} re-hashed)",
                    style="bold green",
                ),
                soft_wrap=True,
            )
    if outcome.problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify", short_help="Re-hash shards against their checksums.")(verify_command)
