"""Installing the engine's Python packages into Slicer (TumorSegLib/install.py and the widget), on slicer-core.

The requirements file is parsed as pip would read it; the plan installs torch from the index of the
build that PyTorch Utils chooses (a stand-in module with its API here) or the CPU build, with an
override; pip runs in child processes that the widget pumps from a timer behind a progress dialog,
with Detect and Compare disabled until the install ends, and Cancel returns at once. Only the Qt
objects the widget touches are stand-ins (a timer the test fires, a dialog that records).
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest

import slicer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slicer_fixture as sf  # noqa: E402
from conftest import fail_after  # noqa: E402

TumorSeg = sf.import_module()
install = TumorSeg.install
TumorSegLogic = TumorSeg.TumorSegLogic
TumorSegError = TumorSeg.TumorSegError

WAIT_LIMIT_S = 600  # a last guard on a child process that should end; not a speed check


@pytest.fixture(autouse=True)
def _fail_rather_than_hang():
    with fail_after(WAIT_LIMIT_S, "an install test"):
        yield


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# --- the requirements file ---------------------------------------------------------------------------


def test_requirements_lines_pip_accepts_are_read(tmp_path):
    requirements = install.readRequirements(write(tmp_path / "r.txt", """
        # a comment, then a blank line

        torch==2.13.0
        monai[nibabel] == 1.6.1   # extras, spaces and a trailing comment
        pylibjpeg==2.1.0; sys_platform != "emscripten"
        never-here==1.0; python_version < "3.0"
        """))
    assert [(r.name, install.pinnedVersion(r)) for r in requirements] == [
        ("torch", "2.13.0"), ("monai", "1.6.1"), ("pylibjpeg", "2.1.0"), ("never-here", "1.0")]
    assert requirements[1].extras == {"nibabel"}
    assert [install.applies(r) for r in requirements] == [True, True, True, False]


@pytest.mark.parametrize("line, problem", [
    ("--index-url https://example.org/simple", "pip options are not supported"),
    ("-r other.txt", "pip options are not supported"),
    ("torch 2.13", "not a requirement"),
    ("tool @ https://example.org/tool.whl", "not a URL"),
])
def test_other_lines_are_refused_with_the_file_and_line(tmp_path, line, problem):
    path = write(tmp_path / "r.txt", f"monai==1.6.1\n{line}\n")
    with pytest.raises(TumorSegError) as error:
        install.readRequirements(path)
    assert str(error.value).startswith(f"{path}, line 2: ") and problem in str(error.value)


def test_missing_requirements_follow_markers_and_local_labels(tmp_path):
    requirements = install.readRequirements(write(tmp_path / "r.txt", """
        torch==2.13.0
        monai==1.6.1
        nibabel==5.4.2
        only-old-python==1.0; python_version < "3.0"
        absent==1.0
        """))
    installed = {"torch": "2.13.0+cpu", "monai": "1.5.0", "nibabel": "5.4.2"}.get
    missing = install.missingRequirements(requirements, installed)
    assert [str(r) for r in missing] == ["monai==1.6.1", "absent==1.0"]  # 2.13.0+cpu is the 2.13.0 release
    assert [install.describe(r, installed) for r in missing] == ["monai==1.6.1 (replaces 1.5.0)", "absent==1.0"]


# --- the plan: where torch comes from, what stays Slicer's -----------------------------------------------


@pytest.fixture
def shipped():
    return TumorSegLogic.readRequirements()


def nothing_installed(name):
    return {"numpy": "2.0.2", "SimpleITK": "2.4.1"}.get(name)  # what Slicer 5.10 ships, nothing else


def test_without_pytorch_utils_torch_is_the_cpu_build_first(shipped, monkeypatch):
    monkeypatch.delitem(sys.modules, "PyTorchUtils", raising=False)
    monkeypatch.delenv(install.INDEX_URL_VARIABLE, raising=False)
    plan = install.installPlan(shipped, keep=TumorSeg.PROVIDED_BY_SLICER, installedVersion=nothing_installed)
    torch_step, rest = plan.steps
    assert torch_step.pipArguments == ["install", "--extra-index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"]
    assert "CPU build" in plan.torchSource
    assert rest.pipArguments[0] == "install" and "torch==2.13.0" not in rest.pipArguments
    assert sorted(rest.pipArguments[1:]) == sorted(str(r) for r in shipped if r.name != "torch")
    # Slicer's own numpy and SimpleITK, and torch at its pin, are held for every step
    assert plan.constraints == ["numpy==2.0.2", "SimpleITK==2.4.1", "torch==2.13.0"]


def _pytorch_utils(builds, seen):
    """A stand-in for Slicer's PyTorch Utils module with the method the plan calls."""
    class PyTorchUtilsLogic:
        @staticmethod
        def getCompatibleComputationBackends(forceComputationBackend=None, torchVersionRequirement=None):
            seen.append(torchVersionRequirement)
            return set(builds)

    return types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic)


