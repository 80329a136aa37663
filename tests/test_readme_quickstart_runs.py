"""The README's quickstart runs as written, in a fresh directory and ``ATDATA_HOME``."""

from pathlib import Path

from readme_blocks import python_blocks, run_block


def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    code = python_blocks("## 60-second quickstart")[0]
    # what the block leaves behind, checked after it ran unchanged
    code += (
        "\nwritten = atdata.Dataset[Frame]('out/frames-{000000..000003}.tar')"
        "\nprint('shards', len(written.urls), 'samples', len(written))"
        "\nprint('loaded', len(ds), type(ds).__name__, next(iter(index.datasets)).name)\n"
    )
    out = run_block(code, tmp_path, tmp_path / "home")
    assert "shards 4 samples 10000" in out, out
    assert "loaded 10000 Dataset frames" in out, out
