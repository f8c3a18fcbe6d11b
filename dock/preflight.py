"""What `bodycam dock run` checks before it starts, and where the dock's ledger is.

`check_start(...)` looks at every folder and the store the operator named, before a
ledger is opened or anything is written, and raises `StartRefused` with one line
that names the option, the path and what to do. Nothing missing is created unless
`--create` was given: a store or ledger on a disk that is not mounted would otherwise
fill the root file system without a word. A file store must carry its
`.bodycam-store` marker (an empty mount point has none); an S3 store must answer with
the dock's credentials.

`resolve_ledger(explicit)` is the one rule `dock run`, `dock status`, `dock register`
and `dock unregister` share: `--ledger`, else `$BODYCAM_DOCK_LEDGER`, else the state
folder's `bodycam-dock/ledger.sqlite`. A running daemon leaves a note with its ledger
in the runtime folder (`$XDG_RUNTIME_DIR/bodycam-dock`, else
`/tmp/bodycam-dock-<uid>`), so a command in another terminal finds a dock started
with another `--ledger`, or says which `--ledger` to pass.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STORE_MARKER = ".bodycam-store"  # the file store's marker (dock/store.py)


class StartRefused(RuntimeError):
    """`dock run` cannot start with what it was given; the message says what to change."""


# --- the ledger's location ----------------------------------------------------------------


def default_ledger() -> Path:
    """$BODYCAM_DOCK_LEDGER, else $XDG_STATE_HOME (~/.local/state)/bodycam-dock/ledger.sqlite."""
    env = os.environ.get("BODYCAM_DOCK_LEDGER")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "bodycam-dock" / "ledger.sqlite"


def runtime_dir() -> Path:
    """Where running daemons leave a note of their ledger (per user)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "bodycam-dock"
    return Path(os.environ.get("TMPDIR") or "/tmp") / f"bodycam-dock-{os.getuid()}"


def _own_private_dir(path: Path, create: bool) -> bool:
    """A folder only this user can write (never a link someone else put there)."""
    if create:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError:
            return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.getuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def announce_running(ledger: Path) -> Path | None:
    """Note that this process runs a dock on `ledger`; returns the note to remove at stop."""
    folder = runtime_dir()
    if not _own_private_dir(folder, create=True):
        log.warning(
            "cannot note the running dock in %s: `dock status` in another terminal "
            "needs --ledger %s",
            folder,
            ledger,
        )
        return None
    note = folder / f"{os.getpid()}.json"
    tmp = folder / f".{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "ledger": str(ledger.absolute())}) + "\n")
    os.replace(tmp, note)
    return note


@dataclass(frozen=True)
class RunningDock:
    pid: int
    ledger: Path