@pytest.mark.parametrize("builds, chosen", [({"cpu"}, "cpu"), ({"cpu", "cu118", "cu126"}, "cu126")])
def test_with_pytorch_utils_its_build_is_installed(shipped, monkeypatch, builds, chosen):
    seen = []
    monkeypatch.setitem(sys.modules, "PyTorchUtils", _pytorch_utils(builds, seen))
    monkeypatch.delenv(install.INDEX_URL_VARIABLE, raising=False)
    plan = install.installPlan(shipped, installedVersion=nothing_installed)
    assert seen == ["==2.13.0"]  # PyTorch Utils is asked about the pinned version
    assert plan.steps[0].pipArguments[:3] == ["install", "--extra-index-url", f"https://download.pytorch.org/whl/{chosen}"]
    assert chosen in plan.torchSource and "PyTorch extension" in plan.torchSource


def test_the_index_variable_overrides_both(shipped, monkeypatch):
    monkeypatch.setitem(sys.modules, "PyTorchUtils", _pytorch_utils({"cu126"}, []))
    monkeypatch.setenv(install.INDEX_URL_VARIABLE, "https://mirror.example.org/torch-cpu")
    plan = install.installPlan(shipped, installedVersion=nothing_installed)
    assert plan.steps[0].pipArguments[2] == "https://mirror.example.org/torch-cpu"


def test_an_installed_torch_build_is_kept(shipped):
    versions = {r.name: install.pinnedVersion(r) for r in shipped}
    versions.update(torch="2.13.0+cu126", monai="1.5.0", numpy="2.0.2")
    plan = install.installPlan(shipped, keep=TumorSeg.PROVIDED_BY_SLICER, installedVersion=versions.get)
    assert [s.pipArguments for s in plan.steps] == [["install", "monai==1.6.1"]]
    assert plan.constraints == ["numpy==2.0.2", "torch==2.13.0"]
    assert install.installPlan(shipped, installedVersion={**versions, "monai": "1.6.1"}.get).steps == []


def test_pip_keeps_slicers_numpy_under_the_constraints(tmp_path):
    """The real pip with the plan's constraints refuses a numpy other than the installed one (no network)."""
    from importlib import metadata

    numpy = metadata.version("numpy")
    plan = install.InstallPlan(steps=[install.InstallStep("numpy", ["install", "--dry-run", "--no-index", "numpy==1.26.4"])],
                               constraints=install.installPlan([], keep=["numpy"]).constraints)
    assert plan.constraints == [f"numpy=={numpy}"]
    run = install.InstallRun(sys.executable, plan, tmp_path)
    with pytest.raises(TumorSegError) as error:
        run.wait()
    assert str(error.value) == "ERROR: Cannot install numpy==1.26.4 because these package versions have conflicting dependencies."
    assert f"(constraint) numpy=={numpy}" in error.value.details
    run.close()
    assert list(tmp_path.iterdir()) == []


# --- running pip in the background -------------------------------------------------------------------

FAKE_PIP = """
import os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_PIP_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
    constraints = args[args.index("-c") + 1]
    log.write("constraints: " + open(constraints).read().replace("\\n", ";") + "\\n")
print("Collecting " + args[-1], flush=True)
gate = os.environ.get("FAKE_PIP_GATE")
if gate:
    open(gate).read()  # a named pipe: blocks until the test opens it for writing
if args[-1] in os.environ.get("FAKE_PIP_FAIL", "").split():
    print("ERROR: No matching distribution found for " + args[-1], flush=True)
    sys.exit(1)
print("Successfully installed " + args[-1], flush=True)
"""


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """``python -m pip`` in a folder whose ``pip`` package is a stand-in that logs its arguments."""
    folder = tmp_path / "fakepip"
    (folder / "pip").mkdir(parents=True)
    (folder / "pip" / "__init__.py").write_text("")
    (folder / "pip" / "__main__.py").write_text(FAKE_PIP)
    log = tmp_path / "pip.log"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))
    monkeypatch.setattr(TumorSegLogic, "pythonExecutable", staticmethod(lambda: sys.executable))
    return log


def _plan(*packages):
    return install.InstallPlan(steps=[install.InstallStep(f"Installing {p}", ["install", p]) for p in packages],
                               constraints=["numpy==2.0.2"])


