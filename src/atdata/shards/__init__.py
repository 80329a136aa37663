"""Tar shards: writer, readers, the offset index sidecar and shard URL patterns."""

__all__: list[str] = []
