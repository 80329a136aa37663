"""The atmosphere records are (de)serialised from their field declarations: each field names its
JSON key, its check and when it is left out, and errors name the JSON path of the bad value."""

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from atdata.atmosphere import (
    BlobRef,
    BlobShard,
    BlobStorage,
    CodeReference,
    DatasetRecord,
    HttpShard,
    HttpStorage,
    LensRecord,
    RecordValidationError,
    S3Shard,
    S3Storage,
)
from atdata.shards.info import Checksum
from atdata.sources.at import blob_cid

SHA = hashlib.sha256(b"shard").hexdigest()
CID = blob_cid(b"shard bytes")
DID = "did:plc:abcdefghijklmnopqrstuvwx"
SCHEMA_URI = f"at://{DID}/science.alt.dataset.schema/bafyreiabc"


def _entry(storage: Any, **fields: Any) -> DatasetRecord:
    return DatasetRecord("team/mnist", SCHEMA_URI, storage, **fields)


def _http(*urls: str) -> HttpStorage:
    return HttpStorage(tuple(HttpShard(u, Checksum.sha256(SHA)) for u in urls))


def test_a_bad_value_deep_in_a_list_is_named_by_its_full_path() -> None:
    record = _entry(_http("https://a.example/0.tar", "https://a.example/1.tar")).to_record()
    record["storage"]["shards"][1]["url"] = "file:///etc/passwd"
    with pytest.raises(RecordValidationError) as err:
        DatasetRecord.from_record(record, uri="at://x/entry/1")
    assert err.value.path == "$.storage.shards[1].url"
    assert err.value.where == "at://x/entry/1"
    record["storage"]["shards"][1]["url"] = "https://a.example/1.tar"
    record["storage"]["shards"][0]["checksum"]["digest"] = "zz" * 32
    with pytest.raises(RecordValidationError) as err:
        DatasetRecord.from_record(record)
    assert err.value.path == "$.storage.shards[0].checksum.digest"
    assert err.value.where == "entry record"  # no URI given: the kind of record


def test_optional_fields_are_left_out_when_unset_and_empty_tags_and_metadata_too() -> None:
    bare = _entry(_http("https://a.example/0.tar"), created_at="2020-01-01T00:00:00.000Z")
    assert set(bare.to_record()) == {"$type", "name", "schemaRef", "storage", "createdAt"}
    empty = dataclasses.replace(bare, tags=(), metadata={})
    assert empty.to_record() == bare.to_record()
    assert "createdAt" not in bare.content()
    full = dataclasses.replace(bare, tags=("a",), metadata={"k": 1}, license="MIT")
    assert full.to_record()["tags"] == ["a"] and full.to_record()["metadata"] == {"k": 1}


def test_nested_keys_and_type_tags_are_written_and_read_back() -> None:
    ref = BlobRef(CID, 11)
    assert ref.to_dict() == {
        "$type": "blob",
        "ref": {"$link": CID},
        "mimeType": "application/x-tar",
        "size": 11,
    }
    assert BlobRef.from_dict(ref.to_dict()) == ref
    storage = BlobStorage((BlobShard(ref), BlobShard(ref, Checksum.sha256(SHA))))
    data = storage.to_dict()
    assert "checksum" not in data["blobs"][0] and data["blobs"][1]["checksum"]["digest"] == SHA
    back = DatasetRecord.from_record(json.loads(json.dumps(_entry(storage).to_record())))
    assert back.storage == storage


def test_s3_storage_reports_its_location_before_its_shards_whatever_the_argument_order() -> None:
    storage = S3Storage("my-bucket", (S3Shard("k/a.tar", Checksum.sha256(SHA)),), "us-east-1")
    record = _entry(storage).to_record()
    record["storage"]["region"] = "Not A Region"
    record["storage"]["shards"][0]["key"] = "../escape"
    with pytest.raises(RecordValidationError) as err:
        DatasetRecord.from_record(record)
    assert err.value.path == "$.storage.region"  # declared after shards, checked before them


def test_a_code_reference_without_a_language_reads_as_none_and_a_legacy_one_fills_it() -> None:
    ref = CodeReference("https://github.com/org/lenses", "a" * 40, "lenses/x.py", language=None)
    lens = LensRecord("to_gray", SCHEMA_URI, SCHEMA_URI, ref, ref)
    record = lens.to_record()
    assert "language" not in record["getterCode"]
    assert LensRecord.from_record(record).getter.language is None
    record["language"] = "python"
    read = LensRecord.from_record(record)
    assert (read.getter.language, read.putter.language) == ("python", "python")


def test_writing_checks_the_record_as_it_would_be_read() -> None:
    with pytest.raises(RecordValidationError) as err:
        _entry(_http("https://user:secret@a.example/0.tar")).to_record()
    assert err.value.path == "$.storage.shards[0].url"
    assert err.value.where == "dataset entry 'team/mnist'"
    assert "secret" not in str(err.value)
