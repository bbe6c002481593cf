"""A run's outcome event: its name, the dataset it is about, and a payload that never carries data or the source.

Events go through Prefect's own emitter and worker to Prefect's recording test client (`AssertingEventsClient`);
nothing is sent anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prefect.events import Event
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.release.events import PUBLISHED, REFUSED, UNCHANGED, announce
from flows.release.manifest import Manifest

SOURCE_URI = "/secret/place/patients.csv"


@pytest.fixture
def sent() -> Iterator[Callable[[], list[Event]]]:
    """What was emitted, as the recording client received it; Prefect is pointed at an address nothing serves."""
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        EventsWorker.set_client_override(AssertingEventsClient)
        AssertingEventsClient.reset()

        def received() -> list[Event]:
            EventsWorker.drain_all()
            return [event for client in AssertingEventsClient.all for event in client.events]

        try:
            yield received
        finally:
            EventsWorker.drain_all()
            EventsWorker.set_client_override(None)
            AssertingEventsClient.reset()


def manifest(failed: list[str], quality: float, **ids: Any) -> Manifest:
    checks = [{"name": name, "value": 0.1, "threshold": 0.5, "comparison": ">=", "passed": False} for name in failed]
    passed = [{"name": "fidelity.diagnostic", "value": 1.0, "threshold": 0.999, "comparison": ">=", "passed": True}]
    return Manifest.from_dict({
        "dataset": "patients", "generator": {"name": "gmm", "params": {"components": 4}},
        "source": {"uri": SOURCE_URI, "format": "csv", "sha256": "ab" * 32, "rows": 600, "columns": 4},
        "metrics": {"fidelity": {"quality": quality}},
        "gate": {"passed": not failed, "checks": passed + checks}, **ids,
    })


def test_each_outcome_is_its_own_event_about_the_dataset(sent: Callable[[], list[Event]]) -> None:
    announce(manifest([], 0.91, release_id="20260101T000000Z-aaaaaa"))
    announce(manifest(["fidelity.quality", "privacy.dcr_share"], 0.42, run_id="20260101T000000Z-bbbbbb"))
    announce(manifest([], 0.91, release_id="20260101T000000Z-aaaaaa"), unchanged=True)

    published, refused, unchanged = sent()
    assert [published.event, refused.event, unchanged.event] == [PUBLISHED, REFUSED, UNCHANGED]
    for event in (published, refused, unchanged):
        assert event.resource.id == "synthgate.dataset.patients"
        assert event.resource.name == "patients"
    assert published.payload == {"release_id": "20260101T000000Z-aaaaaa", "generator": "gmm", "quality": 0.91,
                                 "failed_checks": []}
    assert refused.payload == {"run_id": "20260101T000000Z-bbbbbb", "generator": "gmm", "quality": 0.42,
                               "failed_checks": ["fidelity.quality", "privacy.dcr_share"]}
    assert unchanged.payload == published.payload


def test_the_payload_never_names_the_source_and_stays_strict_json(sent: Callable[[], list[Event]]) -> None:
    announce(manifest(["fidelity.quality"], float("nan"), run_id="20260101T000000Z-cccccc"))

    (event,) = sent()
    assert event.payload["quality"] is None  # NaN is not JSON
    assert SOURCE_URI not in event.model_dump_json()
    assert "ab" * 32 not in event.model_dump_json()
