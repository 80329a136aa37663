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

# B7: the torch training paths (DataLoader workers, the feed) vs webdataset + DataLoader
bench-b7 *args:
    uv run python -m benchmarks.b7_torch {{args}}
