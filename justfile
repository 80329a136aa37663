# Developer tasks. `just --list` shows them all.

# only the trees that exist (git keeps no empty dirs; ruff fails on a missing path)
lint_paths := `for d in src tests benchmarks examples; do [ -d "$d" ] && printf '%s ' "$d"; done`

default:
    @just --list

# Install the project with every extra and the dev tools
setup:
    uv sync --all-extras

# Run the test suite (service tests skip unless their servers are available; see `just services`)
test *args:
    uv run pytest -q {{args}}

# Lint and check formatting
lint:
    uv run ruff check {{lint_paths}}
    uv run ruff format --check {{lint_paths}}

# Format and auto-fix
fmt:
    uv run ruff format {{lint_paths}}
    uv run ruff check --fix {{lint_paths}}

# Static type check (config in pyproject.toml)
typecheck:
    uv run mypy
    uv run mypy tests/typecheck

# Run the benchmarks
bench *args:
    uv run python -m benchmarks.run {{args}}

# Everything CI runs (provisioning needs root)
ci:
    bash .ci/run

# Install/refresh the real test servers (redis, postgres, Node 22 + PDS harness); needs root
services:
    bash scripts/provision-test-infra.sh

# quick benchmark run (scaled-down B1..B4)
bench-quick:
    uv run python -m benchmarks.run --quick

# create the atdata 0.7 comparator environment (Python 3.12)
bench-setup:
    uv run python -m benchmarks.venv07

# I/O benchmarks (B1..B4, ours vs atdata 0.7, webdataset and the page cache); args go to benchmarks.run
bench-io *args:
    uv run python -m benchmarks.run {{args}}

# index benchmarks (B6: SQLite index at 10k entries, ours vs atdata 0.7) and B5 random access
bench-index *args:
    uv run python -m benchmarks.b6_index {{args}}
    uv run python -m benchmarks.b5_access

# B9: selective queries (manifests) vs full scan, atdata 0.7 QueryExecutor and DuckDB; --samples 100000 for 1/10 scale
bench-query *args:
    uv run python -m benchmarks.b9_query {{args}}

# store the newest results-*.json (or --from FILE) as a named run with machine and git commit
bench-save name *args:
    uv run python -m benchmarks.saved save {{name}} {{args}}

# ratios B/A between two saved runs; flags regressions beyond noise (exit 1)
bench-compare a b:
    uv run python -m benchmarks.saved compare {{a}} {{b}}

# HTML report with plots (throughput, time to first batch, RSS) of saved runs or the newest results
bench-report *runs:
    uv run python -m benchmarks.saved report {{runs}}

# B7: the torch training paths (DataLoader workers, the feed) vs webdataset + DataLoader
bench-b7 *args:
    uv run python -m benchmarks.b7_torch {{args}}

# B8: encoded JPEGs in member layout decoded to uint8 batches, vs webdataset and the bare Pillow loop
bench-b8 *args:
    uv run python -m benchmarks.b8_images {{args}}
