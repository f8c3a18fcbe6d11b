"""The docking-station daemon: watch the slots, ingest every docked camera, report.

`DockDaemon.run()` watches the slots root (`dock.watcher`), runs one ingest
session (`dock.ingest.CameraIngest`) per docked camera in its own thread, up to
`max_slots` at once, with at most `max_uploads` uploads in flight across all of
them. One failing camera never stops another. A camera whose session could not
finish because the store was unreachable or full, or because it stopped answering,
is tried again with exponential backoff while it stays docked; everything stays on
the camera meanwhile, and `dock status` says so.

Progress per slot (device, recording, bytes, rate, ETA, state) is shown live with
rich when stderr is a terminal, and written to the ledger twice a second for
`dock status` in another terminal. Each finished camera gets one summary line on
stdout. SIGTERM (or Ctrl-C) sets a stop flag: every session finishes the chunk it
is copying, nothing half-done is recorded or released, and the daemon exits 0.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from dock.clock import SystemClock
from dock.daemon_config import DaemonConfig, DockBusy, load_dock_key
from dock.daemon_status import LOCK_ATTEMPTS, progress_cells
from dock.faults import fault_point
from dock.ingest import CameraIngest, DockContext
from dock.ledger import Ledger
from dock.on_docked import OnDockedCommand
from dock.report import CameraReport
from dock.slots import Slot, SlotProgress, SlotSnapshot, SlotState, remove_gone_slot
from dock.spool import clean_spool_at_start
from dock.watcher import SlotWatcher
from formats.clock import Clock
from formats.protocol import Signer
from store import FileStore, RetryPolicy, Store, StoreError, open_store

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table


log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.5  # seconds between progress writes to the ledger


@dataclass
class _Session:
    slot: Slot
    thread: threading.Thread
    cancel: threading.Event
    progress: SlotProgress
    started_utc: float
    report: CameraReport | None = None


@dataclass
class _Retry:
    attempts: int = 0
    due: float = 0.0


@dataclass
class DaemonResult:
    reports: list[CameraReport] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if all(r.ok for r in self.reports) else 1


class DockDaemon:
    """Runs the dock until stopped (or, with `once`, until every docked camera is done)."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        store: Store | None = None,
        ledger: Ledger | None = None,
        dock_key: Signer | None = None,
        clock: Clock | None = None,
        out: TextIO | None = None,
        watcher: SlotWatcher | None = None,
        console: Console | None = None,
    ) -> None:
        self.config = config
        self._console = console
        self.clock = clock or SystemClock()
        self.out = out or sys.stdout
        self.stop_event = threading.Event()
        self.result = DaemonResult()
        self._store_trouble: str | None = None
        self._store_down = False  # the ledger says unreachable/unavailable
        self._store_state_lock = threading.Lock()
        retry = RetryPolicy(
            attempts=4,
            base_delay=1.0,
            max_delay=30.0,
            sleep=self._interruptible_sleep,
            stop=self.stop_event,
            on_retry=self._store_retry,
            on_success=self._store_answered,
        )
        self.store = store or open_store(
            config.store_url, retry=retry, clock=self.clock.now, fault=fault_point
        )
        if store is None and not config.create_store and isinstance(self.store, FileStore):
            # open_store makes a missing root; a dock must not once its disk is unmounted
            self.store = FileStore(
                self.store.root,
                retry=retry,
                retention_days=self.store.retention_days,
                create=False,
                fault=fault_point,
            )
        if store is not None:
            store.retry.stop = self.stop_event
            store.retry.on_retry = self._store_retry
            store.retry.on_success = self._store_answered
        self.ledger = ledger or Ledger(config.ledger_path, clock=self.clock.now)
        self.dock_key = dock_key if dock_key is not None else load_dock_key(config.keys_dir)
        state_dir = config.state_dir or Path(config.ledger_path).parent
        self.ctx = DockContext(
            store=self.store,
            ledger=self.ledger,
            dock_key=self.dock_key,
            site=config.site,
            spool_root=state_dir / "spool",
            clock=self.clock,
            uploads=threading.BoundedSemaphore(max(1, config.max_uploads)),
            stop=self.stop_event,
            profiles_dir=config.profiles_dir,
            link_timeout=config.link_timeout,
            takes_registry=config.registry_key is not None,
        )
        self.watcher = watcher or SlotWatcher(
            config.slots,
            clock=self.clock,
            settle=config.settle,
            rescan_interval=config.rescan_interval,
        )
        self.watcher.on_gone = self._remove_gone_slot
        self._gone_left: set[str] = set()  # gone slots we could not remove (said once)
        self._sessions: dict[str, _Session] = {}
        self._queue: list[Slot] = []
        self._retries: dict[str, _Retry] = {}
        self._docked: dict[str, Slot] = {}
        self._redocked: dict[str, Slot] = {}
        self._last_status = -1e18
        self._view: Live | None = None
        self._rows: dict[str, SlotSnapshot] = {}  # last state of slots no longer running
        self._unregistered: dict[str, str] = {}  # slot -> device refused as unknown
        self._registry_due = -1e18
        self.on_docked = OnDockedCommand(config.on_docked, config.on_docked_timeout, self.clock)

    # --- control -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop after the current chunk of every transfer (signal handlers call this)."""
        if not self.stop_event.is_set():
            log.info("stopping: finishing the current chunk of every transfer")
        self.stop_event.set()
        self.watcher.request_rescan()  # wakes the main loop

    def _interruptible_sleep(self, seconds: float) -> None:
        self.stop_event.wait(seconds)

    def _store_retry(self, what: str, attempt: int, delay: float, exc: BaseException) -> None:
        with self._store_state_lock:
            self._store_trouble = f"unreachable ({exc}); retry {attempt} in {delay:.0f} s"
            self._store_down = True
            try:
                self.ledger.set_daemon(
                    store_state="unreachable", store_message=self._store_trouble[:500]
                )
            except Exception:  # status only; the transfer logic does not depend on it
                log.debug("could not record the store state")

    def _store_answered(self) -> None:
        """The store answered: status says so now, not when the session ends."""
        if not self._store_down:
            return  # the common case: one attribute read per store operation
        with self._store_state_lock:
            if not self._store_down:
                return
            self._store_down = False
            self._store_trouble = None
            log.info("store %s answers again", self.store.url)
            try:
                self.ledger.set_daemon(store_state="ok", store_message="")
            except Exception:  # status only
                log.debug("could not record the store state")

    # --- main loop -----------------------------------------------------------------------------

    def _lock_ledger(self) -> int:
        """One daemon per ledger: a second one would release what the first is storing."""
        path = Path(f"{self.ledger.path}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        for attempt in range(LOCK_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt + 1 < LOCK_ATTEMPTS:
                    time.sleep(0.025)  # `dock status` may be probing the lock right now
                    continue
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise DockBusy(
                    f"another dock daemon (pid {holder}) is using {self.ledger.path}; stop "
                    "it first, or give this one its own --ledger"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def run(self) -> DaemonResult:
        from dock.preflight import announce_running

        lock = self._lock_ledger()
        note = announce_running(Path(self.ledger.path)) if self.config.announce else None
        try:
            return self._run()
        finally:
            if note is not None:
                note.unlink(missing_ok=True)
            os.close(lock)  # closing releases the lock (a killed process's lock goes too)

    def _clean_at_start(self) -> None:
        """Remove what a killed run left: staging temps, spool names shared with objects."""
        try:
            self.store.clean_up()
        except (StoreError, OSError) as exc:  # the store may be down now; next start
            log.warning("could not clean the store's staging area: %s", exc)
        try:
            clean_spool_at_start(self.ctx.spool_dir())
        except (OSError, ValueError) as exc:
            log.warning("could not check the spool: %s", exc)

    def _run(self) -> DaemonResult:
        cfg = self.config
        now = self.clock.now()
        self._clean_at_start()
        self.ledger.clear_slots()
        self.ledger.set_daemon(
            pid=os.getpid(),
            store=self.store.url,
            store_state="ok",
            store_message="",
            started_utc=now,
            heartbeat_utc=now,
            stopped_utc=None,
        )
        log.info(
            "dock started: slots %s, store %s, ledger %s",
            cfg.slots,
            self.store.url,
            cfg.ledger_path,
        )
        self.watcher.start()
        self._start_view()
        try:
            while True:
                self._handle_events()
                self._reap()
                self._refresh_registry()
                self.on_docked.tick()
                self._requeue_registered()
                self._requeue_due()
                self._start_sessions()
                self._write_status()
                if self.stop_event.is_set() and not self._sessions:
                    break
                if cfg.once and self._drained() and not self.on_docked.busy():
                    break
                self.watcher.wait(0.2)
        finally:
            self.stop_event.set()
            for session in list(self._sessions.values()):
                session.thread.join()
            self._reap()
            self.on_docked.finish()
            self.watcher.stop()
            self._stop_view()
            self.ledger.set_daemon(stopped_utc=self.clock.now(), heartbeat_utc=self.clock.now())
            log.info("dock stopped")
        return self.result

    def _drained(self) -> bool:
        return not (self._sessions or self._queue or self._retries or self.watcher.pending())

    def _handle_events(self) -> None:
        for _, payload in self.watcher.poll():
            if isinstance(payload, Slot):  # ("docked", slot)
                slot = payload
                self._docked[slot.name] = slot
                self._retries.pop(slot.name, None)
                if slot.name in self._sessions:
                    # undocked and docked again while the old session winds down
                    self._redocked[slot.name] = slot
                elif slot not in self._queue:
                    self._queue.append(slot)
                    self.ledger.set_slot(slot.name, state=SlotState.WAITING, message="docked")
            else:  # ("undocked", name)
                name = payload
                self._docked.pop(name, None)
                self._retries.pop(name, None)
                self._redocked.pop(name, None)
                self._queue = [s for s in self._queue if s.name != name]
                self._rows.pop(name, None)
                self._unregistered.pop(name, None)
                session = self._sessions.get(name)
                if session is not None:
                    session.cancel.set()  # the session stops at its next chunk
                else:
                    self.ledger.clear_slot(name)

    def _remove_gone_slot(self, name: str) -> None:
        """A slot whose camera died docked: its links go once no session uses it.

        Only the slot's `serial` and `volume` links and its empty folder are removed
        (dock/slots.py `remove_gone_slot`), never the camera's files; the slot is then
        free for the next camera. A session still running for it is cancelled by the
        undocked event first: a later look (the next rescan) removes the slot.
        """
        if name in self._sessions:
            return
        try:
            target = remove_gone_slot(self.config.slots, name)
        except OSError as exc:
            if name not in self._gone_left:
                self._gone_left.add(name)
                log.warning("slot %s: its camera is gone, the slot stays: %s", name, exc)
            return
        self._gone_left.discard(name)
        if target is not None:
            log.warning(
                "slot %s: its camera is gone (serial %s no longer exists): removed the "
                "slot's links; the camera's files were not touched",
                name,
                target,
            )

    def _start_sessions(self) -> None:
        while self._queue and len(self._sessions) < self.config.max_slots:
            if self.stop_event.is_set():
                self._queue.clear()
                return
            slot = self._queue.pop(0)
            progress = SlotProgress(slot.name, self.clock)
            cancel = threading.Event()
            session = _Session(slot, threading.Thread(), cancel, progress, self.clock.now())
            session.thread = threading.Thread(
                target=self._run_session,
                args=(session,),
                name=f"dock-slot-{slot.name}",
                daemon=True,
            )
            self._sessions[slot.name] = session
            self.ledger.set_slot(slot.name, state=progress.state, started_utc=session.started_utc)
            session.thread.start()

    def _run_session(self, session: _Session) -> None:
        try:
            session.report = CameraIngest(
                session.slot, self.ctx, session.progress, session.cancel
            ).run()
        except Exception as exc:  # a bug must not take the other slots down
            log.exception("slot %s: session failed", session.slot.name)
            report = CameraReport(session.slot.name)
            report.errors.append(f"internal error: {type(exc).__name__}: {exc}")
            session.report = report
            session.progress.set(SlotState.ERROR, message=str(exc))

    def _reap(self) -> None:
        for name, session in list(self._sessions.items()):
            if session.thread.is_alive():
                continue
            session.thread.join()
            del self._sessions[name]
            report = session.report or CameraReport(name, errors=["no report"])
            self._finished(session, report)
            again = self._redocked.pop(name, None)
            if again is not None and not self.stop_event.is_set():
                self._queue.append(again)

    def _finished(self, session: _Session, report: CameraReport) -> None:
        name = session.slot.name
        line = report.summary()
        print(line, file=self.out, flush=True)
        log.info(
            "camera done: %s",
            line,
            extra={"slot": name, "device_id": report.device_id, "ok": report.ok},
        )
        self.ledger.record_session(
            name,
            report.device_id,
            session.started_utc,
            report.ok,
            line,
            notes=report.notes,
            refused=report.refused,
        )
        if report.stored > 0 and report.device_id:
            self.on_docked.docked(report.device_id)
        if report.store_problem is not None:  # cleared by the store's next answer
            with self._store_state_lock:
                self._store_down = True
                self.ledger.set_daemon(
                    store_state="unavailable", store_message=report.store_problem
                )
        still_docked = name in self._docked and session.slot.present()
        retry = (
            still_docked
            and not self.stop_event.is_set()
            and not session.cancel.is_set()
            and (
                report.store_problem is not None
                or any("stopped answering" in e for e in report.errors)
            )
        )
        snap = session.progress.snapshot()
        if retry:
            state = self._retries.setdefault(name, _Retry())
            state.attempts += 1
            if self.config.once and state.attempts >= self.config.once_attempts:
                self._retries.pop(name, None)
                self.result.reports.append(report)
                self._slot_row(name, snap, SlotState.ERROR, f"gave up: {line}")
                return
            delay = min(self.config.retry_max, self.config.retry_base * 2 ** (state.attempts - 1))
            state.due = self.clock.monotonic() + delay
            message = f"{line}; everything kept on the camera, retrying in {delay:.0f} s"
            self._slot_row(name, snap, SlotState.ERROR, message)
            log.warning("slot %s: retrying in %.0f s", name, delay)
            return
        self._retries.pop(name, None)
        self.result.reports.append(report)
        if report.refused and report.device_id and "not registered" in report.refused:
            self._unregistered[name] = report.device_id  # until the coordinator adds it
        if not still_docked and not self.stop_event.is_set():
            self.ledger.clear_slot(name)
            return
        final = (
            SlotState.DONE
            if report.ok
            else (SlotState.QUARANTINED if report.quarantined else SlotState.ERROR)
        )
        self._slot_row(name, snap, final, line)

    def _slot_row(self, name: str, snap: SlotSnapshot, state: SlotState, message: str) -> None:
        self._rows[name] = {
            **snap,
            "state": state,
            "message": message,
            "rate": 0.0,
            "recording": None,
        }
        self.ledger.set_slot(
            name,
            state=state,
            device_id=snap["device_id"],
            recording=None,
            bytes_done=snap["bytes_done"],
            bytes_total=snap["bytes_total"],
            rate=0.0,
            eta=None,
            message=message[:1000],
        )

    def _refresh_registry(self) -> None:
        """Take the back office's newest signed camera registry into the ledger (the cache)."""
        cfg = self.config
        if cfg.registry_key is None or self.clock.monotonic() < self._registry_due:
            return
        self._registry_due = self.clock.monotonic() + cfg.registry_interval
        from crypto.keys import load_public_key
        from dock.registry import refresh_ledger

        result = refresh_ledger(
            self.store,
            self.ledger,
            load_public_key(cfg.registry_key),
            Path(f"{self.ledger.path}.registry.json"),
        )
        if result.problem:
            log.warning("camera registry: %s", result.problem)

    def _requeue_registered(self) -> None:
        """A camera refused as unknown is taken as soon as the coordinator registers it."""
        if self.config.once:
            return
        for name, device_id in list(self._unregistered.items()):
            if self.ledger.active_device(device_id) is None:
                continue
            del self._unregistered[name]
            slot = self._docked.get(name)
            if slot is not None and name not in self._sessions:
                log.info("slot %s: camera %s is registered now", name, device_id)
                self._queue.append(slot)

    def _requeue_due(self) -> None:
        now = self.clock.monotonic()
        for name, state in list(self._retries.items()):
            if state.due <= now and name not in self._sessions:
                slot = self._docked.get(name)
                if slot is None:
                    self._retries.pop(name, None)
                    continue
                state.due = float("inf")  # requeued; a new due time comes with its outcome
                self._queue.append(slot)

    def _write_status(self) -> None:
        now = self.clock.monotonic()
        if self._view is not None:
            self._view.update(self._table())
        if now - self._last_status < STATUS_INTERVAL:
            return
        self._last_status = now
        for name, session in self._sessions.items():
            snap = session.progress.snapshot()
            self.ledger.set_slot(
                name,
                state=snap["state"],
                device_id=snap["device_id"],
                recording=snap["recording"],
                bytes_done=snap["bytes_done"],
                bytes_total=snap["bytes_total"],
                rate=snap["rate"],
                eta=snap["eta"],
                message=snap["message"][:1000],
            )
        self.ledger.set_daemon(heartbeat_utc=self.clock.now())

    # --- live view -----------------------------------------------------------------------------

    def _start_view(self) -> None:
        live = self.config.live
        if live is None:
            live = sys.stderr.isatty()
        if not live:
            return
        from rich.console import Console
        from rich.live import Live

        console = self._console or Console(stderr=True)
        self._view = Live(self._table(), console=console, refresh_per_second=4, transient=False)
        self._view.start()

    def _stop_view(self) -> None:
        if self._view is not None:
            self._view.update(self._table())
            self._view.stop()
            self._view = None

    def _table(self) -> Table:
        from rich.table import Table

        table = Table(title=f"bodycam dock - {self.config.slots} -> {self.store.url}", expand=True)
        for col in ("slot", "device", "recording", "state", "bytes", "rate", "ETA", "message"):
            table.add_column(col, overflow="fold")
        rows = dict(self._rows)
        for name, session in self._sessions.items():
            rows[name] = session.progress.snapshot()
        for name in sorted(rows):
            table.add_row(*progress_cells(rows[name]))
        if self._store_trouble:
            table.caption = f"store {self._store_trouble}; everything stays on the cameras"
        return table
