"""Installing the engine's Python packages into Slicer's Python, in processes of their own.

- :func:`readRequirements` reads ``Resources/requirements.txt``: PEP 508 lines (a name, a version
  specifier, extras, an environment marker such as ``; sys_platform != "darwin"``), comments and
  blank lines. pip options (``-r``, ``--index-url`` ...) are refused: where torch comes from is
  decided here, not in the file.
- :func:`missingRequirements` lists the requirements that apply to this platform and are not
  installed at a version they accept (a local label, as in ``2.13.0+cpu``, is the same release).
- :func:`installPlan` turns them into pip commands. PyTorch comes first, from the index of the build
  to use: the CPU or CUDA build that Slicer's PyTorch Utils extension chooses for this machine when
  that extension is installed (as SlicerMONAIAuto3DSeg relies on), else the CPU build, and
  ``TUMORSEG_TORCH_INDEX_URL`` overrides both. PyPI's Linux wheel of torch is the CUDA build
  (several GB); the PyTorch indexes label theirs ``+cpu`` or ``+cuXYZ``, which sorts above PyPI's and
  is what pip picks. Then the rest, with a constraints file that holds the packages Slicer ships
  itself (numpy, SimpleITK) and torch at their installed versions, so that pip cannot replace them.
- :class:`InstallRun` runs the commands one after the other in child processes; the caller pumps
  it (from a Qt timer) and may cancel it, which returns at once.

No Qt here, and torch is never imported into Slicer's own Python.
"""

import contextlib
import logging
import os
import queue
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .errors import TumorSegError

TORCH = "torch"
PYTORCH_INDEX = "https://download.pytorch.org/whl/{build}"
INDEX_URL_VARIABLE = "TUMORSEG_TORCH_INDEX_URL"


