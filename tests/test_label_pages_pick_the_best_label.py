"""``@handle/name`` picks the highest-versioned label over every page of labels (the cursor is
followed to its end), while the entry of the best label so far is fetched beside the next page:
the answer is the same whichever page the best label is on."""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata.atmosphere import AtmosphereClient, Resolver, publish_dataset
from atdata.atmosphere.publish import _labelled_entry
from atdata.index import Index
from atdata.sample import packable
from atdata.schema import Shape
from atmosphere_helpers import (
    loopback_only,  # noqa: F401 - autouse guard
    new_account_session,
)

pytestmark = pytest.mark.services


@packable
class Tiny:
    image: Annotated[NDArray[np.uint8], Shape(4)]
    label: int


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    with Index(home=tmp_path / "home") as ix:
        yield ix


def test_the_best_label_wins_on_any_page(
    index: Index, pds: dict[str, Any], resolver: Resolver
) -> None:
    session = new_account_session(pds, prefix="lp")
    entries = {}
    for v in range(3):
        index.write([Tiny(np.full(4, v, np.uint8), v)], "tiny")
        published = publish_dataset(index, "tiny", to=session)
        assert published.label is not None
        entries[published.label.value.version] = published.entry.uri
    assert len(entries) == 3
    client = AtmosphereClient(resolver=resolver)
    best = max(entries, key=int)
    for page_size in (1, 2, 100):  # one label a page, two, all on one
        found = _labelled_entry(client, session.did, "tiny", None, page_size=page_size)
        assert found is not None
        label, entry = found
        assert (label.value.version, entry.uri) == (best, entries[best])
        for version, uri in entries.items():
            found = _labelled_entry(client, session.did, "tiny", version, page_size=page_size)
            assert found is not None and found[1].uri == uri
        assert _labelled_entry(client, session.did, "other", None, page_size=page_size) is None
