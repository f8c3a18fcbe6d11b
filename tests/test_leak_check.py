"""The leak check of tests/conftest.py, run on a small test project of its own.

Every test must stop the threads and processes it starts before the check looks, and
the verdict must not depend on the order in which pytest finishes fixtures: a plugin's
fixture is set up before the conftest's and finished after them, a module's fixture
with the module's last test, the session's with the last test of all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

HERE = Path(__file__).resolve().parent

FIXTURES = '''

def _thread(name):
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name=name, daemon=True)
    thread.start()
    return thread, stop


@pytest.fixture(scope="session")
def server():
    """Started with the first test that needs it, stopped after the last of all."""
    thread, stop = _thread("session-server")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield
    proc.kill()
    proc.wait()
    stop.set()
    thread.join()


LEFT = []


def pytest_unconfigure(config):
    for proc in LEFT:
        proc.kill()
        proc.wait()
'''

PLUGIN = """
import threading

import pytest


@pytest.fixture(autouse=True)
def worker_around_each_test(request):
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="plugin-worker", daemon=True)
    thread.start()
    yield
    if request.node.name != "test_the_plugin_leaves_its_worker":
        stop.set()
        thread.join()
"""

TESTS = {
    "test_a.py": """
import subprocess
import sys

from conftest import LEFT, _thread


def test_a_server_user(server):
    pass


def test_stops_what_it_starts():
    thread, stop = _thread("own")
    stop.set()
    thread.join()


def test_leaves_a_thread_and_a_process_running():
    _thread("own-left-running")
    LEFT.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))


def test_the_plugin_leaves_its_worker():
    pass
""",
    "test_b.py": """
import pytest

from conftest import _thread


@pytest.fixture(scope="module")
def left_running():
    _thread("module-left-running")  # never stopped
    yield


def test_first(left_running):
    pass


def test_second(left_running):
    pass  # the module's fixture ends with this test: its thread must be gone
""",
    "test_c.py": """
def test_the_last_server_user(server):
    pass  # the session's fixture ends with this test and stops what it started
""",
}


def test_the_check_holds_whatever_order_fixtures_finish_in(tmp_path: Path) -> None:
    conftest = (HERE / "conftest.py").read_text()
    conftest = conftest.replace("import os\n", "import os\nimport subprocess\nimport sys\n", 1)
    # A shorter grace for what is ending keeps this run fast; every leak here never ends.
    conftest = conftest.replace("LEAK_GRACE_SECONDS = 3.0", "LEAK_GRACE_SECONDS = 0.3", 1)
    (tmp_path / "conftest.py").write_text(conftest + FIXTURES)
    (tmp_path / "early_plugin.py").write_text(PLUGIN)
    for name, text in TESTS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "early_plugin",
            "-p",
            "no:cacheprovider",
            f"--junit-xml={report}",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    errors: dict[str, str] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        assert case.find("failure") is None, run.stdout
        error = case.find("error")
        errors[name] = "" if error is None else str(error.get("message"))
    assert errors.pop("test_b.test_second") == (
        "failed on teardown with \"Failed: test leaked threads ['module-left-running'] and "
        'child processes []"'
    ), run.stdout
    assert errors.pop("test_a.test_the_plugin_leaves_its_worker") == (
        "failed on teardown with \"Failed: test leaked threads ['plugin-worker'] and "
        'child processes []"'
    ), run.stdout
    message = errors.pop("test_a.test_leaves_a_thread_and_a_process_running")
    assert re.fullmatch(
        r"failed on teardown with \"Failed: test leaked threads \['own-left-running'\] and "
        rf"child processes \['\d+ \({re.escape(sys.executable)} -c import time; "
        r"time\.sleep\(60\)\)'\]\"",
        message,
    ), run.stdout
    # The session's server across modules, a test that stops its own thread, a module's
    # fixture before its last test, the plugin's fixture that stops its worker.
    assert errors == dict.fromkeys(
        [
            "test_a.test_a_server_user",
            "test_a.test_stops_what_it_starts",
            "test_b.test_first",
            "test_c.test_the_last_server_user",
        ],
        "",
    ), run.stdout