def _installedVersion(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def readRequirements(path):
    """The requirements of ``path`` (``packaging.requirements.Requirement`` objects), in file order.

    :raises TumorSegError: naming the file and line of anything that is not a requirement.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    requirements = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-"):
            raise TumorSegError(f"{path}, line {number}: pip options are not supported here ({line})")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise TumorSegError(f"{path}, line {number}: not a requirement: {line} ({error})") from None
        if requirement.url:
            raise TumorSegError(f"{path}, line {number}: a requirement must name a version, not a URL ({line})")
        requirements.append(requirement)
    return requirements


def applies(requirement, environment=None):
    """True when the requirement's environment marker (if any) holds on this platform."""
    return requirement.marker is None or requirement.marker.evaluate(environment)


def pinnedVersion(requirement):
    """The version of an exact ``==`` pin, else None."""
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator == "==" and "*" not in specifiers[0].version:
        return specifiers[0].version
    return None


def missingRequirements(requirements, installedVersion=_installedVersion, environment=None):
    """The requirements that apply here and are not installed at a version they accept."""
    missing = []
    for requirement in requirements:
        if not applies(requirement, environment):
            continue
        installed = installedVersion(requirement.name)
        if installed is None or not requirement.specifier.contains(installed, prereleases=True):
            missing.append(requirement)
    return missing


def describe(requirement, installedVersion=_installedVersion):
    """``name==version``, with the installed version it replaces, for the confirmation dialog."""
    text = f"{requirement.name}{requirement.specifier}"
    installed = installedVersion(requirement.name)
    return f"{text} (replaces {installed})" if installed else text


def pytorchUtilsBuild(torchRequirement):
    """The torch build (``cpu``, ``cu126`` ...) that Slicer's PyTorch Utils extension chooses here, or None.

    None when the extension is not installed. PyTorch Utils asks light-the-torch which builds this
    machine's NVIDIA driver supports; like its automatic choice, the newest CUDA build is taken
    when there is one, else the CPU build.
    """
    try:
        import PyTorchUtils
    except ImportError:
        return None
    builds = PyTorchUtils.PyTorchUtilsLogic.getCompatibleComputationBackends(torchVersionRequirement=str(torchRequirement.specifier))
    return chooseBuild(builds)


def chooseBuild(builds):
    """The newest CUDA build of ``builds`` (``cu118`` < ``cu126``), else ``cpu``."""
    cuda = [b for b in builds if b.startswith("cu") and b[2:].isdigit()]
    return max(cuda, key=lambda b: int(b[2:])) if cuda else "cpu"


def torchIndex(torchRequirement, environ=None, chooseWithPyTorchUtils=pytorchUtilsBuild):
    """(index URL, why) of the torch build to install."""
    environ = os.environ if environ is None else environ
    if environ.get(INDEX_URL_VARIABLE):
        return environ[INDEX_URL_VARIABLE], f"from {INDEX_URL_VARIABLE}"
    build = chooseWithPyTorchUtils(torchRequirement)
    if build is not None:
        return PYTORCH_INDEX.format(build=build), f"the {build} build, chosen by the PyTorch extension"
    return PYTORCH_INDEX.format(build="cpu"), "the CPU build (the PyTorch extension, if installed, would choose CPU or CUDA)"


@dataclass
class InstallStep:
    label: str
    pipArguments: list  # after "python -m pip"


@dataclass
class InstallPlan:
    steps: list = field(default_factory=list)
    missing: list = field(default_factory=list)  # the requirements it installs
    torchSource: str = ""  # where torch comes from and why ("" when torch is not installed)
    constraints: list = field(default_factory=list)  # lines of the pip constraints file every step uses


def installPlan(requirements, keep=(), installedVersion=_installedVersion, environ=None,
                chooseWithPyTorchUtils=pytorchUtilsBuild):
    """The pip commands that install the missing ``requirements`` (none when nothing is missing).

    :param keep: packages Slicer ships itself (numpy, SimpleITK): held at their installed versions,
        as torch is at its pin, by a constraints file that :class:`InstallRun` passes to every step.
    """
    missing = missingRequirements(requirements, installedVersion)
    plan = InstallPlan(missing=missing)
    plan.constraints = [f"{name}=={installedVersion(name)}" for name in keep if installedVersion(name)]
    plan.constraints += [str(r) for r in requirements if r.name.lower() == TORCH and applies(r)]
    torch = next((r for r in missing if r.name.lower() == TORCH), None)
    others = [r for r in missing if r is not torch]
    if torch is not None:
        url, plan.torchSource = torchIndex(torch, environ, chooseWithPyTorchUtils)
        plan.steps.append(InstallStep(f"Installing PyTorch ({plan.torchSource})",
                                      ["install", "--extra-index-url", url, str(torch)]))
    if others:
        plan.steps.append(InstallStep("Installing " + ", ".join(r.name for r in others),
                                      ["install", *(str(r) for r in others)]))
    return plan


def _readLines(stream, lines):
    for line in stream:
        lines.put(line.rstrip("\r\n"))
    stream.close()


class InstallRun:
    """Runs a plan's pip commands one after the other with ``python -m pip``; pump it until :meth:`finished`.

    :param python: the Python to install into (PythonSlicer in Slicer).
    :param plan: an :class:`InstallPlan`.
    :param folder: where the constraints file's temporary folder goes (default: the system's).
    """

    def __init__(self, python, plan, folder=None):
        self.python = str(python)
        self.plan = plan
        self.constraintsFile = Path(tempfile.mkdtemp(prefix="TumorSeg-install-", dir=folder)) / "constraints.txt"
        self.constraintsFile.write_text("".join(line + "\n" for line in plan.constraints))
        self.step = -1
        self.process = None
        self.reader = None
        self.lines = None
        self.log = []
        self.cancelled = False
        self.error = None
        self.reapers = []
        self._next()

    def _next(self):
        self.step += 1
        if self.step >= len(self.plan.steps):
            self.process = None
            return
        command, *rest = self.plan.steps[self.step].pipArguments
        command = [self.python, "-m", "pip", command, "-c", str(self.constraintsFile), *rest]
        logging.info("TumorSeg: " + subprocess.list2cmdline(command))
        self.log.append("$ " + subprocess.list2cmdline(command))
        kwargs = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        text=True, encoding="utf-8", errors="replace", **kwargs)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=_readLines, args=(self.process.stdout, self.lines), daemon=True)
        self.reader.start()

    def finished(self):
        return self.cancelled or self.error is not None or self.step >= len(self.plan.steps)

    def succeeded(self):
        return self.finished() and not self.cancelled and self.error is None

    def pump(self, progressCallback=None):
        """Handle the output so far; start the next command when one ends; stop at the first failure."""
        while not self.finished():
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                if self.process.poll() is None or self.reader.is_alive() or not self.lines.empty():
                    return
                code = self.process.returncode
                if code != 0:
                    errors = [line for line in self.log if line.startswith("ERROR:")]
                    self.error = TumorSegError(errors[0] if errors else f"pip exited with code {code}", "\n".join(self.log))
                    return
                self._next()
                if progressCallback and not self.finished():
                    progressCallback(self.step / len(self.plan.steps), self.plan.steps[self.step].label)
                continue
            self.log.append(line)
            if progressCallback and line.strip():
                progressCallback(self.step / len(self.plan.steps), f"{self.plan.steps[self.step].label}: {line.strip()[:120]}")

    def cancel(self):
        """Stop now: the running pip is killed and reaped in the background."""
        self.cancelled = True
        process, reader = self.process, self.reader
        if process is None or process.poll() is not None:
            return
        if os.name != "nt":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        reaper = threading.Thread(target=_reap, args=(process, reader), name="TumorSeg install reaper", daemon=True)
        reaper.start()
        self.reapers.append(reaper)

    def close(self):
        """Remove the constraints file (and its folder when nothing else is in it)."""
        self.constraintsFile.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.constraintsFile.parent.rmdir()

    def wait(self, progressCallback=None, idle=None):
        """Run to the end (for scripts and tests); ``idle()`` is called between pumps (Slicer: processEvents)."""
        import time

        while not self.finished():
            self.pump(progressCallback)
            if idle:
                idle()
            if not self.finished():
                time.sleep(0.05)
        if self.error is not None:
            raise self.error


def _reap(process, reader):
    if os.name == "nt" and process.poll() is None:
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True)
    process.wait()
    reader.join()
