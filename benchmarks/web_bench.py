"""Web benchmark: the back office on 1, 2 and 4 gunicorn workers, as ratios to 1 worker.

One run, one machine, one site (a small sealed recording, the seeded demo users) on a
throwaway PostgreSQL cluster (socket only, fsync off), served by `bodycam vault serve
--workers N` on 127.0.0.1:

- catalog pages per second: CLIENTS signed-in sessions fetch the Recordings page as fast
  as they are answered, for PAGE_SECONDS (at most PAGE_REQUESTS each);
- viewings started within 2 s: STARTS signed-in sessions press "Start viewing" at the
  same moment (second person's sign-in, pair check, fetch, verify, decrypt, the row,
  the audit entries, the encoder's slot); a start counts when its redirect to the viewing
  arrived within 2 s of the moment (a busy answer, 503, does not). Every viewing is ended
  afterwards.

Each figure for 2 and 4 workers is reported as a multiple of the 1-worker figure of the
same run. The goal is scaling with the cores there are: at least 0.7 x min(workers,
cores) of the 1-worker figure, printed as met or MISSED (never an exit code).

Usage: python benchmarks/web_bench.py [--workers 1,2,4] [--clients 8] [--starts 8]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests" / "vault", ROOT / "tests" / "web"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

PAGE_SECONDS = 5.0
PAGE_REQUESTS = 5000  # per client: a bound on the loop besides its time
START_WINDOW = 2.0
GOAL_SHARE = 0.7


def pages_per_second(base: str, clients: int) -> float:
    from web_support import HttpSession

    sessions = [HttpSession(base, "cees") for _ in range(clients)]
    counts = [0] * clients
    failures: list[int] = []
    go = threading.Event()

    def load(i: int) -> None:
        go.wait()
        end = time.monotonic() + PAGE_SECONDS
        for _ in range(PAGE_REQUESTS):
            if time.monotonic() >= end:
                return
            status, _, body = sessions[i].request("GET", "/recordings/")
            if status == 200 and b"<table" in body:
                counts[i] += 1
            else:
                failures.append(status)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    go.set()
    for t in threads:
        t.join(timeout=PAGE_SECONDS + 120)
    elapsed = time.monotonic() - t0
    if failures:
        print(f"  {len(failures)} catalog requests failed (status {sorted(set(failures))})")
    return sum(counts) / elapsed


def one_start(base: str, recording: str) -> float:
    """Seconds one viewing takes to start on an idle server (for reading the figures)."""
    from web_support import PASSWORD, HttpSession

    session = HttpSession(base, "cees")
    form = {"purpose": "complaint", "second_username": "sam", "second_password": PASSWORD}
    t = time.monotonic()
    status, headers, _ = session.post(f"/recordings/{recording}/view", form)
    took = time.monotonic() - t
    if status == 302:
        vid = headers["Location"].rstrip("/").rsplit("/", 1)[1]
        session.post(f"/viewings/{vid}/event", {"event": "end"})
    return took


def viewings_started(base: str, recording: str, starts: int) -> tuple[int, int, float]:
    """(started within the window, answered busy, seconds until the last answer)."""
    from web_support import PASSWORD, HttpSession

    sessions = [HttpSession(base, "cees") for _ in range(starts)]
    form = {"purpose": "complaint", "second_username": "sam", "second_password": PASSWORD}
    answers: list[tuple[int, float, str]] = []
    lock = threading.Lock()
    go = threading.Event()

    def start(i: int) -> None:
        go.wait()
        t = time.monotonic()
        status, headers, _ = sessions[i].post(f"/recordings/{recording}/view", form)
        with lock:
            answers.append((status, time.monotonic() - t, headers.get("Location", "")))

    threads = [threading.Thread(target=start, args=(i,)) for i in range(starts)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(timeout=120)
    within = sum(1 for s, dt, _ in answers if s == 302 and dt <= START_WINDOW)
    busy = sum(1 for s, _, _ in answers if s == 503)
    last = max((dt for _, dt, _ in answers), default=0.0)
    for session, (status, _, location) in zip(sessions, answers, strict=False):
        if status == 302:  # end it (any session may not: its own session ends it)
            vid = location.rstrip("/").rsplit("/", 1)[1]
            for s in sessions:
                if s.post(f"/viewings/{vid}/event", {"event": "end"})[0] == 302:
                    break
        del session
    return within, busy, last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--starts", type=int, default=8)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    counts = [int(w) for w in args.workers.split(",")]
    if counts[0] != 1:
        counts.insert(0, 1)  # the baseline
    from pg_support import start_cluster
    from web_support import Server, build_site

    root = Path(args.dir or tempfile.mkdtemp(prefix="web-bench-"))
    cluster = start_cluster()
    results: dict[int, tuple[float, int, int, float]] = {}
    try:
        cluster.create_database("web_bench")
        url = cluster.url("web_bench")
        t = time.perf_counter()
        site = build_site(root / "site", seconds=4, size=(320, 180), database=url)
        print(f"seeded a back office on PostgreSQL in {time.perf_counter() - t:.1f} s")
        for n in counts:
            server = Server(
                site.home, root / f"server-{n}.log", env={"BODYCAM_VAULT_DATABASE": url}, workers=n
            )
            try:
                pages = pages_per_second(server.url, args.clients)
                alone = one_start(server.url, site.recent)
                within, busy, last = viewings_started(server.url, site.recent, args.starts)
            finally:
                server.stop()
            results[n] = (pages, within, busy, last)
            print(
                f"  {n} worker(s): {pages:7.1f} catalog pages/s; one viewing alone starts in "
                f"{alone:.2f} s; {within}/{args.starts} started at once within "
                f"{START_WINDOW:.0f} s ({busy} busy; last answer {last:.2f} s)"
            )
    finally:
        cluster.stop()
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    print(f"machine load average {load:.1f} on {cores} cores (other work shares them)")
    base_pages, base_within = results[1][0], results[1][1]
    for n in counts[1:]:
        pages, within, _, _ = results[n]
        goal = GOAL_SHARE * min(n, cores)
        for what, ratio in (
            ("catalog pages/s", pages / base_pages if base_pages else None),
            ("viewings started within 2 s", within / base_within if base_within else None),
        ):
            if ratio is None:  # nothing to divide by: the baseline did none
                print(f"{n} workers  {what:30s}   n/a (1 worker: none)  (goal: MISSED)")
                continue
            verdict = "met" if ratio >= goal else "MISSED"
            print(
                f"{n} workers  {what:30s} {ratio:5.2f}x 1 worker  (goal >= {goal:.1f}x: {verdict})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
