"""A real Orthanc PACS for tests and benchmarks: started on the loopback with a temporary configuration.

Orthanc is Debian's ``orthanc`` package (``.ci/run`` installs it). Each :class:`Orthanc` has its own
configuration, storage folder and free ports, accepts DICOM only from the modalities it is told
about, at 127.0.0.1, and serves its REST API to this machine only. :meth:`Orthanc.stop` and
:meth:`Orthanc.start` again keep its storage, as a PACS that goes down and comes back does.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["Orthanc", "free_port", "wait_for", "ORTHANC_BINARY"]

ORTHANC_BINARY = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


def free_port() -> int:
    """A TCP port free on this machine now (bound to all interfaces and released)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def wait_for(condition, what: str, timeout: float, process=None, interval: float = 0.2):
    """Poll ``condition()`` until it returns something true, and return it; fail after ``timeout`` s.

    ``timeout`` is a last guard for a test that would otherwise hang, not a measure of speed:
    the tests wait for events (a state file, a log line, an instance in Orthanc). ``process``: a
    Popen whose death ends the wait at once, with its exit code in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit code {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Orthanc:
    """One Orthanc server; ``modalities`` is {name: (AE title, port)} of the DICOM nodes at 127.0.0.1 it knows."""

    def __init__(self, folder: Path, modalities: dict[str, tuple[str, int]], ae_title: str = "ORTHANC") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ae_title = ae_title
        self.http_port, self.dicom_port = free_port(), free_port()
        self.config = self.folder / "orthanc.json"
        self.config.write_text(json.dumps({
            "Name": "TumorSeg test PACS",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "Plugins": [],
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,  # REST API for this machine only
            "AuthenticationEnabled": False,
            "DicomPort": self.dicom_port,
            "DicomAet": ae_title,
            "DicomAlwaysAllowStore": False,  # C-STORE only from the modalities below
            "DicomCheckModalityHost": True,
            "DicomModalities": {name: [aet, "127.0.0.1", port] for name, (aet, port) in modalities.items()},
            "DicomScuTimeout": 30,
            "SaveJobs": False,
            "ConcurrentJobs": 1,
        }, indent=2))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 120) -> "Orthanc":
        log = open(self.folder / "orthanc.log", "ab")
        self.process = subprocess.Popen([ORTHANC_BINARY, str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        log.close()
        wait_for(self._answers, "Orthanc's REST API", timeout, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "Orthanc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answers(self) -> bool:
        try:
            self.get("/system")
            return True
        except (OSError, urllib.error.URLError):
            return False

    # --- REST -----------------------------------------------------------------------------------
    def request(self, method: str, path: str, body=None, timeout: float = 600):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content = response.read()
        kind = response.headers.get("Content-Type", "")
        return json.loads(content) if "json" in kind else content

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body=None, timeout: float = 600):
        return self.request("POST", path, body, timeout)

    def upload(self, folder: Path) -> str:
        """Store every DICOM file under ``folder`` (as a modality would); returns the study's Orthanc id."""
        study = None
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                study = self.post("/instances", path.read_bytes())["ParentStudy"]
        return study

    def study_id(self, study_uid: str) -> str | None:
        found = self.post("/tools/lookup", study_uid.encode())
        return next((item["ID"] for item in found if item["Type"] == "Study"), None)

    def store_to(self, modality: str, study_id: str, asynchronous: bool = False) -> dict:
        """C-STORE the study to one of its modalities (``/modalities/.../store``); a job when ``asynchronous``."""
        return self.post(f"/modalities/{modality}/store", {"Resources": [study_id], "Asynchronous": asynchronous,
                                                           "Synchronous": not asynchronous})

    def series_of(self, study_uid: str, modality: str) -> list[dict]:
        """The study's series of one modality (SEG, SR, MR...), each with its instances' Orthanc ids."""
        study = self.study_id(study_uid)
        if study is None:
            return []
        return [s for s in self.get(f"/studies/{study}/series") if s["MainDicomTags"].get("Modality") == modality]

    def instance_file(self, instance_id: str) -> bytes:
        return self.get(f"/instances/{instance_id}/file")
