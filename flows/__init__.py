"""Prefect flows and the CLI over the library packages: sources, the gate, the release, the config.

Importing this package changes nothing in the environment. Whoever starts a run chooses its settings: the
`synthgate` CLI calls `use_offline_defaults()` before any command imports Prefect or Great Expectations, and
so should a deployment, a notebook or a script that imports `flows` as a library (before it imports either).
"""

import os

# Offline and quiet: no analytics calls home (server side, and the client's SDK telemetry, whose first-run
# notice Prefect would otherwise print on an interactive terminal when it is imported), time for the
# ephemeral server's cold start, our loggers forwarded to Prefect, and no result persistence, so private
# frames passed between tasks are never written by the orchestrator.
OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "flows,generators,validation,privacy",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def use_offline_defaults() -> None:
    """Set `OFFLINE_DEFAULTS` in this process's environment (and so its children's); a user's own setting wins.

    Prefect reads its telemetry setting when it is imported: call this first.
    """
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
