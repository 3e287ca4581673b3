"""``tumorseg detect`` on the corpus of malformed inputs (tests/malformed/make_corpus.py).

For every case: exit code 2, exactly one line on stderr naming the file and the problem, no
traceback, no patient name, no output folder, no temporary file, no change to an existing output.
The command runs in-process (``monai_core.cli.main``) with the session's already loaded networks;
two cases also run as a real ``python -m monai_core`` process.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import fail_after, run_cli

sys.path.insert(0, str(Path(__file__).parent / "malformed"))
import make_corpus  # noqa: E402

from monai_core.cli import main  # noqa: E402
from monai_core.errors import InputError  # noqa: E402

CORPUS = Path(tempfile.mkdtemp(prefix="tumorseg-corpus-"))
atexit.register(shutil.rmtree, CORPUS, True)
CASES = make_corpus.build(CORPUS)
SECRETS = (make_corpus.SECRET_NAME, "Secretpatient", "Zyxwvut", make_corpus.SECRET_ID)


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` with its size, mtime and content hash."""
    if not root.exists():
        return {}
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            state[os.path.join(folder, name)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            info = os.stat(path)
            state[path] = (info.st_size, info.st_mtime_ns, hashlib.sha256(Path(path).read_bytes()).hexdigest())
    return state


@pytest.fixture
def in_process(pipeline, monkeypatch, tmp_path):
    """``main`` with the session's networks instead of a fresh load, and a private temp folder."""
    import monai_core.pipeline

    monkeypatch.setattr(monai_core.pipeline, "TumorSegPipeline", lambda *a, **k: pipeline)
    private_tmp = tmp_path / "system_tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    yield private_tmp
    assert list(private_tmp.iterdir()) == [], "temporary files left behind"


def _mount(target: Path, options: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def special_output(tmp_path, monkeypatch):
    """``make(kind)`` returns an output folder that is read-only or on a full disk."""
    mounts = []

    def make(kind: str) -> Path:
        base = tmp_path / kind
        if kind == "readonly":
            if _mount(base, "ro,size=1m"):
                mounts.append(base)
            elif os.geteuid() != 0:
                base.mkdir()
                base.chmod(0o555)
            else:
                pytest.skip("a read-only folder needs a tmpfs mount when running as root")
        elif _mount(base, "size=64k"):  # full: a filler takes every block
            mounts.append(base)
            fd = os.open(base / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
        else:  # simulate: every fsync of an output reports a full disk
            base.mkdir()

            def full(fd):
                raise OSError(28, os.strerror(28))

            monkeypatch.setattr(os, "fsync", full)
        return base / "out"

    yield make
    for target in mounts:
        _umount(target)


def existing_output(root: Path) -> Path:
    """An output folder holding a previous complete case 'victim' and another case."""
    for case in ("victim", "other"):
        folder = root / case
        folder.mkdir(parents=True)
        (folder / "segmentation.nii.gz").write_bytes(b"previous segmentation " + case.encode())
        (folder / "report.json").write_text('{"case_id": "%s"}\n' % case)
    return root


def check_error_line(err: str, case, out: Path) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, f"{case.name}: expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("tumorseg: error: "), line
    assert "Traceback" not in err
    assert case.names.replace("{out}", str(out)) in line, f"{case.name}: path not named: {line}"
    assert case.problem in line.lower(), f"{case.name}: problem {case.problem!r} not in: {line}"
    assert not any(secret in err for secret in SECRETS), f"{case.name}: patient data in the message: {line}"


def test_corpus_is_large_and_covers_the_issue():
    names = {case.name for case in CASES}
    assert len(CASES) >= 30 and len(names) == len(CASES)
    for required in (
        "nifti_zero_byte", "nifti_truncated_gz", "nrrd_zero_byte", "nrrd_truncated", "dicom_zero_byte",
        "dicom_truncated_pixels", "nifti_dims_exceed_data", "nifti_zero_pixdim", "nifti_negative_pixdim",
        "nifti_singular_affine", "dicom_no_pixel_data", "dicom_no_image_position", "dicom_duplicate_positions",
        "dicom_mixed_series", "dicom_missing_slice", "dicom_ct_modality", "dicom_unsupported_transfer_syntax",
        "nifti_2d", "nifti_4d", "nifti_1x1x1", "nifti2_huge_declared_100000_cubed", "nifti_nan", "nifti_inf",
        "nifti_constant", "nifti_scl_slope_overflow", "t1_does_not_overlap_flair", "kaggle_numbering_gap",
        "kaggle_mixed_sizes", "kaggle_unicode_and_spaces", "output_read_only", "output_disk_full",
    ):
        assert required in names, required


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_detect_refuses_with_one_line(case, in_process, special_output, tmp_path, capfd):
    inputs_before = snapshot(CORPUS)
    if case.output:
        out = special_output(case.output)
        parent_before = snapshot(out.parent)
        code = main(["detect", *case.args, "-o", str(out), "--progress", "none"])
        captured = capfd.readouterr()
        assert code == 2, captured.err
        check_error_line(captured.err, case, out)
        assert not out.exists(), "an output folder was left behind"
        assert snapshot(out.parent) == parent_before
        assert snapshot(CORPUS) == inputs_before
        return

    # 1. a fresh output folder: nothing may be created
    out = tmp_path / "fresh" / "out"
    # a last guard: a loader stuck on a huge declared size fails the test instead of stopping it
    with fail_after(600, f"refusing {case.name}"):
        code = main(["detect", *case.args, "-o", str(out), "--progress", "none"])
    captured = capfd.readouterr()
    assert code == 2, captured.err
    assert captured.out == ""
    check_error_line(captured.err, case, out)
    assert not (tmp_path / "fresh").exists(), "an output folder was left behind"

    # 2. an existing output, with --overwrite of that very case: nothing may change
    out = existing_output(tmp_path / "existing")
    before = snapshot(out)
    code = main(["detect", *case.args, "-o", str(out), "--case-id", "victim", "--overwrite", "--progress", "json"])
    captured = capfd.readouterr()
    assert code == 2, captured.err
    error_lines = [line for line in captured.err.splitlines() if not line.startswith("{")]
    check_error_line("\n".join(error_lines), case, out)
    assert not any(secret in captured.err for secret in SECRETS)
    assert snapshot(out) == before, "the existing output changed"
    assert snapshot(CORPUS) == inputs_before, "the inputs changed or files appeared beside them"


@pytest.mark.parametrize("name", ["dicom_no_pixel_data_one_file", "nifti_unicode_and_spaces_truncated"])
def test_a_real_process_prints_one_line(name, tmp_path):
    """The same contract from a fresh process: C-level output of ITK/niftilib would show here."""
    case = next(c for c in CASES if c.name == name)
    out = tmp_path / "out"
    done = run_cli("detect", *case.args, "-o", out, "--progress", "none", timeout=300)
    assert done.returncode == 2, done.stderr
    check_error_line(done.stderr, case, out)
    assert done.stdout == "" and not out.exists()


def test_bad_input_fails_before_the_models_load(monkeypatch, tmp_path, capfd):
    import monai_core.pipeline

    def no_load(*args, **kwargs):
        raise AssertionError("the models were loaded before the inputs were checked")

    monkeypatch.setattr(monai_core.pipeline, "TumorSegPipeline", no_load)
    good = str(next(c for c in CASES if c.name == "t1_missing_file").args[1])
    missing = tmp_path / "missing flair.nii.gz"
    for args, named in (
        (["--flair", str(missing)], missing),
        (["--flair", good, "--t1c", str(missing)], missing),
        ([str(tmp_path / "no_case")], tmp_path / "no_case"),
    ):
        assert main(["detect", *args, "-o", str(tmp_path / "out"), "--progress", "none"]) == 2
        err = capfd.readouterr().err
        assert str(named) in err and "no such file" in err
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["detect", "--flair", good, "-o", str(blocker / "out"), "--progress", "none"]) == 2
    assert "not a folder" in capfd.readouterr().err
    existing_output(tmp_path / "existing")
    assert main(["detect", "--flair", good, "-o", str(tmp_path / "existing"), "--case-id", "victim"]) == 2
    assert "already exists" in capfd.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", [c.name for c in CASES if "huge" in c.tags])
def test_huge_declarations_are_refused_before_allocation(name):
    """Read in a process whose address space is capped at 1.5 GiB: any large allocation would fail."""
    case = next(c for c in CASES if c.name == name)
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))\n"
        "from monai_core.io.volumes import read_volume\n"
        "from monai_core.errors import InputError\n"
        "try:\n"
        "    read_volume(sys.argv[1])\n"
        "except InputError as error:\n"
        "    print(error)\n"
    )
    # the address-space cap is the check: allocating the declared size would raise MemoryError, not
    # InputError; the timeout is only a last guard against a hang
    done = subprocess.run([sys.executable, "-c", script, case.args[1]], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert case.problem in done.stdout, done.stdout


def test_read_volume_raises_input_error_only():
    """The loaders alone (no CLI): every volume case is an InputError naming the path."""
    from monai_core.io.volumes import read_volume

    for case in CASES:
        if case.output or case.args[0] != "--flair" or len(case.args) != 2:
            continue
        with pytest.raises(InputError) as caught:
            read_volume(case.args[1])
        assert case.problem in str(caught.value).lower(), (case.name, str(caught.value))
