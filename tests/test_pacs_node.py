"""``tumorseg listen`` and ``tumorseg send`` against a real PACS: Debian's Orthanc, started on the loopback.

Orthanc holds the studies and sends them to the node with its REST API (``/modalities/.../store``),
as a PACS operator or a routing rule would; the node runs the real networks and sends the SEG and
SR back; the tests read them through Orthanc's REST API. The studies are the repository's shared
DICOM series (no FLAIR: an ambiguous study) and a 19-series clinical study derived at test time
(tests/dicom_studies.py). Every wait is for an event (a state file, a log line, a series in
Orthanc) with a generous last-resort limit: detect is slow on a busy 2-core machine. To keep the
number of detects small, one node run (:func:`round_trip`) serves several tests, and the kill and
restart test runs the study once more.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import dicom_studies as ds
from conftest import DATA, ROOT, run_cli
from monai_core.errors import InputError
from monai_core.pacs import parse_address
from monai_core.pacs.outbox import retry_delay
from orthanc_server import ORTHANC_BINARY, Orthanc, free_port, wait_for
from test_batch import alive, children_of

NODE_AE, PACS_AE = "TUMORSEG", "ORTHANC"
SHARED_SERIES = DATA / "dicom" / "PGBM-001_T1post"  # a post-contrast T1 alone: no FLAIR to choose
DETECT_LIMIT = 1500.0  # seconds: a last guard on waits that include model loads and detects on a busy machine
EVENT_LIMIT = 300.0  # seconds: a last guard on waits for the node's bookkeeping and Orthanc's transfers
# on a user's machine without Orthanc these tests skip; in CI (.ci/run installs it) a skip is a failure
needs_orthanc = pytest.mark.skipif(not os.access(ORTHANC_BINARY, os.X_OK),
                                   reason="Orthanc is not installed (Debian package orthanc; .ci/run installs it)")


# ----------------------------------------------------------------------------------------- helpers


class Node:
    """A ``tumorseg listen`` process on 127.0.0.1, and what it leaves in its folder."""

    def __init__(self, folder: Path, port: int, *options: str, allow: str = PACS_AE) -> None:
        self.folder, self.port = folder, port
        self.command = [sys.executable, "-m", "monai_core", "listen", "-o", str(folder), "--allow", allow,
                        "--ae-title", NODE_AE, "--port", str(port), "--bind", "127.0.0.1", *options]
        self.process: subprocess.Popen | None = None

    def start(self) -> "Node":
        starts = self.log().count("listening as")
        stderr = open(self.folder.parent / f"{self.folder.name}.stderr", "ab")
        self.process = subprocess.Popen(self.command, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
                                        stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        stderr.close()
        wait_for(lambda: self.log().count("listening as") > starts, "the node to listen", EVENT_LIMIT, self.process)
        return self

    def log(self) -> str:
        path = self.folder / "node.log"
        return path.read_text() if path.exists() else ""

    def stderr(self) -> str:
        return (self.folder.parent / f"{self.folder.name}.stderr").read_text()

    def state(self, case_id: str) -> dict | None:
        try:
            return json.loads((self.folder / "state" / f"{case_id}.json").read_text())
        except (OSError, ValueError):
            return None

    def wait_state(self, case_id: str, condition, what: str, limit: float = DETECT_LIMIT) -> dict:
        return wait_for(lambda: (s := self.state(case_id)) is not None and condition(s) and s, what, limit, self.process)

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would; its workers must die with it."""
        workers = children_of(self.process.pid)
        self.process.kill()
        self.process.wait()
        wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to die with the node", EVENT_LIMIT)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=EVENT_LIMIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def study_uid(folder: Path) -> str:
    return pydicom.dcmread(next(folder.rglob("*.dcm")), stop_before_pixels=True).StudyInstanceUID


def patient_identity(folder: Path) -> tuple[str, str]:
    first = pydicom.dcmread(next(folder.rglob("*.dcm")), stop_before_pixels=True)
    return str(first.PatientName), str(first.PatientID)


