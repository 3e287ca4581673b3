"""Choosing FLAIR, T1 and T1c in whole clinical DICOM studies (monai_core.series_choice, detect --study).

The studies are derived at test time (tests/dicom_studies.py): real headers and real TCGA-FG-6692
pixels, with the distractors of a Philips brain study: localizers, diffusion and its derived
registrations, SWI, BOLD, perfusion, a 200-slice 3D coronal T1, 3D isotropic T1s and their
reformats, T2 TSE, two same-named FLAIRs and a same-named pre/post-contrast T1 pair.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pydicom
import pytest
import SimpleITK as sitk

import dicom_studies as ds
from conftest import run_cli
from monai_core.errors import InputError
from monai_core.io.dicom_headers import list_series
from monai_core.series_choice import AmbiguousSeries, choose_series

ROLES = ("flair", "t1", "t1c")
NOT_USED = {  # series number -> the reason it is left out
    101: "a localizer (slices in several orientations)",
    201: "a localizer (ImageType LOCALIZER)",
    301: "neither a FLAIR nor a T1 by its name",
    401: "diffusion",
    402: "derived or secondary",
    403: "derived or secondary",
    501: "susceptibility-weighted (SWI)",
    601: "functional (BOLD fMRI)",
    801: "neither a FLAIR nor a T1 by its name",
    1001: "perfusion",
    1101: "lacks the FLAIR's orientation (2D axial)",
    1102: "derived or secondary",
    1103: "a reformat (by its name)",
    1301: "another FLAIR",
    1401: "lacks the FLAIR's orientation (2D axial)",
    1402: "derived or secondary",
}


@pytest.fixture(scope="module")
def headers_only(tmp_path_factory):
    """The issue's study without and with contrast tags (3 slices of FLAIR, T1, T1c: choice only)."""
    root = tmp_path_factory.mktemp("studies")
    return {tags: (root / f"tags_{tags}", ds.philips_study(root / f"tags_{tags}", contrast_tags=tags, full=False))
            for tags in (False, True)}


def numbers(choice) -> tuple:
    return tuple(choice[role].series_number if choice[role] else None for role in ROLES)


def test_the_philips_study_without_contrast_tags(headers_only):
    folder, uids = headers_only[False]
    choice = choose_series(folder)
    assert numbers(choice) == (701, 901, 1201)
    reasons = {role: choice.roles[role].reason for role in ROLES}
    assert reasons["flair"] == "description 'T2W_FLAIR_TRA', series 701: the earliest of 2 same-named series"
    assert "series 901: the earlier of two same-named series, taken as pre-contrast" in reasons["t1"]
    assert "series 1201: the later of two same-named series, taken as post-contrast" in reasons["t1c"]
    # the 3D coronal T1 of 200 slices competed with the 2D axial pair, and the reason says why it lost
    assert ("preferred over series 1101 'T1W_3D_FFE_ COR CLEAR' (3D coronal), series 1401 'sT1W_FS 3D_ISO_COR' "
            "(3D coronal), which lack the FLAIR's orientation (2D axial)") in reasons["t1"]
    not_used = {s.series_number: reason for s, reason in choice.not_used}
    assert sorted(not_used) == sorted(NOT_USED)
    for number, start in NOT_USED.items():
        assert not_used[number].startswith(start), (number, not_used[number])
    assert next(s for s in list_series(folder) if s.series_number == 1101).n_frames == 200


def test_contrast_tags_mark_the_post_contrast_t1(headers_only):
    folder, _ = headers_only[True]
    choice = choose_series(folder)
    assert numbers(choice) == (701, 901, 1201)
    reason = choice.roles["t1c"].reason
    assert "post-contrast: ContrastBolusAgent 'Gadovist'" in reason and "of 3 series, the one" in reason
    assert "which lack the FLAIR's orientation (2D axial)" in reason  # the tagged 3D coronal T1s
    assert choice.roles["t1"].reason.endswith("the only series that looks like a pre-contrast T1")


