"""What the warm engine remembers: a second Detect on the same inputs skips reading, the networks and the
analysis (mask, confidence, measurements); a changed input is read again, changed slices go through the
networks again, a changed setting is analysed again, and each memory keeps only the last studies."""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import monai_core.detect
from conftest import RAW
from monai_core.engine import Engine
from monai_core.last_used import LastUsed
from monai_core.pipeline import SlicePrediction
from monai_core.postprocess import MaskSetting
from monai_core.remembered_predictions import RememberedPredictions
from monai_core.remembered_results import RememberedResults
from monai_core.study import Study
from monai_core.study_cache import StudyCache


def test_last_used_drops_the_least_recently_used_and_never_keeps_a_none_key():
    memory = LastUsed(size=2)
    memory.keep("a", 1)
    memory.keep("b", 2)
    assert memory.recall("a") == 1  # now "b" is the least recently used
    memory.keep("c", 3)
    assert list(memory.entries) == ["a", "c"] and memory.recall("b") is None
    memory.keep(None, 4)
    assert memory.recall(None) is None and len(memory.entries) == 2
    assert memory.hits == 1


def _copy_inputs(folder: Path, names=("flair", "t1", "t1c")) -> dict:
    folder.mkdir(parents=True)
    return {name: str(shutil.copy(RAW / f"{name}.nii.gz", folder / f"{name}.nii.gz")) for name in names}


class _Reader:
    """Stands in for load_study: counts the reads and makes a small Study from the paths."""

    def __init__(self):
        self.calls = []

    def __call__(self, kaggle_dir, flair, t1, t1c, case_id, progress, series_uids, choice):
        self.calls.append((flair, t1, t1c, series_uids))
        inputs = {"flair": str(Path(flair).absolute()), "t1": str(Path(t1).absolute()) if t1 else None,
                  "t1c": str(Path(t1c).absolute()) if t1c else None}
        return Study(case_id or "flair", np.full((2, 3, 4, 4), len(self.calls), np.float32), inputs,
                     timing={"read_s": 1.0}, warnings=[{"code": "w"}])


def test_the_same_content_is_read_once_even_under_new_paths(tmp_path):
    reader = _Reader()
    cache = StudyCache(reader)
    first = cache.load(**_copy_inputs(tmp_path / "click1"))
    again = cache.load(**_copy_inputs(tmp_path / "click2"), case_id="named")  # as Slicer writes each click
    assert len(reader.calls) == 1 and (cache.reads, cache.hits) == (1, 1)
    assert np.array_equal(again.slices, first.slices)
    # the request's own paths and name, and no read time: nothing was read
    assert again.inputs["t1c"] == str(tmp_path / "click2" / "t1c.nii.gz") and again.case_id == "named"
    assert first.case_id == "flair" and again.timing == {} and first.timing == {"read_s": 1.0}
    again.warnings.append({"code": "added by a request"})
    assert cache.load(**_copy_inputs(tmp_path / "click3")).warnings == [{"code": "w"}]  # the cache is not changed


def test_a_changed_input_is_read_again(tmp_path):
    reader = _Reader()
    cache = StudyCache(reader)
    paths = _copy_inputs(tmp_path / "in")
    cache.load(**paths)
    shutil.copy(RAW / "t2.nii.gz", paths["t1c"])  # other bytes at the same path
    cache.load(**paths)
    assert len(reader.calls) == 2
    with open(paths["flair"], "r+b") as stream:  # one byte changed, size kept
        stream.seek(1000)
        byte = stream.read(1)
        stream.seek(1000)
        stream.write(bytes([byte[0] ^ 1]))
    cache.load(**paths)
    assert len(reader.calls) == 3
    cache.load(**paths, series_uids={"flair": "1.2.3"})  # another series of the same files
    assert len(reader.calls) == 4
    cache.load(flair=paths["flair"], t1=paths["t1"])  # without the T1c
    assert len(reader.calls) == 5
    cache.load(**paths, series_uids={"flair": "1.2.3"})  # as the fourth call: one of the last two, remembered
    assert len(reader.calls) == 5


def test_a_touched_input_with_the_same_bytes_gives_the_same_study(tmp_path):
    """The key is the content: a new time stamp alone reads nothing again (it would give the same study)."""
    reader = _Reader()
    cache = StudyCache(reader)
    paths = _copy_inputs(tmp_path / "in")
    cache.load(**paths)
    os.utime(paths["t1"], ns=(1, 1))
    cache.load(**paths)
    assert len(reader.calls) == 1


