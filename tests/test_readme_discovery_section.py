"""The README's "Discovering datasets" Python example runs as written against a real local PDS
and an indexer following it (``$ATDATA_INDEXER_URL``, ``$ATDATA_PLC_URL`` set for it)."""

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata.atmosphere import AtmosphereClient, Resolver
from atdata.atmosphere.publish import publish_dataset
from atdata.discovery import DiscoveryClient
from atdata.discovery.service import Indexer
from atdata.index import Index
from atdata.sample import packable
from atdata.schema import Shape
from atmosphere_helpers import loopback_only, new_account_session  # noqa: F401 - autouse guard
from readme_blocks import python_blocks, run_block
from waiting import wait_until

pytestmark = pytest.mark.services


@packable
class Station:
    """A weather station reading."""

    values: Annotated[NDArray[np.float32], Shape(3)]
    station: int


def test_the_readme_discovery_example_runs_as_written(pds: dict[str, Any], tmp_path: Path) -> None:
    resolver = Resolver(plc_url=pds["plc"], handle_resolver_pds=pds["pds"])
    session = new_account_session(pds, prefix="readme")
    samples = [Station(np.ones(3, dtype=np.float32) * i, i) for i in range(7)]
    with Index(home=tmp_path / "home") as index:
        index.write(samples, "weather", description="hourly station weather", tags=["sensors"])
        published = publish_dataset(
            index, "weather", to=AtmosphereClient(session, resolver=resolver)
        )
    indexer = Indexer([pds["pds"]], f"sqlite:///{tmp_path / 'i.sqlite'}", [pds["plc"]])
    url = indexer.start()
    try:
        client = DiscoveryClient(url)
        wait_until(
            lambda: str(published.uri) in {r.uri for r in client.search_datasets(repo=session.did)},
            "the dataset indexed",
            timeout=30,
        )
        (code,) = python_blocks("## Discovering datasets")
        stdout = run_block(
            code,
            tmp_path,
            tmp_path / "reader",
            env={"ATDATA_INDEXER_URL": url, "ATDATA_PLC_URL": pds["plc"]},
        )
    finally:
        indexer.stop()
        resolver.close()
    assert f"{published.uri} weather - hourly station weather" in stdout
    assert stdout.splitlines()[-1] == "7 samples"