def test_a_tag_on_every_t1_tells_nothing(headers_only, tmp_path):
    """Sites that fill ContrastBolusAgent for the whole exam: the pair rule decides, as without tags."""
    folder = tmp_path / "study"
    shutil.copytree(headers_only[False][0], folder)
    for path in folder.rglob("*.dcm"):
        header = pydicom.dcmread(path)
        header.ContrastBolusAgent = "Gadovist"
        header.save_as(path)
    assert numbers(choose_series(folder)) == (701, 901, 1201)


def test_a_list_of_unsorted_files_gives_the_same_choice(headers_only, tmp_path):
    folder, _ = headers_only[False]
    files = sorted(folder.rglob("*.dcm"), key=lambda p: hash(p.name + p.parent.name))
    assert choose_series(files).report() == choose_series(folder).report()


def test_the_series_named_by_uid_win(headers_only):
    folder, uids = headers_only[False]
    choice = choose_series(folder, flair=uids[1301], t1c=uids[1101])
    assert numbers(choice) == (1301, 901, 1101)
    assert choice.roles["flair"].reason.endswith("given with --flair-series")
    assert "series 901: the earliest of 2 same-named series" in choice.roles["t1"].reason  # no pair: T1c was named


def test_a_study_without_flair_lists_the_candidates(tmp_path):
    uids = ds.philips_study(tmp_path / "study", flair=False, full=False)
    with pytest.raises(AmbiguousSeries) as error:
        choose_series(tmp_path / "study")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'study'}: no FLAIR series found among: ")
    for number in (301, 801, 901, 1101, 1201, 1401):  # the usable series, by UID, for --flair-series
        assert uids[number] in message
    assert "--flair-series UID" in message and "\n" not in message
    assert {s.series_number for s in error.value.candidates} == {301, 801, 901, 1101, 1201, 1401}


def test_a_3d_sagittal_flair_takes_the_3d_sagittal_t1(tmp_path):
    """2D against 3D: the T1 whose geometry matches the FLAIR's, and the reason says so."""
    study = ds.new_study()
    t1, flair = ds.volume("t1"), ds.volume("flair")
    sagittal = dict(size=(48, 48, 30), spacing=(4.0, 4.0, 1.0))
    uids = {
        "flair": ds.write_series(tmp_path / "a", ds.regrid(flair, ds.SAGITTAL, **sagittal), "3D FLAIR SAG", 3, study,
                                 acquisition="3D", time="100000"),
        "mprage": ds.write_series(tmp_path / "b", ds.regrid(t1, ds.SAGITTAL, **sagittal), "MPRAGE sag", 4, study,
                                  acquisition="3D", time="101000"),
        "se": ds.write_series(tmp_path / "c", t1[:, :, 10:13], "AX T1 SE", 5, study, time="102000"),
    }
    choice = choose_series(tmp_path)
    assert choice.uids() == {"flair": uids["flair"], "t1": uids["mprage"]}
    assert choice.roles["t1"].reason.endswith(
        "preferred over series 5 'AX T1 SE' (2D axial), which lacks the FLAIR's orientation (3D sagittal)")


def test_two_reconstructions_of_one_acquisition_are_not_a_pre_post_pair(tmp_path):
    """Same name, same acquisition time (e.g. Siemens' distortion-corrected copy): both before contrast."""
    study = ds.new_study()
    ds.write_series(tmp_path / "f", ds.volume("flair")[:, :, 10:13], "AX FLAIR", 2, study, time="100000")
    first = ds.write_series(tmp_path / "a", ds.volume("t1")[:, :, 10:13], "t1_se_tra", 5, study, time="101000")
    ds.write_series(tmp_path / "b", ds.volume("t1")[:, :, 10:13], "t1_se_tra", 6, study, time="101000")
    choice = choose_series(tmp_path)
    assert choice.uids() == {"flair": choice["flair"].series_uid, "t1": first}
    assert choice.roles["t1c"].series is None


def test_series_of_two_studies_are_refused(tmp_path):
    for name in ("one", "two"):
        study = ds.new_study()
        ds.write_series(tmp_path / name, ds.volume("flair")[:, :, 10:13], "AX FLAIR", 2, study)
    with pytest.raises(InputError, match="holds series of 2 studies"):
        choose_series(tmp_path)


