"""Result sinks that keep finished runs: in a `Store` directly, or on a server over HTTP.

Both store the run once it finished (with its gate), linked to the version it
evaluated, so that the version's gate verdict is recorded. A sink never loses the run
because storing it failed: the failure is kept in ``error`` for the caller to report,
after the run's reports are written.

```python
sink = UploadSink(EvalServer(url, admin_key), version="1.4.0")
run = await run_suite(suite, config=config, sink=sink)
if sink.error:
    print("not stored:", sink.error)
```
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from tuneloop.clock import Clock, SystemClock
from tuneloop.errors import TuneloopError
from tuneloop.evals.results import CaseResult, EvalRun
from tuneloop.evals.runner import RunHeader

if TYPE_CHECKING:
    from tuneloop.evals.remote import EvalServer
    from tuneloop.store.evals import SavedRun
    from tuneloop.store.store import Store


class StoreSink:
    """Stores each finished run in ``store`` (the server's own runs; tests).

    Args:
        store: where runs go.
        project_id: the project they belong to.
        author: recorded as the uploader (a key id, ``system``...).
        agent: the agent evaluated (default: the run's own).
        version: the stored version evaluated (default: found by the run's config hash).
        clock: when runs are stored.
    """

    def __init__(
        self,
        store: Store,
        project_id: str,
        *,
        author: str = "system",
        agent: str | None = None,
        version: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._project_id = project_id
        self._author = author
        self._agent = agent
        self._version = version
        self._clock = clock or SystemClock()
        self.saved: SavedRun | None = None
        self.error: TuneloopError | None = None

    async def on_start(self, header: RunHeader) -> None:
        """Nothing is stored until the run finished."""

    async def on_case(self, run_id: str, result: CaseResult) -> None:
        """Nothing is stored until the run finished."""

    async def on_finish(self, run: EvalRun) -> None:
        """Store the run; keep the error if the store refused it."""
        try:
            self.saved = await asyncio.to_thread(
                self._store.evals.save_run,
                self._project_id,
                run,
                author=self._author,
                now_ms=self._clock.now_ms(),
                agent=self._agent,
                version=self._version,
            )
        except TuneloopError as exc:
            self.error = exc


class UploadSink:
    """Uploads each finished run to a tuneloop server (``POST /api/v1/eval-runs``).

    Args:
        server: the server, with an admin key.
        agent: the agent evaluated (default: the run's own).
        version: the stored version evaluated (default: found by the run's config hash).
    """

    def __init__(
        self, server: EvalServer, *, agent: str | None = None, version: str | None = None
    ) -> None:
        self._server = server
        self._agent = agent
        self._version = version
        self.response: dict[str, Any] | None = None
        self.error: TuneloopError | None = None

    async def on_start(self, header: RunHeader) -> None:
        """Nothing is uploaded until the run finished."""

    async def on_case(self, run_id: str, result: CaseResult) -> None:
        """Nothing is uploaded until the run finished."""

    async def on_finish(self, run: EvalRun) -> None:
        """Upload the run; keep the error if the server refused it or was unreachable."""
        try:
            self.response = await asyncio.to_thread(
                self._server.upload, run, agent=self._agent, version=self._version
            )
        except TuneloopError as exc:
            self.error = exc