def test_only_the_last_studies_are_kept_and_a_missing_input_goes_to_the_reader(tmp_path):
    reader = _Reader()
    cache = StudyCache(reader, size=1)
    a = _copy_inputs(tmp_path / "a", ("flair",))
    b = _copy_inputs(tmp_path / "b", ("t1",))
    cache.load(flair=a["flair"])
    cache.load(flair=b["t1"])
    cache.load(flair=a["flair"])
    assert len(reader.calls) == 3 and len(cache.entries) == 1
    missing = str(tmp_path / "missing.nii.gz")
    cache.load(flair=missing)  # the reader, not the cache, tells the user
    assert reader.calls[-1][0] == missing and len(cache.entries) == 1


class _Networks:
    """Stands in for TumorSegPipeline: counts predict calls; the result depends on the slices."""

    bundle_dir = "bundle"
    identity = {"name": "stand-in", "sha256": {}}
    quality = None

    def __init__(self):
        self.calls = 0
        self.setting = MaskSetting()

    @property
    def mask_threshold(self):
        return self.setting.mask_threshold

    def predict(self, slices, progress=None, slice_spacing_mm=None):
        self.calls += 1
        return SlicePrediction(slices[:, 1].mean((1, 2)), slices[:, 1].mean((1, 2)) > 0.5, slices[:, 1].copy())


def test_unchanged_slices_skip_the_networks_and_changed_ones_do_not():
    networks, memory = _Networks(), RememberedPredictions()
    pipeline = memory.around(networks)
    assert pipeline.mask_threshold == 0.5  # everything else is the pipeline's
    slices = np.random.default_rng(0).uniform(0, 1, (4, 3, 8, 8)).astype(np.float32)
    first = pipeline.predict(slices, None, 5.5)
    second = pipeline.predict(slices.copy(), None, 5.5)  # the same values in another array, as a reused study gives
    assert networks.calls == 1 and (memory.runs, memory.hits) == (1, 1)
    assert np.array_equal(first.tumour_probability, second.tumour_probability)
    second.tumour_probability[:] = 7  # a request's own copy: the memory is not changed
    assert np.array_equal(pipeline.predict(slices, None, 5.5).tumour_probability, first.tumour_probability)
    changed = slices.copy()
    changed[2, 0, 3, 3] += 1e-6  # one value of the T1 channel
    pipeline.predict(changed, None, 5.5)
    pipeline.predict(slices, None, 1.0)  # another slice spacing (the 2.5D segmenter's context depends on it)
    assert networks.calls == 3
    networks.setting = replace(networks.setting, classifier_threshold=0.3)  # another setting on the same pipeline
    pipeline.predict(slices, None, 5.5)
    assert networks.calls == 4


def test_only_the_last_predictions_are_kept():
    networks, memory = _Networks(), RememberedPredictions(size=2)
    rng = np.random.default_rng(1)
    for _ in range(5):  # a new study on every click: the memory stays at two stacks
        memory.predict(networks, rng.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32), None, 5.0)
    assert networks.calls == 5 and len(memory.entries) == 2


def _kaggle_like_study(digest, value=0.8):
    """A small study without a grid (as a Kaggle stack), its FLAIR channel bright in one square."""
    slices = np.zeros((3, 3, 8, 8), np.float32)
    slices[1, 1, 2:6, 2:6] = value
    return Study("case", slices, {"kaggle": "in", "flair": None, "t1": None, "t1c": None}, source_digest=digest)


def test_an_unchanged_study_is_analysed_once_and_each_request_gets_its_own_copy():
    networks, memory = _Networks(), RememberedResults()
    first = memory.analyse(networks, _kaggle_like_study("a"))
    again = memory.analyse(networks, replace(_kaggle_like_study("a"), case_id="other name"))
    assert networks.calls == 1 and (memory.runs, memory.hits) == (1, 1)
    assert np.array_equal(again.mask, first.mask) and first.mask.sum() == 16
    assert again.quality == first.quality and again.pixels == first.pixels == [0, 16, 0]
    assert "inference_s" in first.timing and again.timing == {}  # nothing was computed
    again.mask[:] = 0  # a request's own copies: the memory is not changed
    again.quality["warnings"].append({"code": "added by a request"})
    with pytest.raises(ValueError):
        again.prediction.tumour_probability[:] = 0  # shared, read-only
    third = memory.analyse(networks, _kaggle_like_study("a"))
    assert third.mask.sum() == 16 and third.quality == first.quality


def test_a_changed_study_or_setting_is_analysed_again():
    networks, memory = _Networks(), RememberedResults()
    memory.analyse(networks, _kaggle_like_study("a"))
    dim = memory.analyse(networks, _kaggle_like_study("b", value=0.4))  # another input: another digest
    assert networks.calls == 2 and dim.mask.sum() == 0
    memory.analyse(networks, _kaggle_like_study(None))  # read outside the study cache: never remembered
    memory.analyse(networks, _kaggle_like_study(None))
    assert networks.calls == 4
    networks.setting = replace(networks.setting, mask_threshold=0.3)  # the same study, another setting
    loose = memory.analyse(networks, _kaggle_like_study("b", value=0.4))
    assert networks.calls == 5 and loose.mask.sum() == 16
    assert (memory.runs, memory.hits) == (5, 0)


