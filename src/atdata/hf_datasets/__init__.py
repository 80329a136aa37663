"""Conversion between atdata datasets and Hugging Face ``datasets`` (extra ``hf-datasets``).

``Dataset.to_hf()`` gives a ``datasets.Dataset`` or ``IterableDataset`` whose features follow the
schema; :func:`from_hf` writes a Hugging Face dataset to shards, typed by its features when no
sample type is given. Both stream: neither holds more than one shard's worth of samples.
"""

from .export import to_hf
from .features import features_of_schema, schema_of_features
from .ingest import from_hf

__all__ = ["features_of_schema", "from_hf", "schema_of_features", "to_hf"]
