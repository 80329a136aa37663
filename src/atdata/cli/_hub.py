"""``atdata publish NAME --to hf://datasets/ORG/NAME``: an index dataset to the Hugging Face Hub,
with a progress bar over the bytes uploaded."""

from rich.text import Text

from ..errors import AtdataError
from ..hub import HubPublished
from ._shared import CliError, ProgressBar, emit_json, note, open_index, out_console, print_facts

__all__ = ["publish_to_hub_command"]


def publish_to_hub_command(ref: str, to: str, *, private: bool, as_json: bool) -> None:
    """Publish ``ref`` of the default index to the Hub repository ``to`` and report it."""
    if not to.startswith("hf://"):
        raise CliError(f"--to takes hf://datasets/ORG/NAME, not {to!r:.200}")
    bar = ProgressBar(f"uploading {ref}", None, unit="bytes", enabled=not as_json)
    seen = 0

    def progress(path: str, done: int, total: int) -> None:
        nonlocal seen
        bar.update(total=total, description=path)
        bar.advance(done - seen)
        seen = done

    try:
        with open_index() as index, bar:
            published = index.publish(ref, to=to, private=private or None, progress=progress)
    except AtdataError:
        raise
    except Exception as exc:  # the client's own HTTP errors: say what failed, no traceback
        raise CliError(f"publishing to {to} failed: {exc}") from None
    _report(published, ref, as_json)


def _report(published: HubPublished, ref: str, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "created": published.created,
                "ref": published.url,
                "repo": published.repo_id,
                "commit": published.commit,
                "uploaded": list(published.uploaded),
                "deleted": list(published.deleted),
            }
        )
        return
    headline = "Published " if published.created else "Already published (nothing uploaded): "
    out_console().print(Text.assemble(headline, (published.url, "bold cyan")), soft_wrap=True)
    print_facts(
        [
            ("dataset", ref),
            ("commit", published.commit),
            ("uploaded", f"{len(published.uploaded)} file(s)"),
            ("deleted", f"{len(published.deleted)} file(s)"),
        ]
    )
    note(f"load it with: load_dataset({published.url!r}, split='train')")
