"""The engine's compare request: the same checks and function as ``tumorseg compare``, in the warm process."""

from __future__ import annotations

import io
import json

import pytest
import SimpleITK as sitk
from conftest import RAW

from monai_core.engine import Engine
from monai_core.errors import InputError
from test_compare import write_case


@pytest.fixture
def engine():
    return Engine(io.StringIO(), pipeline=object(), log=io.StringIO())  # compare needs no networks


def test_compare_request_writes_change_json(engine, tmp_path):
    lesion = sitk.Cast(sitk.ReadImage(str(RAW / "flair_lesion.nii.gz")), sitk.sitkUInt8)
    grown = sitk.BinaryDilate(lesion, [2, 2, 0], sitk.sitkBall)
    prior = write_case(tmp_path / "prior", RAW / "flair.nii.gz", lesion)
    current = write_case(tmp_path / "current", RAW / "flair.nii.gz", grown)
    # keys in any order: the positional baseline still comes first
    request = {"followup": str(current), "command": "compare", "output": str(tmp_path / "out"),
               "baseline": str(prior), "case_id": "change", "dates": ["2020-01-01", "2020-07-01"], "id": 7}
    assert engine.serve([json.dumps(request)]) == 0
    lines = [json.loads(line) for line in engine.out.getvalue().splitlines()]
    answer = lines[-1]
    assert answer["done"] is True and answer["id"] == 7, answer
    assert [p["stage"] for p in lines[:-1]] == ["compare", "compare"]
    change = json.loads(open(answer["change"]).read())
    assert answer["change"] == str(tmp_path / "out" / "change" / "change.json")
    assert change["baseline"]["case"] == str(prior) and change["interval_days"] == 182
    assert change["volume_change_ml"] > 0 and change["change_map"]["resolved_ml"] == 0


@pytest.mark.parametrize("request_, message", [
    ({"command": "compare", "baseline": "a", "followup": "b", "output": "o", "dates": "2020-01-01"},
     "request key 'dates' must be a list of 2 strings"),
    ({"command": "compare", "baseline": "a", "output": "o"}, "the following arguments are required: followup"),
    ({"command": "compare", "baseline": "a", "followup": "b", "output": "o", "flair": "x"}, "unknown request key 'flair'"),
    ({"command": "evaluate", "output": "o"}, "unknown command 'evaluate'"),
])
def test_bad_compare_requests_are_input_errors(engine, request_, message):
    answer = engine.handle(json.dumps(request_))
    assert answer["kind"] == "input" and message in answer["error"], answer


def test_compare_of_missing_folders_is_one_line(engine, tmp_path):
    answer = engine.handle(json.dumps({"command": "compare", "baseline": str(tmp_path / "none"),
                                       "followup": str(tmp_path / "none2"), "output": str(tmp_path / "o")}))
    assert answer["kind"] == "input" and answer["error"] == f"{tmp_path / 'none'}: baseline: no such case folder"
    with pytest.raises(InputError):
        engine.parse({"baseline": "a", "followup": "b", "output": "o", "overwrite": "yes"}, "compare")