def test_steps_run_in_order_with_the_constraints(fake_pip, tmp_path):
    progress = []
    run = install.InstallRun(sys.executable, _plan("torch==2.13.0", "monai==1.6.1"), tmp_path)
    run.wait(lambda fraction, message: progress.append((fraction, message)))
    assert run.succeeded()
    lines = fake_pip.read_text().splitlines()
    assert lines[0].startswith("install -c ") and lines[0].endswith(" torch==2.13.0")
    assert lines[1] == "constraints: numpy==2.0.2;"
    assert lines[2].endswith(" monai==1.6.1")
    assert (0.0, "Installing torch==2.13.0: Collecting torch==2.13.0") in progress
    assert (0.5, "Installing monai==1.6.1") in progress and progress[-1][0] == 0.5
    run.close()


def test_a_failing_step_stops_with_pips_error_line(fake_pip, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PIP_FAIL", "torch==2.13.0")
    run = install.InstallRun(sys.executable, _plan("torch==2.13.0", "monai==1.6.1"), tmp_path)
    with pytest.raises(TumorSegError) as error:
        run.wait()
    assert str(error.value) == "ERROR: No matching distribution found for torch==2.13.0"
    assert "Collecting torch==2.13.0" in error.value.details
    assert "monai" not in fake_pip.read_text()  # the next step never started
    run.close()


def test_install_requirements_raises_pips_error(fake_pip, tmp_path, monkeypatch):
    """The blocking form (scripts, the module's self-test) gives pip's ERROR line as the message."""
    monkeypatch.setenv("FAKE_PIP_FAIL", "no-such-distribution-tumorseg==1.0")
    requirements = write(tmp_path / "requirements.txt", "no-such-distribution-tumorseg==1.0\n")
    with pytest.raises(TumorSegError) as error:
        TumorSegLogic.installRequirements(requirements)
    assert str(error.value) == "ERROR: No matching distribution found for no-such-distribution-tumorseg==1.0"


def _gate(tmp_path, monkeypatch) -> Path:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    monkeypatch.setenv("FAKE_PIP_GATE", str(gate))
    return gate


def test_cancel_returns_at_once_and_kills_pip(fake_pip, tmp_path, monkeypatch):
    gate = _gate(tmp_path, monkeypatch)
    run = install.InstallRun(sys.executable, _plan("torch==2.13.0"), tmp_path)
    seen = []
    while not seen:  # pip is running (and blocked on the gate)
        run.pump(lambda fraction, message: seen.append(message))
        threading.Event().wait(0.02)
    returned = threading.Event()
    threading.Thread(target=lambda: (run.cancel(), returned.set()), daemon=True).start()
    assert returned.wait(timeout=120), "cancel waited for pip"  # blocks for good if it waits: a bound on a hang
    assert run.finished() and run.cancelled and not run.succeeded()
    for reaper in run.reapers:
        reaper.join(timeout=WAIT_LIMIT_S)
    assert run.process.returncode == -signal.SIGKILL  # killed, not left to finish
    run.close()


# --- the widget: a progress dialog, Detect and Compare disabled until the install ends ----------------------


class FakeTimer:
    def __init__(self):
        self.slot, self.running = None, False

    def setInterval(self, msec):
        pass

    def connect(self, signal_name, slot):
        assert signal_name == "timeout()"
        self.slot = slot

    def start(self):
        self.running = True

    def stop(self):
        self.running = False


class FakeDialog:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs, closed=False, slots={})

    def connect(self, signal_name, slot):
        self.slots[signal_name] = slot

    def close(self):
        self.closed = True


def _button():
    return types.SimpleNamespace(enabled=None, text="", toolTip="")


@pytest.fixture
def widget(monkeypatch, tmp_path):
    """A TumorSegWidget without its .ui: the buttons are plain objects, the scene is real."""
    timers, dialogs, questions = [], [], []
    monkeypatch.setattr(sys.modules["qt"], "QTimer", lambda: timers.append(FakeTimer()) or timers[-1], raising=False)
    monkeypatch.setattr(slicer.util, "createProgressDialog", lambda **kw: dialogs.append(FakeDialog(**kw)) or dialogs[-1])
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda text, **kw: questions.append(text) or True)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: questions.append("error: " + text))
    scene = sf.new_scene()
    flair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "FLAIR")
    parameters = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    parameters.SetNodeReferenceID(TumorSeg.FLAIR_ROLE, flair.GetID())
    w = TumorSeg.TumorSegWidget()
    w.logic = TumorSegLogic()
    w._parameterNode = parameters
    w.ui = types.SimpleNamespace(applyButton=_button(), exportDicomSegButton=_button(), statusLabel=_button(),
                                 flairSelector=_button(), t1Selector=_button(), t1cSelector=_button(),
                                 outputSegmentationSelector=_button())
    w.compareView = types.SimpleNamespace(compareButton=_button())
    requirements = write(tmp_path / "requirements.txt", "no-such-distribution-tumorseg==1.0\n")
    monkeypatch.setattr(TumorSegLogic, "requirementsFile", classmethod(lambda cls: requirements))
    return types.SimpleNamespace(w=w, timers=timers, dialogs=dialogs, questions=questions)


