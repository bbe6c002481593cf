"""A run's outcome as a Prefect event, so automations can follow a dataset's releases.

Each run of `synthesize` ends in one event: `synthgate.release.published`, `synthgate.release.refused` or
`synthgate.release.unchanged`, about the resource `synthgate.dataset.<dataset>`. A Prefect automation can then
notify someone of a refusal or start what consumes a new release. The payload names the release (or the refused
run), the generator, the quality and the failed checks: never a row, a value of the data, nor where the source is.
"""

from __future__ import annotations

from typing import Any

from prefect.events import Event, emit_event

from flows.release.manifest import Manifest, jsonable

PUBLISHED = "synthgate.release.published"
REFUSED = "synthgate.release.refused"
UNCHANGED = "synthgate.release.unchanged"


def announce(manifest: Manifest, *, unchanged: bool = False) -> Event | None:
    """Emit the event of a run whose outcome `manifest` records (`unchanged`: the current release's manifest).

    Returns the event, or None where Prefect emits no events (no API to send them to).
    """
    event = UNCHANGED if unchanged else PUBLISHED if manifest.passed else REFUSED
    return emit_event(event, resource=dataset_resource(manifest.dataset), payload=event_payload(manifest))


def dataset_resource(dataset: str) -> dict[str, str]:
    """The Prefect resource an event is about: the dataset, by name."""
    return {"prefect.resource.id": f"synthgate.dataset.{dataset}", "prefect.resource.name": dataset}


def event_payload(manifest: Manifest) -> dict[str, Any]:
    """What an event says of a run: its release or run id, generator, quality and failed checks, in strict JSON."""
    named = {"release_id": manifest.release_id} if manifest.release_id else {"run_id": manifest.run_id}
    payload = {
        **named,
        "generator": manifest.generator.name if manifest.generator is not None else None,
        "quality": manifest.metrics.fidelity.quality,
        "failed_checks": [check.name for check in manifest.gate.failed],
    }
    return dict(jsonable(payload))