def instances(orthanc: Orthanc, series: dict) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(io.BytesIO(orthanc.instance_file(i))) for i in series["Instances"]]


@pytest.fixture(scope="module")
def derived_study(tmp_path_factory) -> tuple[Path, dict[int, str]]:
    """The 19-series Philips study, built once for this module from the real sample volumes."""
    folder = tmp_path_factory.mktemp("derived") / "study"
    return folder, ds.philips_study(folder)


# ----------------------------------------------------------------------------------------- no network


def test_addresses_and_ae_titles():
    address = parse_address("ORTHANC@127.0.0.1:4242")
    assert (address.ae_title, address.host, address.port) == ("ORTHANC", "127.0.0.1", 4242)
    assert str(parse_address("PACS@[::1]:104")) == "PACS@[::1]:104" and parse_address("PACS@[::1]:104").host == "::1"
    for bad in ("ORTHANC", "127.0.0.1:4242", "@host:1", "A@host", "A@host:0", "A@host:70000", "A@::1:104",
                "THIS_TITLE_IS_TOO_LONG@h:1", "A\\B@h:1"):
        with pytest.raises(InputError):
            parse_address(bad)


def test_failed_sends_back_off_up_to_the_longest_wait():
    assert [retry_delay(n, 30, 3600) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(8, 30, 3600) == 3600 and retry_delay(10_000, 30, 3600) == 3600


def test_a_study_sent_again_or_with_the_nodes_own_seg_and_sr_is_not_run_again(tmp_path):
    """Reception alone, with C-STORE events as pynetdicom gives them: a PACS that routes every stable study
    to the node sends it back the study with the node's SEG and SR; that must not start a second request."""
    from types import SimpleNamespace

    from monai_core.pacs.reception import STORED, Reception

    lines = []
    reception = Reception(tmp_path / "received", 1.0, {}, lambda uid: False, lambda uid, text: lines.append(text))
    later = lambda: time.monotonic() + 60  # noqa: E731 - past the quiet time, without waiting for it

    def transfer(datasets):
        assoc = SimpleNamespace(requestor=SimpleNamespace(ae_title=PACS_AE), is_released=True)
        for dataset in datasets:
            encoded = io.BytesIO()
            dataset.save_as(encoded, enforce_file_format=True)
            event = SimpleNamespace(dataset=dataset, assoc=assoc, encoded_dataset=lambda data=encoded.getvalue(): data,
                                    request=SimpleNamespace(AffectedSOPClassUID=dataset.SOPClassUID))
            assert reception.store(event) == STORED
        reception.ended(SimpleNamespace(assoc=assoc))

    images = [pydicom.dcmread(p) for p in sorted(SHARED_SERIES.glob("*.dcm"))]
    uid = images[0].StudyInstanceUID
    transfer(images)
    taken = []
    assert reception.take_quiet(lambda *request: taken.append(request), later()) == 1
    assert len(taken[0][1]) == len(images) == len(list((tmp_path / "received" / uid).glob("*.dcm")))

    results = []
    for sop_class, modality in (("1.2.840.10008.5.1.4.1.1.66.4", "SEG"), ("1.2.840.10008.5.1.4.1.1.88.34", "SR")):
        result = pydicom.dcmread(SHARED_SERIES / "1-07.dcm")  # the same study, as a SEG or SR of it
        result.SOPClassUID = result.file_meta.MediaStorageSOPClassUID = sop_class
        result.SOPInstanceUID = result.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        result.SeriesInstanceUID, result.Modality = pydicom.uid.generate_uid(), modality
        results.append(result)
    transfer(images + results)  # the study again, with the node's results in it
    assert reception.take_quiet(lambda *request: taken.append(request), later()) == 0 and len(taken) == 1
    assert len(list((tmp_path / "received" / uid).glob("*.dcm"))) == len(images)  # the SEG and SR not kept
    assert "2 instances from ORTHANC that are not MR images (SEG, SR...): acknowledged, not kept" in lines
    assert reception.waiting() == []


def test_bad_options_stop_with_one_line_before_any_work(tmp_path):
    node = tmp_path / "node"
    for options, message in [
        (["--allow", PACS_AE, "--send-to", "nonsense"], "expected AE@HOST:PORT"),
        (["--allow", "A\\B"], "invalid calling AE title"),
        (["--allow", PACS_AE, "--quiet-time", "0"], "--quiet-time must be positive"),
    ]:
        result = run_cli("listen", "-o", node, *options, "--port", free_port(), "--bind", "127.0.0.1")
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr

    with socket.socket() as busy:  # the port is taken: refused before the models load
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_cli("listen", "-o", node, "--allow", PACS_AE, "--port", busy.getsockname()[1], "--bind", "127.0.0.1")
    assert result.returncode == 2 and "cannot listen on 127.0.0.1" in result.stderr.splitlines()[-1], result.stderr

    import fcntl

    with open(node / ".tumorseg-listen.lock", "a") as lock:  # a node already runs on this folder
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("listen", "-o", node, "--allow", PACS_AE, "--port", free_port(), "--bind", "127.0.0.1")
    assert result.returncode == 2 and "another tumorseg listen is running" in result.stderr, result.stderr


def test_send_refuses_what_it_cannot_send(tmp_path):
    destination = f"{PACS_AE}@127.0.0.1:{free_port()}"  # nothing listens there
    result = run_cli("send", tmp_path / "missing", "--to", destination)
    assert result.returncode == 2 and "no such case folder" in result.stderr
    (tmp_path / "case").mkdir()
    result = run_cli("send", tmp_path / "case", "--to", destination)
    assert result.returncode == 2 and "not a finished case folder" in result.stderr
    report = {"case_id": "case", "tumor_detected": False, "tumor_volume_ml": 0.0, "slices": []}
    (tmp_path / "case" / "report.json").write_text(json.dumps(report))
    result = run_cli("send", tmp_path / "case", "--to", destination)
    assert result.returncode == 2 and "holds no segmentation.dcm" in result.stderr
    shutil.copy(SHARED_SERIES / "1-07.dcm", tmp_path / "case" / "segmentation.dcm")  # any DICOM file will do
    result = run_cli("send", tmp_path / "case", "--to", destination, "--timeout", "30")
    assert result.returncode == 2 and f"cannot reach {destination}" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


# ----------------------------------------------------------------------------------------- a refused caller


@needs_orthanc
def test_a_calling_ae_title_not_allowed_is_refused(tmp_path):
    node_port = free_port()
    with Orthanc(tmp_path / "orthanc", {"tumorseg": (NODE_AE, node_port)}) as orthanc:
        study = orthanc.upload(SHARED_SERIES)
        node = Node(tmp_path / "node", node_port, allow="SCANNER1").start()
        try:
            with pytest.raises(urllib.error.HTTPError):  # Orthanc's C-STORE fails: its association is rejected
                orthanc.store_to("tumorseg", study)
            wait_for(lambda: "refused an association from 'ORTHANC'" in node.log(), "the refusal in the log",
                     EVENT_LIMIT, node.process)
            assert "not in --allow" in node.log()
            assert list((tmp_path / "node" / "received").iterdir()) == []
            assert list((tmp_path / "node" / "state").iterdir()) == []
        finally:
            assert node.stop() == 0
    assert node.log().rstrip().endswith("stopped")


# ----------------------------------------------------------------------------------------- the round trip


@dataclass
class RoundTrip:
    orthanc: Orthanc
    node: Node
    study_uid: str  # the derived study
    series: dict[int, str]  # its series numbers -> SeriesInstanceUIDs
    study_folder: Path
    shared_uid: str  # the shared series' study: ambiguous


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory, derived_study):
    """One node run: Orthanc sends the ambiguous shared series and the derived study to the node; the
    PACS goes down while the node runs detect, so that the first sends fail, and comes back up;
    the SEG and SR then arrive in Orthanc. The tests below look at what it left."""
    folder = tmp_path_factory.mktemp("round_trip")
    study_folder, series = derived_study
    node_port = free_port()
    orthanc = Orthanc(folder / "orthanc", {"tumorseg": (NODE_AE, node_port)}).start()
    node = Node(folder / "node", node_port, "--send-to", f"{PACS_AE}@127.0.0.1:{orthanc.dicom_port}", "--dicom-sr",
                "--quiet-time", "2", "--retry-after", "1", "--retry-max", "4")
    try:
        shared = orthanc.upload(SHARED_SERIES)
        derived = orthanc.upload(study_folder)
        node.start()
        shared_uid, uid = study_uid(SHARED_SERIES), study_uid(study_folder)

        orthanc.store_to("tumorseg", shared)
        node.wait_state(shared_uid, lambda s: s["state"] == "failed", "the ambiguous study to fail")

        orthanc.store_to("tumorseg", derived)
        node.wait_state(uid, lambda s: s["state"] == "running", "the derived study to run")
        orthanc.stop()  # the PACS goes down before the node has anything to send
        node.wait_state(uid, lambda s: s["attempts"] >= 2, "two failed sends")
        orthanc.start()  # and comes back, with the studies it stored
        node.wait_state(uid, lambda s: s["state"] == "sent", "the results to be sent")
        wait_for(lambda: f"case {uid}: sent " in node.log(), "the send in the log", EVENT_LIMIT, node.process)
        yield RoundTrip(orthanc, node, uid, series, study_folder, shared_uid)
    finally:
        node.stop()
        orthanc.stop()


