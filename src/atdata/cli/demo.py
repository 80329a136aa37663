"""``atdata demo``: the main job end to end on the default index (logic in :mod:`atdata.demo`)."""

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from ._shared import ProgressBar, emit_json, err_console, human_size, out_console

if TYPE_CHECKING:
    from ..demo import DemoResult

__all__ = ["demo_command", "register"]


def demo_command(
    name: Annotated[str, typer.Option("--name", help="Dataset name to write.")] = "demo",
    count: Annotated[int, typer.Option("--count", min=1, help="Samples to write.")] = 4096,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Run the main job end to end on the default index, and summarise it.

    Writes a typed dataset (a new version on every run) into the default index, loads it back
    by name with load_dataset and no Python class, iterates shuffled batches, views it through
    a lens, and verifies the shard checksums.
    """
    from ..demo import run_demo
    from ..stores.base import validate_dataset_name

    try:
        validate_dataset_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    notes = err_console()
    bar = ProgressBar("writing", count, unit="items", enabled=not as_json)
    steps = 0

    def stage(text: str) -> None:
        nonlocal steps
        bar.stop()  # the bar covers the write, the first step
        if not as_json:
            notes.print(Text(f"• {text}", style="dim"), soft_wrap=True)
        if steps == 0:
            bar.start()
        steps += 1

    try:
        result = run_demo(name=name, count=count, progress=bar.advance, stage=stage)
    finally:
        bar.stop()
    if as_json:
        emit_json(result.to_dict())
    else:
        _print_summary(result)
    if not result.ok:
        raise typer.Exit(1)


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} samples/s" if seconds > 0 else "-"


def _print_summary(r: "DemoResult") -> None:
    console = out_console()
    console.print(
        Text.assemble(("atdata demo ", "bold"), (r.ref, "bold cyan"), ("  " + r.uri, "dim")),
        soft_wrap=True,
    )
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row(
        "wrote",
        f"{r.count:,} DemoImage samples in {r.shards} shards, {human_size(r.size)} "
        f"({r.write_seconds:.2f} s, {_rate(r.count, r.write_seconds)})",
    )
    table.add_row("schema", r.schema_ref or "-")
    table.add_row(
        "loaded",
        f"load_dataset('@local/{r.ref}', split='train') -> {r.loaded_type}"
        + (" (rebuilt from the stored schema)" if r.loaded_type_is_rebuilt else ""),
    )
    table.add_row(
        "batches",
        f"{r.batches} shuffled batches of {r.batch_size}, image batch {r.batch_image_shape}, "
        f"{r.labels_seen} labels ({r.read_seconds:.2f} s, {_rate(r.count, r.read_seconds)})",
    )
    table.add_row(
        "lens",
        f"{r.lens}: {r.view_samples:,} views, image {r.view_image_shape} "
        f"({r.lens_seconds:.2f} s, {_rate(r.view_samples, r.lens_seconds)})",
    )
    if r.problems:
        table.add_row("verify", Text(f"{len(r.problems)} shard(s) do not match", style="bold red"))
        for p in r.problems:
            table.add_row("", Text(p, style="red"))
    else:
        table.add_row(
            "verify",
            Text(
                f"{r.verified_shards} shards match their sha256 ({r.verify_seconds:.2f} s)",
                style="green",
            ),
        )
    table.add_row("versions", ", ".join(map(str, r.versions)) + f" (this run wrote {r.version})")
    table.add_row("index", r.index_path or "-")
    table.add_row("shards in", r.data_dir or "-")
    console.print(table)
    console.print(
        Text(
            f"next: atdata ls · atdata inspect @local/{r.ref} · atdata preview @local/{r.name} "
            f"· atdata verify {r.ref} · atdata rm {r.name} --all",
            style="dim",
        ),
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("demo", short_help="Write, load, batch, lens and verify a demo dataset.")(
        demo_command
    )
