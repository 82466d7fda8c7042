"""Google Cloud clients for code that runs outside Airflow hooks (CLI, Phase 4 publisher, worker).

With ``BIGQUERY_EMULATOR_HOST`` / ``PUBSUB_EMULATOR_HOST`` set, the client libraries talk to the local
emulators and need no credentials; without them they use Application Default Credentials, so the
same commands provision and seed real GCP.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from nba_phase5.config import bigquery_location

if TYPE_CHECKING:
    from google.cloud import bigquery
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient


def using_emulators() -> bool:
    return bool(os.environ.get("BIGQUERY_EMULATOR_HOST") or os.environ.get("PUBSUB_EMULATOR_HOST"))


def bigquery_client(project: str) -> bigquery.Client:
    """A client whose jobs run and are looked up in the package's location (docs/platform.md §0)."""
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud import bigquery

    host = os.environ.get("BIGQUERY_EMULATOR_HOST")
    if host:
        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from google.api_core.client_options import ClientOptions

        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from google.auth.credentials import AnonymousCredentials

        # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
        from google.cloud.bigquery import client as client_module

        # Load jobs (the stand-in worker's staging writes) upload their rows as "*/*", which BigQuery
        # takes and bqemulator refuses; the emulator takes the same bytes as application/octet-stream.
        client_module._GENERIC_CONTENT_TYPE = "application/octet-stream"  # type: ignore[attr-defined]

        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=host),
            location=bigquery_location(),
        )
    return bigquery.Client(project=project, location=bigquery_location())


def publisher_client(**kwargs: object) -> PublisherClient:
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud.pubsub_v1 import PublisherClient

    return PublisherClient(**kwargs)  # type: ignore[arg-type]


def subscriber_client() -> SubscriberClient:
    # Imported here to keep the DAG file's parse light (a cloud client or a provider hook).
    from google.cloud.pubsub_v1 import SubscriberClient

    return SubscriberClient()


class EmulatorUnreachableError(RuntimeError):
    """An emulator variable is set but nothing answers at that address."""


def check_emulators() -> None:
    """Fail fast, naming what to fix, when an emulator variable points at nothing.

    Without this the client libraries retry a refused connection for minutes before giving up. The CLI
    calls it once at start; the hooks call it each time a task builds a client, so a stack that stopped
    mid-run fails the task at once instead of after ten minutes of retries.
    """
    for variable in ("PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"):
        value = os.environ.get(variable)
        if not value:
            continue
        parts = urlsplit(value if "://" in value else f"//{value}")
        host, port = parts.hostname or "127.0.0.1", parts.port
        try:
            with socket.create_connection((host, port or 80), timeout=2):
                pass
        except OSError as exc:
            raise EmulatorUnreachableError(
                f"{variable}={value} is set but nothing answers there ({exc.strerror or exc}). "
                "Start the local stack with `make stack-up` (and `source .local/stack.env`), "
                f"or unset {variable} to use real GCP."
            ) from None