@needs_orthanc
def test_seg_and_sr_come_back_into_the_study(round_trip):
    orthanc, uid = round_trip.orthanc, round_trip.study_uid
    [seg_series] = orthanc.series_of(uid, "SEG")
    [sr_series] = orthanc.series_of(uid, "SR")
    assert seg_series["ParentStudy"] == sr_series["ParentStudy"] == orthanc.study_id(uid)  # beside the images
    [seg] = instances(orthanc, seg_series)
    [sr] = instances(orthanc, sr_series)
    flair_uid = round_trip.series[701]  # the FLAIR the series choice takes (the earlier T2W_FLAIR_TRA)
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == uid
    assert [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence] == [flair_uid]
    flair_files = sorted((round_trip.study_folder / "s0701").glob("*.dcm"))
    flair_sops = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in flair_files}
    referenced = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert referenced and referenced <= flair_sops
    [group] = hd.sr.srread(io.BytesIO(orthanc.instance_file(sr_series["Instances"][0]))).content \
        .get_volumetric_roi_measurement_groups()
    assert group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert group.referenced_segment.source_series_for_segmentation.value == flair_uid
    # the same files as the case folder the node wrote, as detect writes it
    case = round_trip.node.folder / "results" / uid
    assert pydicom.dcmread(case / "segmentation.dcm").SOPInstanceUID == seg.SOPInstanceUID
    assert json.loads((case / "report.json").read_text())["inputs"]["series_choice"]["flair"]["series_uid"] == flair_uid


