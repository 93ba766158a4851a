"""First start: a default project and its keys, shown once."""

from __future__ import annotations

from tuneloop.clock import Clock
from tuneloop.store import Store
from tuneloop.store.keys import NewKey

DEFAULT_PROJECT = "default"


def bootstrap(store: Store, clock: Clock) -> list[NewKey]:
    """On an empty database create the default project with an ingest and an admin key.

    Returns the new keys (to print once), or nothing when projects already exist.
    """
    if store.keys.list_projects():
        return []
    now = clock.now_ms()
    store.keys.ensure_project(DEFAULT_PROJECT, name="Default project", now_ms=now)
    return [
        store.keys.create_key(DEFAULT_PROJECT, "ingest", name="default ingest key", now_ms=now),
        store.keys.create_key(DEFAULT_PROJECT, "admin", name="default admin key", now_ms=now),
    ]
