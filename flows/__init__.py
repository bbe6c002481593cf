"""Prefect flows and the CLI over the library packages (ingest, publish, config).

The defaults set here keep every entry point (CLI, deployments, tests) offline and quiet: no analytics
calls home (server side, and the client's SDK telemetry, whose first-run notice Prefect would otherwise
print on an interactive terminal), time for the ephemeral server's cold start, our loggers forwarded to
Prefect, and no result persistence, so private frames passed between tasks are never written by the
orchestrator. A user's own setting of any of these wins.
"""

import os

for _key, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "flows,generators,validation,privacy",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}.items():
    os.environ.setdefault(_key, _value)
