"""Viewing benchmark: start to first frame in the browser for a 10-minute 720p recording.

One run, one machine, one browser (Debian's Chromium driven by Playwright):

- baseline: a page on this machine sets a plain MP4 of the same footage (no decryption,
  no watermark, a local file) as a <video>'s source; time until its first frame is
  presented (`requestVideoFrameCallback`);
- viewing: in the back office (`bodycam vault serve` on 127.0.0.1), the second person's
  credentials entered, time from pressing "Start viewing" until the first watermarked
  frame is presented: the pair check, fetching and verifying from the store, decrypting
  into memory, encoding the watermarked picture, streaming it to the <video>;
- seek: from setting `currentTime` to the middle of the recording until `seeked`;
- the viewers' mark per frame at 640x360, 1280x720 and 1920x1080 (two seconds of
  footage each), against the baseline of decoding and encoding that frame without it
  (the viewing stream's own x264 settings), and the one-off cost of drawing its overlay;
  each the best of three runs.

Reported as seconds and as a multiple of the baseline; the goal (< 2 s start to first
frame) is reported as met or missed, never as an exit code.

Usage: python benchmarks/viewing_bench.py [--seconds 600] [--width 1280 --height 720]
       python benchmarks/viewing_bench.py --watermark-only
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests" / "vault", ROOT / "tests" / "web"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

GOAL_SECONDS = 2.0
FIRST_FRAME_HOOK = """
window.__firstFrame = null;
document.addEventListener('DOMContentLoaded', () => {
  const v = document.querySelector('video');
  if (v && v.requestVideoFrameCallback) {
    v.requestVideoFrameCallback(() => { window.__firstFrame = Date.now(); });
  }
});
"""


def baseline(browser: Any, mp4: Path) -> float:
    # The measurement reads the player through evaluated script, which the site's
    # Content-Security-Policy refuses on purpose: this page alone bypasses it.
    page = browser.new_page(bypass_csp=True)
    html = mp4.with_suffix(".html")
    html.write_text(
        f'<!doctype html><html lang="en"><body><video id="v" muted width="960">'
        f'</video><script>window.go = () => {{ const v = document.getElementById("v");'
        f" v.requestVideoFrameCallback(() => {{ window.__firstFrame = Date.now(); }});"
        f' window.__t0 = Date.now(); v.src = "{mp4.name}"; v.play(); }};</script>'
        f"</body></html>"
    )
    page.goto(html.as_uri())
    page.evaluate("window.go()")
    page.wait_for_function("window.__firstFrame", timeout=60_000)
    took = page.evaluate("window.__firstFrame - window.__t0") / 1000
    page.close()
    return float(took)


def viewing(
    browser: Any, server: Any, ref: str, password: str, middle: float
) -> tuple[float, float, str]:
    from test_web_browser import signed_in

    page = signed_in(browser, server, "cees", bypass_csp=True)  # evaluated probes
    page.add_init_script(FIRST_FRAME_HOOK)
    page.goto(f"/recordings/{ref}/")
    page.get_by_label("Purpose").select_option("complaint")
    page.get_by_label("Second person's user name").fill("sam")
    page.get_by_label("Second person's password").fill(password)
    page.evaluate("sessionStorage.setItem('t0', String(Date.now()))")
    page.get_by_role("button", name="Start viewing").click()
    page.wait_for_function("window.__firstFrame", timeout=600_000)
    first = page.evaluate("window.__firstFrame - Number(sessionStorage.getItem('t0'))") / 1000
    path = (
        "progressive (MSE)"
        if page.locator("video").get_attribute("data-complete") == "0"
        else "complete file (ranges)"
    )
    t = time.perf_counter()
    page.evaluate(f"() => {{ document.querySelector('video').currentTime = {middle}; }}")
    page.wait_for_function(
        "() => { const v = document.querySelector('video');"
        " return !v.seeking && v.readyState >= 2; }",
        timeout=600_000,
    )
    seek = time.perf_counter() - t
    page.get_by_role("button", name="End viewing").click()
    page.context.close()
    return float(first), seek, path


WATERMARK_SIZES = ((640, 360), (1280, 720), (1920, 1080))
REPEATS = 3


def watermark_cost(home: Path, seconds: int = 2) -> list[str]:
    """Per frame: the viewers' mark against decoding and encoding the frame without it."""
    import datetime as dt
    import io
    from zoneinfo import ZoneInfo

    import av
    from vault_support import configure_django
    from web_support import make_ts

    configure_django(home)  # vault.viewing.playback is part of the back office
    from vault.media import reencode_video
    from vault.viewing.playback import MP4_OPTIONS, X264_OPTIONS
    from vault.viewing.watermark import BurnIn, Watermark

    mark = Watermark.for_viewing(
        ["cees", "sam"],
        "complaint",
        dt.datetime.now(dt.UTC),
        "BC-1A2B3C4D/20261124T093000Z",
        zone=ZoneInfo("Europe/Amsterdam"),
    )
    lines = []
    for width, height in WATERMARK_SIZES:
        ts = make_ts(seconds, (width, height))
        baseline = per_frame = float("inf")
        for _ in range(REPEATS):  # the best of a few runs: other work shares the cores
            t = time.perf_counter()
            frames = reencode_video(
                ts,
                io.BytesIO(),
                lambda image, _: image,
                x264_options=X264_OPTIONS,
                mp4_options=MP4_OPTIONS,
            )
            baseline = min(baseline, (time.perf_counter() - t) / frames)
        with av.open(io.BytesIO(ts), "r", format="mpegts") as c:
            images = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        burn = BurnIn(mark)
        t = time.perf_counter()
        burn.overlay(width, height)
        setup = time.perf_counter() - t
        for _ in range(REPEATS):
            copies = [image.copy() for image in images]
            t = time.perf_counter()
            for i, image in enumerate(copies):
                burn(image, i / 30)
            per_frame = min(per_frame, (time.perf_counter() - t) / len(copies))
        lines.append(
            f"watermark {width}x{height}: {per_frame * 1000:6.2f} ms a frame "
            f"({per_frame / baseline:.0%} of decoding and encoding it, {baseline * 1000:.1f} ms); "
            f"overlay drawn once in {setup * 1000:.0f} ms"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--watermark-only", action="store_true", help="only the mark per frame")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.dir or tempfile.mkdtemp(prefix="viewing-bench-"))
    marks = watermark_cost(root / "django")
    if args.watermark_only:
        print("\n".join(marks))
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
        return 0
    from playwright.sync_api import sync_playwright
    from web_support import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Server, build_site, make_ts

    from vault.media import remux_to_mp4

    try:
        t = time.perf_counter()
        ts = make_ts(args.seconds, (args.width, args.height))
        site = build_site(root / "site", seconds=args.seconds, ts=ts)
        print(
            f"built a {args.seconds} s {args.width}x{args.height} recording in a sealed "
            f"store and seeded the back office in {time.perf_counter() - t:.1f} s"
        )
        plain = root / "plain"
        plain.mkdir()
        (plain / "footage.ts").write_bytes(ts)
        del ts
        remux_to_mp4(plain / "footage.ts", plain / "footage.mp4")
        server = Server(site.home, root / "server.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    base = baseline(browser, plain / "footage.mp4")
                    first, seek, path = viewing(
                        browser, server, site.recent, PASSWORD, args.seconds / 2
                    )
                finally:
                    browser.close()
        finally:
            server.stop()
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"machine load average {load:.1f} on {os.cpu_count()} cores (other work shares them)")
    print(f"baseline  plain local MP4, first frame      {base:7.3f} s")
    print(
        f"viewing   start to first watermarked frame {first:7.3f} s  "
        f"({first / base:.1f}x baseline; {path})"
    )
    print(f"seek      to the middle                    {seek:7.3f} s")
    print("\n".join(marks))
    verdict = "met" if first < GOAL_SECONDS else "MISSED"
    print(
        f"goal: first frame < {GOAL_SECONDS:.0f} s for {args.seconds} s "
        f"{args.width}x{args.height}: {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
