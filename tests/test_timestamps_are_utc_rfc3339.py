"""Every timestamp the package writes is UTC RFC 3339 text ending in Z, at the precision its
record kind uses: microseconds for index records and provider rows, milliseconds for ATProto."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import atdata
from atdata._clock import utc_now
from atdata.index import Index, SQLiteProvider


def test_index_timestamps_carry_microseconds_and_z() -> None:
    before = datetime.now(UTC)
    text = utc_now()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before - timedelta(microseconds=1) <= parsed <= after


def test_atproto_timestamps_carry_milliseconds_and_z() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now("milliseconds"))


@atdata.packable
class Point:
    x: int


def test_an_index_record_written_now_carries_such_a_timestamp(tmp_path: Path) -> None:
    index = Index(SQLiteProvider(tmp_path / "index.db"))
    try:
        index.add_schema(Point)
        (record,) = index.list_schemas()
    finally:
        index.close()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record.created_at)
