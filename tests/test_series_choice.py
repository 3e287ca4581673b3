"""choose_series on same-named series: acquisition order decides, and every choice says why.

Headers only (two-slice copies of the sample series), so these run in a second; the end-to-end
``detect --study`` case is in test_dicom_study.py.
"""

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from monai_core.errors import InputError
from monai_core.series_choice import choose_series

SAMPLE = Path(__file__).parent / "data" / "dicom" / "PGBM-001_T1post"


def add(study: Path, description: str, number=None, time=None) -> str:
    """A two-slice series named ``description`` (as SeriesDescription and ProtocolName)."""
    uid = generate_uid()
    folder = study / uid
    folder.mkdir(parents=True)
    for path in sorted(SAMPLE.glob("*.dcm"))[:2]:
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.SeriesDescription = ds.ProtocolName = description
        for keyword, value in (("SeriesNumber", number), ("AcquisitionTime", time), ("SeriesTime", time)):
            if value is None:
                ds.pop(keyword, None)
            else:
                setattr(ds, keyword, value)
        ds.save_as(folder / path.name)
    return uid


@pytest.mark.filterwarnings("ignore:Invalid value for VR TM")  # the old "HH:MM:SS" form, still read
def test_without_series_numbers_the_acquisition_time_orders_them(tmp_path):
    late, early = add(tmp_path, "T1W_SE", time="110000"), add(tmp_path, "T1W_SE", time="10:30:00")
    flair = add(tmp_path, "FLAIR")
    chosen = choose_series(tmp_path)
    assert (chosen["flair"].series_uid, chosen["t1"].series_uid, chosen["t1c"].series_uid) == (flair, early, late)


def test_same_named_series_that_nothing_orders_stay_ambiguous(tmp_path):
    add(tmp_path, "FLAIR")
    first, second = add(tmp_path, "T1W_SE", 5, "100000"), add(tmp_path, "T1W_SE", 5, "100000")
    with pytest.raises(InputError, match="several series look like T1") as error:
        choose_series(tmp_path)
    assert first in str(error.value) and second in str(error.value)


def test_with_a_named_t1c_the_earliest_same_named_t1_is_taken(tmp_path):
    add(tmp_path, "FLAIR", 1)
    pre, _repeat = add(tmp_path, "T1W_SE", 3), add(tmp_path, "T1W_SE", 8)
    post = add(tmp_path, "T1W_SE +C", 6)
    chosen = choose_series(tmp_path)
    assert (chosen["t1"].series_uid, chosen["t1c"].series_uid) == (pre, post)
    assert chosen.roles["t1"].reason == "description 'T1W_SE', series 3: the earliest of 2 same-named series"
    assert chosen.roles["t1c"].reason == "description 'T1W_SE +C', series 6: the only series that looks like a post-contrast T1 (post-contrast by its name)"


def test_series_choice_records_overrides_and_missing_roles(tmp_path):
    add(tmp_path, "AX FLAIR", 2)
    sagittal = add(tmp_path, "SAG FLAIR", 4)
    choice = choose_series(tmp_path, flair=sagittal).report()
    assert choice["flair"] == {"series_uid": sagittal, "series_number": 4, "description": "SAG FLAIR",
                               "reason": "description 'SAG FLAIR', series 4: given with --flair-series"}
    assert choice["t1"] == {"series_uid": None, "series_number": None, "description": None,
                            "reason": "no series looks like a pre-contrast T1; replaced by FLAIR"}
