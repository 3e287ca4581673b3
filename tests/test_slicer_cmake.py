"""The Slicer extension's CMake files: metadata, every listed file exists, every run-time file is listed.

CI cannot configure the extension (that needs a Slicer build tree), so the CMake files are parsed
here: the explicit file lists are checked against the tree, the engine's GLOB_RECURSE patterns are
evaluated the way CMake does, and a real ``monai_core detect`` run is traced (Python audit hooks
and sys.modules) to find every engine and bundle file loaded at run time.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "TumorSegExtension" / "TumorSeg"
SAMPLE_DIR = REPO / "tests" / "data" / "TCGA-FG-6692"


# --- a small CMake reader -----------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:index]
    return line


def _commands(path: Path):
    """(name, [arguments]) for each command in a CMake file; comments dropped, quotes removed."""
    text = "\n".join(_strip_comment(line) for line in path.read_text().splitlines())
    commands = []
    for match in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(((?:[^()\"]|\"[^\"]*\"|\([^()]*\))*)\)", text):
        arguments = [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"|[^\s]+', match.group(2))]
        commands.append((match.group(1).lower(), arguments))
    return commands


def _expand(value: str, variables: dict) -> str:
    for _ in range(5):
        value = re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: variables.get(m.group(1), m.group(0)), value)
    return value


def _variables(commands, initial):
    variables = dict(initial)
    lists = {}
    for name, args in commands:
        if name == "set" and args:
            values = [_expand(a, variables) for a in args[1:]]
            lists[args[0]] = values
            variables[args[0]] = ";".join(values)
    return variables, lists


def _glob_recurse(root: Path, pattern: str):
    """CMake file(GLOB_RECURSE): walk the pattern's directory, match the file name part in every subfolder."""
    directory, name_pattern = os.path.split(pattern)
    base = Path(directory)
    if not base.is_dir():
        return set()
    found = set()
    for folder, _, files in os.walk(base):
        for name in files:
            if fnmatch.fnmatchcase(name, name_pattern):
                found.add((Path(folder) / name).resolve().relative_to(root.resolve()).as_posix())
    return found


@pytest.fixture(scope="module")
def top():
    commands = _commands(REPO / "CMakeLists.txt")
    variables, _ = _variables(commands, {})
    return commands, variables


@pytest.fixture(scope="module")
def module():
    commands = _commands(MODULE_DIR / "CMakeLists.txt")
    variables, lists = _variables(commands, {"CMAKE_CURRENT_SOURCE_DIR": str(MODULE_DIR)})
    return commands, variables, lists


@pytest.fixture(scope="module")
def engine_files(module):
    """The engine and bundle files the module's CMakeLists ships, relative to the repository root."""
    commands, variables, _ = module
    globs = [args for name, args in commands if name == "file" and args and args[0] == "GLOB_RECURSE"]
    assert len(globs) == 1, "expected one file(GLOB_RECURSE TUMORSEG_ENGINE_FILES ...)"
    args = globs[0]
    assert args[1] == "TUMORSEG_ENGINE_FILES"
    root = Path(_expand(args[args.index("RELATIVE") + 1], variables))
    assert root.resolve() == REPO.resolve()
    patterns = [_expand(a, variables) for a in args[2:] if a not in ("LIST_DIRECTORIES", "false", "RELATIVE", "CONFIGURE_DEPENDS")]
    patterns = [p for p in patterns if Path(p).resolve() != root.resolve()]
    matched = {}
    for pattern in patterns:
        matched[pattern] = _glob_recurse(root, pattern)
    return matched


# --- the extension (top-level CMakeLists.txt) ------------------------------------------------------


def test_extension_metadata(top):
    commands, variables = top
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert key in variables, f"{key} is not set"
    assert variables["EXTENSION_CATEGORY"] == "Segmentation"
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL"):
        assert variables[key].startswith("https://")
    assert variables["EXTENSION_ICONURL"].endswith("TumorSegExtension/TumorSeg/Resources/Icons/TumorSeg.png")
    assert variables["EXTENSION_DESCRIPTION"] and variables["EXTENSION_CONTRIBUTORS"]
    assert ("find_package", ["Slicer", "REQUIRED"]) in commands
    assert ("include", ["${Slicer_USE_FILE}"]) in commands
    assert ("include", ["${Slicer_EXTENSION_GENERATE_CONFIG}"]) in commands
    assert ("include", ["${Slicer_EXTENSION_CPACK}"]) in commands
    names = [name for name, _ in commands]
    assert names.index("find_package") < names.index("add_subdirectory") < len(names) - 2


