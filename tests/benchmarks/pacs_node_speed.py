"""Benchmark ``tumorseg listen``: time from a study's last instance received to its SEG stored in the PACS.

A real Orthanc (tests/orthanc_server.py) holds the 19-series clinical study that the tests derive
(tests/dicom_studies.py), or ``--study DIR``. One node runs for the whole benchmark, as in a
department, with its workers warmed by a first study (the ambiguous shared series, which fails at
the series choice at once). Each round, Orthanc makes a copy of the study with new UIDs (its
``/modify``: a new study to the node) and sends it to the node; the time runs from the last
instance the node received (its own record, ``last_instance`` in the request's state file) to the
moment the SEG is found in Orthanc through its REST API (polled every 50 ms). In the same round,
``tumorseg detect --study DIR --dicom-seg`` runs on the same study as a cold command (start-up and
model loading included, as a user waits for it). Prints the medians, and what the node's time is
made of: the quiet time (``--quiet-time``, a pure wait for the study to be complete), the worker's
detect, and the rest (taking the study, sending the SEG).

    python tests/benchmarks/pacs_node_speed.py [--rounds 3] [--quiet-time 5] [--study DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from orthanc_server import Orthanc, free_port, wait_for  # noqa: E402

NODE_AE, PACS_AE = "TUMORSEG", "ORTHANC"
SHARED_SERIES = ROOT / "tests" / "data" / "dicom" / "PGBM-001_T1post"
LIMIT = 3600.0  # seconds: a last guard on every wait


class Node:
    """The ``tumorseg listen`` process, and the state files it writes."""

    def __init__(self, folder: Path, port: int, orthanc: Orthanc, quiet_time: float) -> None:
        self.folder = folder
        folder.mkdir()
        self.stderr = open(folder.parent / "node.stderr", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monai_core", "listen", "-o", str(folder), "--allow", PACS_AE,
             "--ae-title", NODE_AE, "--port", str(port), "--bind", "127.0.0.1",
             "--send-to", f"{PACS_AE}@127.0.0.1:{orthanc.dicom_port}", "--quiet-time", str(quiet_time)],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdin=subprocess.DEVNULL,
            stdout=self.stderr, stderr=self.stderr)
        wait_for(lambda: "listening as" in self.log(), "the node to listen", LIMIT, self.process)

    def log(self) -> str:
        path = self.folder / "node.log"
        return path.read_text() if path.exists() else ""

    def state(self, case_id: str) -> dict | None:
        try:
            return json.loads((self.folder / "state" / f"{case_id}.json").read_text())
        except (OSError, ValueError):
            return None

    def wait_state(self, case_id: str, states: tuple[str, ...]) -> dict:
        return wait_for(lambda: (s := self.state(case_id)) is not None and s["state"] in states and s,
                        f"case {case_id} to be {' or '.join(states)}", LIMIT, self.process)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=LIMIT)
        self.stderr.close()


def study_uid_of(orthanc: Orthanc, orthanc_id: str) -> str:
    return orthanc.get(f"/studies/{orthanc_id}")["MainDicomTags"]["StudyInstanceUID"]


def node_round(orthanc: Orthanc, node: Node, original: str, number: int) -> tuple[float, float]:
    """One study through the node: (seconds from its last instance received to its SEG in Orthanc, worker's detect seconds)."""
    copy = orthanc.post(f"/studies/{original}/modify", {"Replace": {"StudyDescription": f"benchmark round {number}"}})
    uid = study_uid_of(orthanc, copy["ID"])
    job = orthanc.store_to("tumorseg", copy["ID"], asynchronous=True)["ID"]
    stored = wait_for(lambda: orthanc.series_of(uid, "SEG") and time.time(), "the SEG in Orthanc", LIMIT,
                      node.process, interval=0.05)
    if orthanc.get(f"/jobs/{job}")["State"] != "Success":
        raise SystemExit(f"Orthanc's transfer of round {number} did not succeed: {orthanc.get(f'/jobs/{job}')}")
    state = node.wait_state(uid, ("sent",))
    return stored - state["last_instance"], float(state["row"]["seconds"])


def detect_round(study: Path, out: Path) -> float:
    """``tumorseg detect --study`` on the same study, as a cold command: its wall time."""
    command = [sys.executable, "-m", "monai_core", "detect", "--study", str(study), "-o", str(out),
               "--case-id", "study", "--dicom-seg", "--progress", "none"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or not (out / "study" / "segmentation.dcm").is_file():
        raise SystemExit(f"detect failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="studies through the node and detects; medians are reported")
    parser.add_argument("--quiet-time", type=float, default=5.0, help="the node's --quiet-time (part of its time)")
    parser.add_argument("--study", type=Path, help="a DICOM study folder with a tumour (default: the tests' derived study)")
    args = parser.parse_args()
    if args.rounds < 1 or not args.quiet_time > 0:
        parser.error("--rounds must be at least 1 and --quiet-time positive")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        study = args.study
        if study is None:
            import dicom_studies

            study = tmp / "study"
            dicom_studies.philips_study(study)
        node_port = free_port()
        orthanc = Orthanc(tmp / "orthanc", {"tumorseg": (NODE_AE, node_port)}).start()
        node = None
        try:
            original = orthanc.upload(study)
            shared = orthanc.upload(SHARED_SERIES)
            node = Node(tmp / "node", node_port, orthanc, args.quiet_time)
            orthanc.store_to("tumorseg", shared)  # warms the workers: fails at the series choice once they are ready
            node.wait_state(study_uid_of(orthanc, shared), ("failed",))
            print(f"study {study}; node quiet time {args.quiet_time:g} s; {args.rounds} round(s)", flush=True)
            latencies, detects, clis = [], [], []
            for number in range(1, args.rounds + 1):
                latency, detect = node_round(orthanc, node, original, number)
                cli = detect_round(study, tmp / f"detect_{number}")
                latencies.append(latency)
                detects.append(detect)
                clis.append(cli)
                print(f"round {number}: node {latency:.1f} s (its detect {detect:.1f} s); "
                      f"tumorseg detect --study {cli:.1f} s", flush=True)
        finally:
            if node is not None:
                node.stop()
            orthanc.stop()
    latency, detect, cli = (statistics.median(v) for v in (latencies, detects, clis))
    print(f"median, last instance received -> SEG stored in Orthanc: {latency:.1f} s "
          f"= quiet time {args.quiet_time:g} s + worker's detect {detect:.1f} s + the rest {latency - args.quiet_time - detect:.1f} s")
    print(f"median, tumorseg detect --study --dicom-seg (cold command, nothing sent): {cli:.1f} s")


if __name__ == "__main__":
    main()