@needs_orthanc
def test_the_seg_read_back_by_highdicom_lies_on_the_flair_grid(round_trip):
    orthanc, uid = round_trip.orthanc, round_trip.study_uid
    [seg_series] = orthanc.series_of(uid, "SEG")
    seg = hd.seg.segread(io.BytesIO(orthanc.instance_file(seg_series["Instances"][0])))
    volume = seg.get_volume()
    flair = hd.get_volume_from_series([pydicom.dcmread(p) for p in (round_trip.study_folder / "s0701").glob("*.dcm")])
    assert seg.FrameOfReferenceUID == pydicom.dcmread(next((round_trip.study_folder / "s0701").glob("*.dcm"))).FrameOfReferenceUID
    # SEG voxel -> FLAIR voxel: identity in-plane, a whole number of slices along the normal
    to_flair = np.linalg.inv(flair.affine) @ volume.affine
    np.testing.assert_allclose(to_flair[:3, :3], np.eye(3), atol=1e-4)
    np.testing.assert_allclose(to_flair[:3, 3], np.round(to_flair[:3, 3]), atol=1e-3)
    # voxel for voxel the node's segmentation.nii.gz, found through the physical positions
    mask = sitk.ReadImage(str(round_trip.node.folder / "results" / uid / "segmentation.nii.gz"))
    voxels = sitk.GetArrayFromImage(mask)
    points = volume.affine @ np.c_[np.argwhere(volume.array[..., 0] > 0), np.ones(int((volume.array > 0).sum()))].T
    found = np.array([mask.TransformPhysicalPointToContinuousIndex(p) for p in points[:3].T.tolist()])
    np.testing.assert_allclose(found, np.round(found), atol=1e-2)
    index = np.round(found).astype(int)
    assert len(index) == int(voxels.sum()) > 0
    assert voxels[index[:, 2], index[:, 1], index[:, 0]].all()