def test_every_subdirectory_and_listed_file_exists(top, module):
    commands, _ = top
    subdirectories = [args[0] for name, args in commands if name == "add_subdirectory"]
    assert subdirectories == ["TumorSegExtension/TumorSeg"]
    assert (REPO / subdirectories[0] / "CMakeLists.txt").is_file()

    module_commands, variables, lists = module
    build = [args for name, args in module_commands if name == "slicermacrobuildscriptedmodule"]
    assert len(build) == 1
    args = build[0]
    assert _expand(args[args.index("NAME") + 1], variables) == "TumorSeg"
    scripts, resources = lists["MODULE_PYTHON_SCRIPTS"], lists["MODULE_PYTHON_RESOURCES"]
    assert "${MODULE_PYTHON_SCRIPTS}" in args and "${MODULE_PYTHON_RESOURCES}" in args
    # the module file, then its helper package TumorSegLib/ (every .py file of it)
    helpers = {p.relative_to(MODULE_DIR).as_posix() for p in (MODULE_DIR / "TumorSegLib").glob("*.py")}
    assert scripts[0] == "TumorSeg.py" and set(scripts[1:]) == helpers, scripts
    for relative in scripts + resources:
        assert (MODULE_DIR / relative).is_file(), f"listed in CMakeLists.txt but missing: {relative}"

    # Testing/ and the Python tests registered there
    tests = [args for name, args in module_commands if name == "slicer_add_python_unittest"]
    for test_args in tests:
        assert (MODULE_DIR / _expand(test_args[test_args.index("SCRIPT") + 1], variables)).is_file()
    assert ("add_subdirectory", ["Testing"]) in module_commands
    testing = _commands(MODULE_DIR / "Testing" / "CMakeLists.txt")
    assert ("add_subdirectory", ["Python"]) in testing
    python_tests = [a for n, a in _commands(MODULE_DIR / "Testing" / "Python" / "CMakeLists.txt") if n == "slicer_add_python_unittest"]
    assert python_tests
    for test_args in python_tests:
        assert (MODULE_DIR / "Testing" / "Python" / test_args[test_args.index("SCRIPT") + 1]).is_file()


def test_icon_and_ui_are_valid():
    from xml.etree import ElementTree

    from PIL import Image

    with Image.open(MODULE_DIR / "Resources" / "Icons" / "TumorSeg.png") as icon:
        assert icon.size == (128, 128)
    ui = ElementTree.parse(MODULE_DIR / "Resources" / "UI" / "TumorSeg.ui").getroot()
    widgets = {w.get("name"): w.get("class") for w in ui.iter("widget")}
    # every self.ui.<name> the module uses is a widget of the .ui file
    used = set(re.findall(r"self\.ui\.([A-Za-z0-9_]+)", (MODULE_DIR / "TumorSeg.py").read_text()))
    assert used <= set(widgets), f"widgets missing from TumorSeg.ui: {sorted(used - set(widgets))}"
    for name in ("flairSelector", "t1Selector", "t1cSelector", "outputSegmentationSelector"):
        assert widgets[name] == "qMRMLNodeComboBox"
    assert widgets["sliceTableView"] == "qMRMLTableView"


def test_every_resource_the_module_loads_is_listed(module):
    _, _, lists = module
    resources = set(lists["MODULE_PYTHON_RESOURCES"])
    tree = ast.parse((MODULE_DIR / "TumorSeg.py").read_text())
    loaded = set()
    for node in ast.walk(tree):
        # self.resourcePath("UI/TumorSeg.ui") -> Resources/UI/TumorSeg.ui
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "resourcePath":
            loaded.add("Resources/" + node.args[0].value)
        # ... / "Resources" / "requirements.txt"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
            left = node.left
            if isinstance(left, ast.BinOp) and isinstance(left.right, ast.Constant) and left.right.value == "Resources":
                loaded.add("Resources/" + node.right.value)
    assert "Resources/UI/TumorSeg.ui" in loaded and "Resources/requirements.txt" in loaded
    assert loaded <= resources, f"loaded at run time but not installed: {sorted(loaded - resources)}"
    on_disk = {p.relative_to(MODULE_DIR).as_posix() for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()}
    assert on_disk == resources, f"resources not listed: {sorted(on_disk - resources)}"


# --- the engine and the bundle shipped with the module -----------------------------------------------


def test_engine_patterns_match_files(engine_files):
    for pattern, files in engine_files.items():
        if "/bundle/docs/" in pattern:
            continue  # docs are optional in the tree
        assert files, f"{pattern} matches no file"