# --------------------------------------------------------------------------- detect --study, end to end


@pytest.fixture(scope="module")
def whole_study(tmp_path_factory):
    """The issue's study in full, written as its scanner did: zero outside the head, skull and scalp kept."""
    folder = tmp_path_factory.mktemp("whole") / "study"
    return folder, ds.philips_study(folder, zero_background=True)


def test_detect_study_chooses_unaided_and_records_why(whole_study, tmp_path):
    folder, uids = whole_study
    out = tmp_path / "out"
    result = run_cli("detect", "--study", folder, "-o", out, "--case-id", "s", "--dicom-seg", "--progress", "none")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "s" / "report.json").read_text())
    choice = report["inputs"]["series_choice"]
    assert {role: choice[role]["series_uid"] for role in ROLES} == {"flair": uids[701], "t1": uids[901], "t1c": uids[1201]}
    assert report["inputs"]["series_uids"] == {"flair": uids[701], "t1": uids[901], "t1c": uids[1201]}
    for role in ROLES:
        assert f"tumorseg: {role}: {uids[{'flair': 701, 't1': 901, 't1c': 1201}[role]]} " in result.stderr
        assert choice[role]["reason"] in result.stderr
    assert {entry["series_number"] for entry in choice["not_used"]} == set(NOT_USED)
    line = next(l for l in result.stderr.splitlines() if l.startswith("tumorseg: not used: "))
    assert "series 101 'Survey' (a localizer (slices in several orientations))" in line
    assert report["tumor_detected"] and report["dicom_seg"]["written"]  # the sample's lesion is found
    # the background is zero but skull and scalp are there: no false "skull-stripped" (nor misregistration)
    flair = [pydicom.dcmread(path).pixel_array for path in (folder / "s0701").glob("*.dcm")]
    assert sum((f == 0).sum() for f in flair) / sum(f.size for f in flair) > 0.35  # what the old rule took for stripping
    codes = {w["code"] for w in report["quality"]["warnings"]}
    assert not codes & {"skull_stripped", "registration_poor"}, codes
    seg = pydicom.dcmread(out / "s" / "segmentation.dcm")
    assert {r.SeriesInstanceUID for r in seg.ReferencedSeriesSequence} == {uids[701]}


def test_detect_study_without_flair_exits_2_with_the_candidates(tmp_path):
    uids = ds.philips_study(tmp_path / "study", flair=False, full=False)
    result = run_cli("detect", "--study", tmp_path / "study", "-o", tmp_path / "out", "--progress", "none")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("tumorseg: error: ") and "no FLAIR series found" in line
    assert uids[901] in line and uids[1201] in line and "--flair-series" in line
    assert not (tmp_path / "out").exists()


def test_each_series_is_decoded_once_per_detect(whole_study, pipeline, tmp_path, monkeypatch):
    """FLAIR, T1 and T1c decoded once each, although the SEG and the SR also refer to the FLAIR."""
    import pydicom.dataset

    from monai_core.detect import detect_case

    decoded = Counter()
    decode = pydicom.dataset.pixel_array

    def counting(source, **options):
        decoded[(str(source.SeriesInstanceUID), str(source.SOPInstanceUID))] += 1
        return decode(source, **options)

    monkeypatch.setattr(pydicom.dataset, "pixel_array", counting)
    folder, uids = whole_study
    report = detect_case(pipeline, tmp_path, case_id="s", dicom_seg=True, dicom_sr=True, choice=choose_series(folder))
    assert report["dicom_seg"]["written"] and report["dicom_sr"]["written"]
    per_series = Counter(series for series, _ in decoded)
    slices = {uid: len(list((folder / f"s{n:04d}").glob("*.dcm"))) for n, uid in uids.items()}
    assert per_series == {uids[n]: slices[uids[n]] for n in (701, 901, 1201)}  # nothing else read
    assert set(decoded.values()) == {1}, "an instance was decoded more than once"
    flair = sitk.ReadImage(str(tmp_path / "s" / "segmentation.nii.gz"))
    assert flair.GetSize()[2] == slices[uids[701]]