def test_only_the_last_results_are_kept():
    networks, memory = _Networks(), RememberedResults(size=2)
    for digest in "abcde":  # a new study on every click: the memory stays at two results
        memory.analyse(networks, _kaggle_like_study(digest))
    assert networks.calls == 5 and len(memory.entries) == 2
    memory.analyse(networks, _kaggle_like_study("e"))
    memory.analyse(networks, _kaggle_like_study("a"))  # forgotten
    assert networks.calls == 6


@pytest.fixture(scope="module")
def engine():
    engine = Engine(io.StringIO(), log=io.StringIO())
    engine.load()
    return engine


def test_the_engine_s_second_detect_skips_reading_and_gives_the_same_result(engine, tmp_path, monkeypatch):
    reads = []
    load_volumes = monai_core.detect.load_volumes
    monkeypatch.setattr(monai_core.detect, "load_volumes", lambda *a, **k: reads.append(a) or load_volumes(*a, **k))

    def detect(folder: str, paths: dict) -> dict:
        answer = engine.handle(json.dumps({**paths, "output": str(tmp_path / folder), "case_id": "case"}))
        assert answer.get("done"), answer
        return json.loads(Path(answer["report"]).read_text())

    first = detect("out1", _copy_inputs(tmp_path / "click1"))
    second_paths = _copy_inputs(tmp_path / "click2")
    second = detect("out2", second_paths)
    assert len(reads) == 1 and engine.studies.hits == 1
    assert (engine.results.runs, engine.results.hits) == (1, 1)  # nor mapped back, checked or measured
    assert (engine.predictions.runs, engine.predictions.hits) == (1, 0)  # nor through the networks
    assert second["inputs"]["flair"] == second_paths["flair"]
    for report in (first, second):
        report.pop("timing_s")
        report["inputs"] = {k: v for k, v in report["inputs"].items() if k not in ("flair", "t1", "t1c")}
    assert second == first
    masks = [sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / out / "case" / "segmentation.nii.gz")))
             for out in ("out1", "out2")]
    assert masks[0].sum() > 0 and np.array_equal(masks[0], masks[1])

    shutil.copy(RAW / "t2.nii.gz", second_paths["t1c"])  # the user picked another volume as T1c
    detect("out3", second_paths)
    assert len(reads) == 2 and engine.studies.hits == 1
    assert (engine.results.runs, engine.results.hits) == (2, 1)  # another study: analysed again
    assert (engine.predictions.runs, engine.predictions.hits) == (2, 0)  # other slices: the networks run again

    # another mask threshold on the loaded pipeline: the same study, read from memory, but analysed again
    monkeypatch.setattr(engine.pipeline, "setting", replace(engine.pipeline.setting, mask_threshold=0.9))
    strict = detect("out4", second_paths)
    assert len(reads) == 2 and engine.studies.hits == 2
    assert (engine.results.runs, engine.results.hits) == (3, 1) and engine.predictions.runs == 3
    assert strict["thresholds"]["mask"] == 0.9
    loose, tight = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / out / "case" / "segmentation.nii.gz")))
                    for out in ("out3", "out4"))
    assert tight.sum() < loose.sum() and not np.any(tight > loose)


class _Series:
    def __init__(self, files):
        self.files = files


class _Choice:
    """Stands in for a StudyChoice (monai_core.series_choice): the chosen series' files and the report."""

    def __init__(self, root, roles):
        self.root, self.roles = root, roles

    def __getitem__(self, role):
        return self.roles.get(role)

    def report(self):
        return {role: {"series_uid": f"1.2.{n}"} for n, role in enumerate(self.roles)}


def test_a_chosen_dicom_study_is_keyed_by_its_series_files(tmp_path):
    reader = _Reader()
    cache = StudyCache(reader)
    files = [tmp_path / f"{n}.dcm" for n in range(3)]
    for n, path in enumerate(files):
        path.write_bytes(bytes([n]) * 100)
    choice = _Choice(tmp_path, {"flair": _Series(files[:2]), "t1c": _Series(files[2:])})
    first = cache.load(flair=tmp_path, t1c=tmp_path, choice=choice)
    again = cache.load(flair=tmp_path, t1c=tmp_path, choice=choice)
    assert len(reader.calls) == 1 and again.inputs["flair"] == str(tmp_path.absolute()) and again.inputs["t1"] is None
    assert np.array_equal(first.slices, again.slices)
    files[1].write_bytes(b"another instance")  # one instance of the FLAIR series changed
    cache.load(flair=tmp_path, t1c=tmp_path, choice=choice)
    assert len(reader.calls) == 2