def running_docks() -> list[RunningDock]:
    """Docks running now (their ledger lock is held), from the notes they left."""
    from dock.daemon_status import ledger_locked

    folder = runtime_dir()
    if not _own_private_dir(folder, create=False):
        return []
    found: list[RunningDock] = []
    for note in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(note.read_text()[:4096])
            dock = RunningDock(int(doc["pid"]), Path(str(doc["ledger"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if ledger_locked(dock.ledger):
            found.append(dock)
        else:
            note.unlink(missing_ok=True)  # its daemon was killed; the note is stale
    return found


def resolve_ledger(explicit: Path | None, command: str) -> tuple[Path, str | None]:
    """The ledger `command` acts on, and a note when it is not the default one.

    Without --ledger: the default, unless no dock runs on it and exactly one dock runs on
    another ledger (then that one: the command acts on the running dock). Several docks
    running elsewhere and none on the default: refused, naming each --ledger to pass.
    """
    if explicit is not None:
        return explicit, None
    default = default_ledger()
    from dock.daemon_status import ledger_locked

    if ledger_locked(default):
        return default, None
    others = [d for d in running_docks() if d.ledger.absolute() != default.absolute()]
    if len(others) == 1:
        return others[0].ledger, (
            f"the running dock (pid {others[0].pid}) uses --ledger {others[0].ledger}"
        )
    if len(others) > 1:
        choices = "; ".join(
            f"`bodycam dock {command} --ledger {d.ledger}` (pid {d.pid})" for d in others
        )
        raise StartRefused(
            f"{len(others)} docks are running, none on the default ledger "
            f"{default}: choose one: {choices}"
        )
    return default, None


# --- start-up checks ----------------------------------------------------------------------


def _folder(option: str, path: Path, *, create: bool, what: str) -> None:
    """`path` must be a folder we can use; with `create`, a missing one is made."""
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise StartRefused(f"{option} {path}: {what} is not readable by this user")
        return
    if path.exists() or path.is_symlink():
        kind = "a file" if path.is_file() else "not a folder"
        raise StartRefused(f"{option} {path}: is {kind}, not a folder ({what})")
    if not create:
        raise StartRefused(
            f"{option} {path}: {what} does not exist (is its disk mounted?); "
            "pass --create to make it"
        )
    path.mkdir(parents=True, mode=0o750)
    log.info("created %s (%s) as --create asked", path, what)


def check_ledger(ledger: Path, *, create: bool) -> None:
    """The ledger's folder exists (or --create), the ledger is a SQLite file if present."""
    if not ledger.parent.exists() and not create:
        raise StartRefused(
            f"--ledger {ledger}: its folder {ledger.parent} does not exist "
            "(is its disk mounted?); pass --create to make it, or --ledger "
            "PATH for the ledger you use"
        )
    _folder("--ledger", ledger.parent, create=create, what="the ledger's folder")
    if not os.access(ledger.parent, os.W_OK):
        raise StartRefused(
            f"--ledger {ledger}: its folder {ledger.parent} is not writable by this user"
        )
    if ledger.is_dir():
        raise StartRefused(
            f"--ledger {ledger}: is a folder; pass the ledger file "
            f"({ledger / 'ledger.sqlite'}, say)"
        )
    if ledger.exists():
        check_ledger_file(ledger)


def check_ledger_file(ledger: Path) -> None:
    """An existing ledger must be an SQLite database this user can open."""
    try:
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StartRefused(f"--ledger {ledger}: not a usable dock ledger ({exc})") from None


def store_url_for_run(url: str, *, create: bool) -> str:
    """The store URL the daemon opens: an S3 bucket is created only with --create.

    An explicit `create=` in the URL stands; without it a missing bucket is refused
    unless --create was given.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3":
        return url
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "create" for k, _ in query):
        return url
    query.append(("create", "1" if create else "0"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def check_store(url: str, *, create: bool) -> None:
    """The store answers now and is a bodycam store (or --create makes one)."""
    from store import FileStore, RetryPolicy, StoreError, open_store

    try:
        store = open_store(url, retry=RetryPolicy(attempts=1))
    except StoreError as exc:
        raise StartRefused(f"--store {url}: {exc}") from None
    try:
        if isinstance(store, FileStore):
            root = store.root
            _folder("--store", root, create=create, what="the store's root folder")
            marker = root / STORE_MARKER
            if not marker.is_file() and not create:
                empty = not any(root.iterdir())
                hint = (
                    "it is empty: is the store's disk mounted? pass --create to start a "
                    "new store there"
                    if empty
                    else "choose the store's folder"
                )
                raise StartRefused(
                    f"--store {url}: {root} is not a bodycam store (no {STORE_MARKER}); {hint}"
                )
            if not os.access(root, os.W_OK):
                raise StartRefused(f"--store {url}: {root} is not writable by this user")
        try:
            store.check()
        except StoreError as exc:
            raise StartRefused(f"--store {_safe_url(url)}: {_first_line(exc)}") from None
    finally:
        store.close()


def _safe_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query="")) if parts.scheme == "s3" else url


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split("; everything stays on the camera")[0]


REGISTRY_PUB = "the back office's HOME/registry.pub"
_KEY_OWNERS = {
    "dock": "a dock's",
    "integrator": "the integrator's",
    "vault": "the vault's",
    "device": "a camera's",
}


def load_registry_key(path: Path) -> bytes:
    """The back office's registry public key from --registry-key FILE, or StartRefused.

    A key file of another kind (the dock's own, the integrator's, a camera's
    DEVICE.json) would verify no registry: the dock would start and refuse every
    camera, so it is refused here, saying what the file is. A bare 64-hex file
    carries no kind and is taken; the store check below catches a wrong one.
    """
    from crypto.errors import KeyFileError
    from crypto.keys import PRIVATE_FORMAT, load_public_key, public_key_kind

    option = f"--registry-key {path}"
    if path.is_dir():
        raise StartRefused(f"{option}: is a folder; pass {REGISTRY_PUB}")
    try:
        kind = public_key_kind(path)  # a bounded read; KeyFileError for what is no key file
        text = path.read_text(errors="replace")  # small: public_key_kind read it whole
    except FileNotFoundError:
        raise StartRefused(f"{option}: does not exist; copy {REGISTRY_PUB} there") from None
    except (KeyFileError, OSError) as exc:
        raise StartRefused(f"--registry-key: {exc}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None  # 64 hex digits: no kind to check
    if not isinstance(doc, dict):
        doc = {}
    half = "private" if doc.get("format") == PRIVATE_FORMAT else "public"
    if "device_id" in doc:
        kind, what = "device", f"camera {doc['device_id']}'s DEVICE.json"
    else:
        what = f"{_KEY_OWNERS.get(kind or '', f'a {kind}')} {half} key"
    if kind == "registry" and half == "private":
        raise StartRefused(
            f"{option}: is the back office's private registry key, which stays in the "
            f"back office; pass its public half, {REGISTRY_PUB}"
        )
    if kind is not None and kind != "registry":
        raise StartRefused(
            f"{option}: is {what} (kind {kind}), not the back office's registry key "
            f"(kind registry); pass {REGISTRY_PUB}"
        )
    try:
        return load_public_key(path)
    except (KeyFileError, OSError) as exc:
        raise StartRefused(f"--registry-key: {exc}") from None


def check_registry_key(path: Path, store_url: str) -> None:
    """--registry-key is a registry key, and verifies the registry the store holds (if any)."""
    from formats.registry import unsigned_by
    from store import RetryPolicy, StoreError, open_store

    public = load_registry_key(path)
    try:
        store = open_store(store_url, retry=RetryPolicy(attempts=1))
    except StoreError:
        return  # check_store has said what is wrong with the store
    try:
        unsigned = unsigned_by(store, public)
    except (StoreError, OSError):
        return  # unreachable now: the daemon keeps its last good copy and retries
    finally:
        store.close()
    if unsigned is not None:
        raise StartRefused(
            f"--registry-key {path}: the camera registry in the store ({unsigned}) is "
            f"signed by another key; pass {REGISTRY_PUB}"
        )


def check_start(
    *,
    slots: Path,
    store_url: str,
    ledger: Path,
    state: Path | None,
    profiles: Path | None,
    keys: Path | None,
    create: bool,
    registry_key: Path | None = None,
) -> None:
    """Everything `dock run` needs, checked before anything is opened or written."""
    _folder("--slots", slots, create=create, what="the slots root")
    if profiles is not None:
        _folder("--profiles", profiles, create=False, what="the staged profiles folder")
    if keys is not None and keys.exists() and not keys.is_dir():
        raise StartRefused(
            f"--keys {keys}: is a file, not a folder (the folder `bodycam keys "
            "init` made, with dock.key)"
        )
    check_ledger(ledger, create=create)
    if state is not None:
        _folder("--state", state, create=create, what="the spool folder")
    if registry_key is not None:
        load_registry_key(registry_key)  # before the store: a wrong file is the quicker fix
    check_store(store_url, create=create)
    if registry_key is not None:
        check_registry_key(registry_key, store_url)
