"""Releasing segments in the background while the next one is copied."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from crypto.verify import ManifestEntry

log = logging.getLogger(__name__)


class ReleaseWorker:
    """Sends RELEASEs over the serial link while the next segment is copied from the volume.

    The camera hashes and deletes a released segment (and fsyncs its folder); doing that
    in the background overlaps it with the dock's own copying. Only what the ledger
    holds as stored is ever queued. Used when files come from the volume, so the link
    has a single user: this thread.
    """

    def __init__(self, release: Callable[[str, ManifestEntry, str], None]) -> None:
        self._release = release
        self._queue: queue.Queue[tuple[str, ManifestEntry, str] | None] = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dock-release", daemon=True)
        self._thread.start()

    def on_worker_thread(self) -> bool:
        """Whether the caller is the worker itself (a release checking the session)."""
        return threading.current_thread() is self._thread

    def submit(self, rec_id: str, entry: ManifestEntry, key: str) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((rec_id, entry, key))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # after a failure only drain: nothing more is released
            try:
                self._release(*item)
            except BaseException as exc:  # handed to the session thread
                self.error = exc

    def finish(self) -> None:
        """Wait for every queued release; raise the first failure."""
        self.close()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
