"""The rigid registrations of detect: held to the committed reference, following a known header move,
near release 0.4.0 where 0.4.0 converged, the same on every run, side by side.

The reference (tests/data/registration_reference.json) is what ``register_rigid`` gave when it was
written; tests/registration_cases.py says how displacement is measured.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import SimpleITK as sitk

import registration_cases as rc
from monai_core import preprocess
from monai_core.errors import InputError
from monai_core.preprocess import register_rigid, register_rigid_all

CASES = ("sample t1", "sample t1c", "sample t1c moved")  # the sample study, and a T1c misaligned by construction


@pytest.fixture(scope="module")
def registered():
    """The cases registered as detect does: all at once (one ITK thread each on two cores)."""
    images = {name: rc.load_case(name) for name in CASES}
    flair = images["sample t1"][0]
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)  # as on the 2-core machines the figures are for
    try:
        transforms = register_rigid_all(flair, {name: moving for name, (_, moving) in images.items()})
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
    return images, transforms


@pytest.mark.parametrize("name", CASES)
def test_registration_stays_within_1_mm_of_the_reference(registered, name):
    images, transforms = registered
    corners, inside = rc.head_points(images[name][0])
    reference = rc.reference(name)
    # the largest displacement over the head's bounding box is at one of its corners (a rigid difference)
    assert rc.displacement(transforms[name], reference, corners).max() < 1.0
    assert rc.displacement(transforms[name], reference, inside).mean() < 0.5


def test_a_moved_header_is_followed(registered):
    """The T1c with its header moved by a known transform registers to the unmoved result moved by it.

    A registration that follows the images and not the draw of its samples: 0.15 mm here; release
    0.4.0's recipe, stopped at its iteration limit, was 2.4 mm off.
    """
    images, transforms = registered
    corners, _ = rc.head_points(images["sample t1c moved"][0])
    expected = rc.expected_from_move("sample t1c moved", transforms["sample t1c"])
    assert rc.displacement(transforms["sample t1c moved"], expected, corners).max() < 1.0


@pytest.mark.parametrize("name", [name for name in rc.CASES if name.startswith("bet")])
def test_skull_stripped_scans_stay_within_1_mm_of_release_0_4_0(name):
    """Where 0.4.0's registration converged (the skull-stripped 1 mm scans), the result users had is kept."""
    fixed, moving = rc.load_case(name)
    corners, _ = rc.head_points(fixed, count=1)
    assert rc.displacement(register_rigid(fixed, moving), rc.reference(name, rc.REFERENCE_040), corners).max() < 1.0


def test_the_same_input_gives_the_same_transform(registered):
    """Run again, one after the other on one thread each: the same transforms as side by side.

    The same to rounding (ITK's filters sum over their threads in varying order): under 0.1 µm
    anywhere in the head; with SimpleITK's global thread count at 1 they would be the same to the bit.
    """
    images, transforms = registered
    for name in ("sample t1", "sample t1c"):
        again = register_rigid(*images[name], threads=1)
        assert rc.as_euler(again).GetCenter() == rc.as_euler(transforms[name]).GetCenter(), name
        # compared as displacement in mm, not as raw parameters: rounding in the threads' sums moved the
        # parameters by up to 3e-8 between CI runs, which a 1e-9 bound on the parameters did not allow
        corners, _ = rc.head_points(images[name][0])
        assert rc.displacement(again, transforms[name], corners).max() < 1e-4, name


def test_detect_registers_to_the_bit_on_every_run(registered):
    """register_rigid_all runs with SimpleITK's global thread count at 1: run again, side by side or alone, the
    transforms are the same to the bit (at 2, every run differed at 1e-7 mm and the sample study's mask by 2-3
    voxels from one detect to the next), and the global count is given back."""
    images, transforms = registered
    flair = images["sample t1"][0]
    movings = {name: images[name][1] for name in ("sample t1", "sample t1c")}
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    try:
        again = register_rigid_all(flair, movings)
        alone = [register_rigid_all(flair, {"sample t1": movings["sample t1"]})["sample t1"] for _ in range(2)]
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 2
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
    for name in movings:
        assert again[name].GetParameters() == transforms[name].GetParameters(), name
    assert alone[0].GetParameters() == alone[1].GetParameters()


def test_displacement_sees_a_1_mm_shift():
    """The measure itself: a reference moved by 1.5 mm is 1.5 mm away everywhere, so the 1 mm bound can fail."""
    reference = rc.reference("sample t1")
    shifted = sitk.CompositeTransform([sitk.TranslationTransform(3, (1.5, 0.0, 0.0)), reference])
    corners, _ = rc.head_points(rc.load_case("sample t1")[0])
    assert np.allclose(rc.displacement(shifted, reference, corners), 1.5)


@pytest.fixture
def recorded(monkeypatch):
    """register_rigid replaced by a recorder: which thread count each call got, and how many ran at once."""
    calls, lock, running = [], threading.Lock(), [0]
    both_running = threading.Barrier(2, timeout=120)  # a guard against a hang, not a speed bound

    def fake(fixed, moving, path=None, threads=None):
        with lock:
            running[0] += 1
            calls.append({"path": path, "threads": threads, "at_once": running[0]})
        try:
            if fake.wait_for_each_other:
                both_running.wait()  # fails (BrokenBarrierError) unless the other registration is running too
            if moving is None:
                raise InputError(path, "does not overlap the FLAIR in space; is it from the same study?")
            return path
        finally:
            with lock:
                running[0] -= 1

    fake.wait_for_each_other = False
    monkeypatch.setattr(preprocess, "register_rigid", fake)
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    yield fake, calls
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def test_two_registrations_run_side_by_side_on_one_thread_each(recorded):
    fake, calls = recorded
    fake.wait_for_each_other = True
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    out = register_rigid_all("flair", {"t1": "a", "t1c": "b"}, {"t1": "t1.nii", "t1c": "t1c.nii"})
    assert out == {"t1": "t1.nii", "t1c": "t1c.nii"}  # each result under its own name, in order
    assert [c["threads"] for c in calls] == [1, 1]


def test_one_registration_or_one_thread_runs_as_before(recorded):
    fake, calls = recorded
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    assert register_rigid_all("flair", {"t1c": "b"}, {"t1c": "t1c.nii"}) == {"t1c": "t1c.nii"}
    assert calls[-1]["threads"] == 2  # a single registration keeps both threads
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # a batch worker's budget: one after the other
    register_rigid_all("flair", {"t1": "a", "t1c": "b"}, {"t1": "t1.nii", "t1c": "t1c.nii"})
    assert [c["threads"] for c in calls[-2:]] == [1, 1] and max(c["at_once"] for c in calls[-2:]) == 1
    assert register_rigid_all("flair", {}) == {}


def test_an_input_error_of_either_registration_names_its_file(recorded):
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    with pytest.raises(InputError, match="t1c.nii: does not overlap the FLAIR"):
        register_rigid_all("flair", {"t1": "a", "t1c": None}, {"t1": "t1.nii", "t1c": "t1c.nii"})