@needs_orthanc
def test_a_pacs_down_during_the_send_is_retried_with_back_off(round_trip):
    node, uid = round_trip.node, round_trip.study_uid
    state = node.state(uid)
    assert state["state"] == "sent" and state["to_send"] == [] and state["attempts"] >= 2
    assert state["sent"] == ["segmentation.dcm", "measurements.dcm"]
    log = node.log()
    assert f"case {uid}: send 1 failed: cannot reach {PACS_AE}@127.0.0.1:{round_trip.orthanc.dicom_port}" in log
    assert "next try in 1 s" in log and "next try in 2 s" in log  # the wait doubles
    assert log.count(f"case {uid}: sent segmentation.dcm, measurements.dcm") == 1
    [row] = [r for r in read_rows(node) if r["case_id"] == uid]
    assert row["status"] == "ok" and row["instances"] == "363" and row["sent"].startswith(f"sent to {PACS_AE}@")
    assert row["series"].startswith(f"flair=701 'T2W_FLAIR_TRA' {round_trip.series[701]}")


@needs_orthanc
def test_an_ambiguous_study_fails_with_its_candidates_and_nothing_is_sent(round_trip):
    node, orthanc, uid = round_trip.node, round_trip.orthanc, round_trip.shared_uid
    state = node.state(uid)
    assert state["state"] == "failed" and state["to_send"] == [] and state["sent"] == []
    [row] = [r for r in read_rows(node) if r["case_id"] == uid]
    series_uid = pydicom.dcmread(next(SHARED_SERIES.glob("*.dcm"))).SeriesInstanceUID
    assert row["status"] == "failed" and "no FLAIR" in row["error"]
    assert row["series"].startswith("flair candidates:") and series_uid in row["series"]
    assert orthanc.series_of(uid, "SEG") == [] and orthanc.series_of(uid, "SR") == []
    assert not (node.folder / "results" / uid).exists()
    assert f"case {uid}: failed, nothing is sent" in node.log()


def read_rows(node: Node) -> list[dict]:
    import csv

    with open(node.folder / "summary.csv", newline="") as stream:
        return list(csv.DictReader(stream))