def _fire_until(timer, condition):
    while not condition():
        timer.slot()
        threading.Event().wait(0.02)


def test_install_runs_behind_a_dialog_with_detect_and_compare_disabled(widget, fake_pip, tmp_path, monkeypatch):
    gate = _gate(tmp_path, monkeypatch)
    w = widget.w
    w.updateButtons()
    assert w.ui.applyButton.enabled and w.compareView.compareButton.enabled
    ready = []
    assert w.ensureDependencies(then=lambda: ready.append(True)) is False  # the install started, in the background
    assert "no-such-distribution-tumorseg==1.0" in widget.questions[0]
    dialog, timer = widget.dialogs[0], widget.timers[0]
    assert timer.running and "canceled()" in dialog.slots
    assert not w.ui.applyButton.enabled and not w.compareView.compareButton.enabled
    assert w.ui.applyButton.toolTip == "Installing the Python packages..."
    assert w.ensureDependencies(then=lambda: ready.append("twice")) is False  # a second click starts nothing
    assert len(widget.dialogs) == 1
    _fire_until(timer, lambda: "Collecting" in dialog.labelText)
    assert not w.ui.applyButton.enabled and not ready  # still installing: pip waits on the gate
    with open(gate, "w"):
        pass  # let pip finish
    _fire_until(timer, lambda: not timer.running)
    assert dialog.closed and ready == [True]
    assert w.ui.applyButton.enabled and w.compareView.compareButton.enabled
    assert w.ui.statusLabel.text == "Python packages installed."


def test_cancel_in_the_dialog_ends_the_install(widget, fake_pip, tmp_path, monkeypatch):
    _gate(tmp_path, monkeypatch)
    w = widget.w
    ready = []
    w.ensureDependencies(then=lambda: ready.append(True))
    dialog, timer = widget.dialogs[0], widget.timers[0]
    _fire_until(timer, lambda: "Collecting" in dialog.labelText)
    process = w._install.process
    dialog.slots["canceled()"]()  # returns at once
    _fire_until(timer, lambda: not timer.running)
    assert dialog.closed and ready == [] and w._install is None
    assert w.ui.applyButton.enabled and w.ui.statusLabel.text == "Installing Python packages was cancelled."
    assert process.wait(timeout=WAIT_LIMIT_S) == -signal.SIGKILL


def test_a_failed_install_is_shown_and_the_buttons_come_back(widget, fake_pip, monkeypatch):
    monkeypatch.setenv("FAKE_PIP_FAIL", "no-such-distribution-tumorseg==1.0")
    w = widget.w
    ready = []
    w.ensureDependencies(then=lambda: ready.append(True))
    _fire_until(widget.timers[0], lambda: not widget.timers[0].running)
    assert ready == [] and w.ui.applyButton.enabled
    assert widget.questions[-1] == ("error: Installing the Python packages failed:\n"
                                    "ERROR: No matching distribution found for no-such-distribution-tumorseg==1.0")


# --- the minimum Slicer version ------------------------------------------------------------------------


def test_an_older_slicer_is_refused_at_start_up_and_by_the_logic(monkeypatch, caplog):
    assert TumorSegLogic.slicerVersionProblem((5, 10)) is None and TumorSegLogic.slicerVersionProblem((6, 0)) is None
    assert "needs 3D Slicer 5.10 or later" in TumorSegLogic.slicerVersionProblem((5, 8))
    assert "needs Python 3.10" in TumorSegLogic.slicerVersionProblem((5, 10), (3, 9))
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(majorVersion=5, minorVersion=8), raising=False)
    parent = types.SimpleNamespace()
    with caplog.at_level("ERROR"):
        TumorSeg.TumorSeg(parent)  # what Slicer does when it starts and registers the module
    assert "needs 3D Slicer 5.10 or later; this is Slicer 5.8" in caplog.text.replace(" (PyTorch 2.13 needs Python 3.10+)", "")
    assert "needs 3D Slicer 5.10" in parent.helpText
    scene = sf.new_scene()
    flair = sf.load_volume(scene, sf.SAMPLE_DIR / "flair.nii.gz", "FLAIR")
    with pytest.raises(TumorSegError, match="needs 3D Slicer 5.10 or later"):
        TumorSegLogic().process(flair)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(majorVersion=5, minorVersion=10), raising=False)
    assert TumorSegLogic.slicerVersionProblem() is None
