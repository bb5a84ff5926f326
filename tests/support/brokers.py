"""A private Mosquitto per test (for tests that stop and restart it) and polling waits; shared by the
MQTT adapter tests and the distributed platform tests (the fixture is in tests/conftest.py)."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_BROKER = "mqtt://127.0.0.1:1883"
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds (a bound, not a timing)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next((p for p in MOSQUITTO_PATHS if Path(p).exists()), None)
    if found is None:
        pytest.fail("mosquitto is not installed: these tests need a real broker (apt-get install mosquitto)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateBroker:
    """A Mosquitto of our own on a free port, with on-disk persistence, that a test may stop and restart."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"user {getpass.getuser()}\n"  # as root, Mosquitto would switch user and lose write access here
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "max_queued_messages 1000000\n"  # the default 1000 would drop a stopped centre's backlog
            f"log_dest file {directory}/mosquitto.log\n"
        )
        self._binary = mosquitto_binary()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([self._binary, "-c", str(self.conf)])
        wait_for(self._accepts, 10.0, f"mosquitto to listen on port {self.port}")

    def stop(self) -> None:
        """SIGTERM, so Mosquitto writes its persistence file before exiting."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)
        self.process = None

    def _accepts(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"mosquitto exited with {self.process.returncode}; see {self.directory}/mosquitto.log")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False