@needs_orthanc
def test_no_patient_name_or_id_in_the_log_and_everything_private(round_trip):
    node = round_trip.node
    texts = {"node.log": node.log(), "stderr": node.stderr(), "summary.csv": (node.folder / "summary.csv").read_text()}
    for folder in (round_trip.study_folder, SHARED_SERIES):
        for value in patient_identity(folder):
            for name, text in texts.items():
                assert value not in text, f"{value!r} in {name}"
    for path in [node.folder, *node.folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    received = list((node.folder / "received" / round_trip.study_uid).glob("*.dcm"))
    assert len(received) == 363


@needs_orthanc
def test_send_by_hand_stores_the_results_again(round_trip):
    orthanc, uid = round_trip.orthanc, round_trip.study_uid
    [seg_series] = orthanc.series_of(uid, "SEG")
    [sr_series] = orthanc.series_of(uid, "SR")
    for series in (seg_series, sr_series):
        orthanc.request("DELETE", f"/series/{series['ID']}")
    assert orthanc.series_of(uid, "SEG") == []
    case = round_trip.node.folder / "results" / uid
    result = run_cli("send", case, "--to", f"{PACS_AE}@127.0.0.1:{orthanc.dicom_port}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"sent {name} to {PACS_AE}@127.0.0.1:{orthanc.dicom_port}"
                                          for name in ("segmentation.dcm", "measurements.dcm")]
    [seg] = instances(orthanc, orthanc.series_of(uid, "SEG")[0])
    assert seg.SOPInstanceUID == pydicom.dcmread(case / "segmentation.dcm").SOPInstanceUID
    assert len(orthanc.series_of(uid, "SR")) == 1


# ----------------------------------------------------------------------------------------- kill and restart


@needs_orthanc
def test_killed_during_reception_and_inference_it_finishes_the_study_once(tmp_path, derived_study):
    from pynetdicom import AE
    from pynetdicom.sop_class import MRImageStorage
    from pydicom.uid import ExplicitVRLittleEndian

    study_folder, series = derived_study
    uid, shared_uid = study_uid(study_folder), study_uid(SHARED_SERIES)
    node_port = free_port()
    with Orthanc(tmp_path / "orthanc", {"tumorseg": (NODE_AE, node_port)}) as orthanc:
        derived, shared = orthanc.upload(study_folder), orthanc.upload(SHARED_SERIES)
        node = Node(tmp_path / "node", node_port, "--send-to", f"{PACS_AE}@127.0.0.1:{orthanc.dicom_port}",
                    "--quiet-time", "2").start()
        try:
            # 1. killed while a sender is half-way through the study (its association still open)
            scu = AE(ae_title=PACS_AE)
            scu.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
            assoc = scu.associate("127.0.0.1", node_port, ae_title=NODE_AE)
            assert assoc.is_established
            files = sorted(study_folder.rglob("*.dcm"))
            for path in files[:120]:  # FLAIR and T1 whole, no post-contrast T1 yet
                assert assoc.send_c_store(path).Status == 0x0000
            node.kill()
            assoc.abort()
            received = node.folder / "received" / uid
            assert len(list(received.glob("*.dcm"))) == 120  # every acknowledged instance is on disk
            assert node.state(uid) is None

            # 2. restarted: the half-sent study is held, while another study goes through
            node.start()
            assert f"study {uid}: 120 instances not yet processed, but a transfer of the study was cut off" in node.log()
            orthanc.store_to("tumorseg", shared)
            node.wait_state(shared_uid, lambda s: s["state"] == "failed", "the shared series to be processed")
            assert node.state(uid) is None, "an interrupted study was taken as complete"
            [held] = [r for r in read_rows(node) if r["case_id"] == uid]
            assert held["status"] == "interrupted" and held["instances"] == "120"

            # 3. the PACS sends the study again: it runs, with all of it; killed while it runs
            job = orthanc.store_to("tumorseg", derived, asynchronous=True)["ID"]
            state = node.wait_state(uid, lambda s: s["state"] == "running", "the study to run")
            assert len(state["files"]) == len(files) == 363
            node.kill()
            assert wait_for(lambda: orthanc.get(f"/jobs/{job}")["State"] in ("Success", "Failure"), "Orthanc's job",
                            EVENT_LIMIT) and orthanc.get(f"/jobs/{job}")["State"] == "Success"

            # 4. restarted: it runs again and sends once
            node.start()
            assert f"case {uid}: was running when the node stopped: it runs again" in node.log()
            state = node.wait_state(uid, lambda s: s["state"] == "sent", "the results to be sent")
            wait_for(lambda: f"case {uid}: sent " in node.log(), "the send in the log", EVENT_LIMIT, node.process)
            assert state["sent"] == ["segmentation.dcm"] and state["attempts"] == 0
        finally:
            node.stop()
        [seg_series] = orthanc.series_of(uid, "SEG")
        assert len(seg_series["Instances"]) == 1
        assert node.log().count(f"case {uid}: sent ") == 1
        requests = [json.loads(p.read_text()) for p in (node.folder / "state").glob("*.json")]
        assert sorted(r["case_id"] for r in requests) == sorted([uid, shared_uid])  # one request per study
        assert not [p for p in (node.folder / "results").iterdir() if p.name.startswith(".") and p.is_dir()]
