"""The README's "Training with PyTorch" code is the examples' code (which the suite runs)."""

from pathlib import Path

from readme_blocks import python_blocks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [ROOT / "examples" / "train_torch.py", ROOT / "examples" / "train_ddp.py"]


def _is_excerpt(block: list[str], source: list[str]) -> bool:
    """``block`` appears in ``source`` as consecutive lines, under one extra indentation."""
    for i, line in enumerate(source):
        if line.strip() != block[0].strip():
            continue
        pad = line[: len(line) - len(line.lstrip())]
        window = source[i : i + len(block)]
        if window == [pad + b if b else "" for b in block]:
            return True
    return False


def test_every_code_block_of_the_section_is_taken_from_an_example() -> None:
    blocks = python_blocks("## Training with PyTorch")
    assert len(blocks) >= 3
    sources = [p.read_text().splitlines() for p in EXAMPLES]
    for block in blocks:
        lines = block.rstrip("\n").splitlines()
        assert any(_is_excerpt(lines, src) for src in sources), f"not in an example:\n{block}"
