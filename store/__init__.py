"""Where footage lives: the key layout, file and S3 (Object Lock) backends, retries, fetching.

```python
from store import open_store, object_key, fetch_recording
store = open_store("file:///srv/bodycam")          # or s3://bucket/prefix?endpoint=...
stored = store.put_file(key, path, sha256=sha, size=n, retain_until=until)  # durable
fetch_recording(store, site, device_id, recording_id, dest)   # a folder crypto can open
```

The dock writes through it, the back office reads through it; it knows nothing of
docks or people. Modules: `keys` (layout, Object Lock dates), `base` (`Store`,
`StoredObject`), `retry` (`RetryPolicy`), `file` (`FileStore`), `s3` (`S3Store`),
`url` (`open_store`), `fetch` (listing and fetching a recording), `delete` (for the
back office's retention purge), `errors`.
"""

from store.base import DurableBatch, FaultHook, Store, StoredObject
from store.delete import delete_object, delete_objects, keys_to_purge, s3_object_versions
from store.errors import (
    StoreConfigError,
    StoreError,
    StoreFull,
    StoreIntegrityError,
    StoreLocked,
    StoreUnavailable,
)
from store.fetch import fetch_recording, recording_objects
from store.file import FileStore
from store.keys import (
    DEFAULT_RETENTION_DAYS,
    QUARANTINE_PREFIX,
    check_key,
    events_key,
    events_prefix,
    events_range,
    object_key,
    quarantine_key,
    recording_prefix,
    retain_until,
    split_name,
)
from store.retry import RetryNotice, RetryPolicy
from store.s3 import S3Store
from store.url import open_store

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "DurableBatch",
    "QUARANTINE_PREFIX",
    "FaultHook",
    "FileStore",
    "RetryNotice",
    "RetryPolicy",
    "S3Store",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreFull",
    "StoreIntegrityError",
    "StoreLocked",
    "StoreUnavailable",
    "StoredObject",
    "check_key",
    "delete_object",
    "delete_objects",
    "keys_to_purge",
    "events_key",
    "events_prefix",
    "events_range",
    "fetch_recording",
    "object_key",
    "open_store",
    "quarantine_key",
    "recording_objects",
    "recording_prefix",
    "retain_until",
    "s3_object_versions",
    "split_name",
]