def test_whole_engine_package_is_shipped(engine_files):
    shipped = set().union(*engine_files.values())
    package = {p.relative_to(REPO).as_posix() for p in (REPO / "monai_core").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert package - shipped == set(), f"monai_core files not shipped: {sorted(package - shipped)}"
    for required in ("bundle/configs/inference.json", "bundle/configs/metadata.json", "bundle/LICENSE"):
        if (REPO / required).exists():
            assert required in shipped


_TRACE = r"""
import json, os, sys
opened = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, os.PathLike)):
        opened.add(os.fspath(args[0]))
sys.addaudithook(hook)
from monai_core.cli import main
code = main(sys.argv[2:])
files = set(opened) | {getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "files": sorted(f for f in files if f)}, out)
"""


@pytest.fixture(scope="module")
def detect_trace(tmp_path_factory):
    """Repository files (monai_core/, bundle/) that a real ``detect`` run imports or opens."""
    tmp_path = tmp_path_factory.mktemp("trace")
    trace = tmp_path / "trace.json"
    command = [sys.executable, "-c", _TRACE, str(trace), "detect", "--flair", str(SAMPLE_DIR / "flair.nii.gz"),
               "-o", str(tmp_path / "out"), "--case-id", "case", "--progress", "none"]
    # As on a user's machine, Python writes bytecode (__pycache__/*.pyc) beside the engine's sources,
    # whatever the developer's shell says: the trace must not count those caches as unshipped files.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = json.loads(trace.read_text())
    assert recorded["code"] == 0
    loaded = set()
    for name in recorded["files"]:
        path = Path(name).resolve() if os.path.isabs(name) else (REPO / name).resolve()
        try:
            relative = path.relative_to(REPO.resolve()).as_posix()
        except ValueError:
            continue
        if relative.startswith(("monai_core/", "bundle/")) and path.is_file():
            loaded.add(_source_of(relative))
    return loaded


def _source_of(relative: str) -> str:
    """A bytecode cache (``__pycache__/*.pyc``, written wherever Python may write bytecode) stands for
    its source file: Python writes it from the shipped ``.py``, so the ``.py`` is what must be shipped."""
    if "__pycache__" in Path(relative).parts:
        # importlib writes a cache through a temporary name, "<name>.pyc.<number>", then renames it
        return Path(importlib.util.source_from_cache(re.sub(r"\.pyc\.\d+$", ".pyc", relative))).as_posix()
    return relative


def test_a_bytecode_cache_stands_for_its_source():
    assert _source_of("monai_core/__pycache__/detect.cpython-311.pyc") == "monai_core/detect.py"
    assert _source_of("monai_core/io/__pycache__/dicom.cpython-311.pyc.140234") == "monai_core/io/dicom.py"
    assert _source_of("bundle/configs/inference.json") == "bundle/configs/inference.json"


def test_every_engine_file_loaded_at_run_time_is_shipped(engine_files, detect_trace):
    """Trace a real detect run: every monai_core/ or bundle/ file it imports or opens is in the CMake list."""
    assert any(f.startswith("bundle/models/") for f in detect_trace), f"the trace saw no weights file: {sorted(detect_trace)}"
    assert "bundle/configs/inference.json" in detect_trace and "monai_core/detect.py" in detect_trace
    shipped = set().union(*engine_files.values())
    assert detect_trace - shipped == set(), f"loaded at run time but not shipped: {sorted(detect_trace - shipped)}"


# --- the Python requirements installed into Slicer ---------------------------------------------------


def _pins():
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # Python 3.10: the installed project's metadata carries the same list
        dependencies = [r for r in metadata.requires("tumorseg") if "extra ==" not in r]
    else:
        dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for requirement in dependencies:
        name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", requirement).groups()
        pins[name.lower()] = version
    return pins


def _requirements():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import slicer_fixture as sf

    module = sf.import_module()
    requirements = module.TumorSegLogic.readRequirements()
    return {r.name.lower(): module.install.pinnedVersion(r) for r in requirements}, module.PROVIDED_BY_SLICER


def test_requirements_are_pinned_to_the_project_versions():
    requirements, _ = _requirements()
    pins = _pins()
    assert requirements["torch"] == "2.13.0"
    for name, version in requirements.items():
        assert version is not None, f"{name} is not pinned (name==version) in Resources/requirements.txt"
        assert name in pins, f"{name} is not a dependency in pyproject.toml"
        assert version == pins[name], f"{name}=={version} but pyproject.toml pins {pins[name]}"


def test_requirements_cover_every_third_party_import_of_the_engine(detect_trace):
    """Every package imported (at top level or in a function) by an engine module that detect loads.

    Modules detect never loads (the batch engines, training helpers) may need more, e.g. ray.
    """
    requirements, provided = _requirements()
    covered = set(requirements) | {p.lower() for p in provided}
    distributions = {k: [d.lower() for d in v] for k, v in metadata.packages_distributions().items()}
    imported = set()
    modules = sorted(f for f in detect_trace if f.startswith("monai_core/") and f.endswith(".py"))
    for relative in modules:
        path = REPO / relative
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "monai_core"}
    uncovered = {}
    for name in sorted(third_party):
        dists = distributions.get(name)
        assert dists, f"monai_core imports {name}, which no installed distribution provides"
        if not covered & set(dists):
            uncovered[name] = dists
    assert not uncovered, f"engine imports not in Resources/requirements.txt: {uncovered}"
