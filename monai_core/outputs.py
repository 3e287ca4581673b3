"""Write one case's outputs atomically into ``OUT/<case_id>/`` (see DESIGN.md, "Output contract").

Everything is written into a hidden temporary folder beside the final one, ``report.json`` last,
and the folder is renamed into place only when complete (swapped atomically with an existing one
on ``--overwrite``), so a case folder is either the complete previous one or the complete new
one, whenever the process is killed. A failure to write (read-only folder, full disk) is an
InputError naming the folder, and leaves no temporary folder and no folder the writer created.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

__all__ = ["case_folder_ready", "CaseWriter", "write_atomic", "write_json_atomic"]

TUMOR_SEGMENT = {
    "id": "Tumor",
    "name": "Tumor",
    "color": [0.9, 0.2, 0.2],
    # 3D Slicer terminology: SNOMED CT Morphologically Altered Structure / Neoplasm, region Brain
    "terminology": {
        "contextName": "Segmentation category and type - 3D Slicer General Anatomy list",
        "category": ["SCT", "49755003", "Morphologically Altered Structure"],
        "type": ["SCT", "108369006", "Neoplasm"],
        "anatomicContextName": "Anatomic codes - DICOM master list",
        "anatomicRegion": ["SCT", "12738006", "Brain"],
    },
}


def case_folder_ready(out_root: str | Path, case_id: str, overwrite: bool) -> Path:
    """The final case folder; refuses to go on when it exists and ``overwrite`` is not set."""
    if not case_id or case_id in {".", ".."} or "/" in case_id or "\\" in case_id:
        raise InputError(None, f"invalid case id {case_id!r}")
    final = Path(out_root) / case_id
    if final.exists() and not overwrite:
        raise InputError(final, "output already exists; use --overwrite to replace it")
    return final


def write_atomic(path: Path, write, mode: int = 0o644) -> None:
    """Call ``write(binary_stream)`` on a temporary file beside ``path``, fsync it, rename it over ``path``.

    A reader sees the old file or the complete new one, never a partial file, whenever the
    process dies; the folder is fsynced too so that the rename itself survives a power cut.
    ``mode``: the file's permissions (0o600 for patient data that only its owner may read).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, mode)  # mkstemp makes it private; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        _fsync(path.parent)
    except OSError:  # folders cannot be opened for fsync on some platforms
        pass


def write_json_atomic(path: Path, content, mode: int = 0o644) -> None:
    """Write JSON atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda stream: stream.write((json.dumps(content, indent=2) + "\n").encode()), mode)


class CaseWriter:
    """Context manager that collects a case's files in a temporary folder and publishes them together.

    >>> with CaseWriter(out_root, case_id, overwrite) as folder:   # doctest: +SKIP
    ...     write files into folder; write report.json last
    """

    def __init__(self, out_root: str | Path, case_id: str, overwrite: bool = False) -> None:
        self.final = case_folder_ready(out_root, case_id, overwrite)
        self.overwrite = overwrite
        self.tmp: Path | None = None
        self.created: list[Path] = []  # output folders this writer made, removed again on failure

    def __enter__(self) -> Path:
        parent = self.final.parent
        self.created = [p for p in (parent, *parent.parents) if not p.exists()][::-1]
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", suffix=".partial", dir=parent))
            self.tmp.chmod(0o755)  # mkdtemp makes it private; the published case folder is not
        except OSError as error:
            self._remove_created()
            raise InputError(parent, f"cannot write the output folder ({error.strerror})") from None
        return self.tmp

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            try:
                self._publish()
                return
            except OSError as error:
                kind, value = type(error), error
            except BaseException:
                self._discard()
                raise
        self._discard()
        if isinstance(value, OSError):  # full disk, quota, read-only: the output cannot be written
            raise InputError(self.final.parent, f"cannot write the outputs ({value.strerror or value})") from None

    def _publish(self) -> None:
        for path in self.tmp.iterdir():  # on disk before the rename makes them visible
            _fsync(path)
        _fsync(self.tmp)
        if self.final.exists():
            if not self.overwrite:
                raise InputError(self.final, "output appeared while running; not overwritten")
            if _exchange(self.tmp, self.final):  # atomic: the old case moves to the temporary name
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:  # no atomic exchange on this system: a short window without a case folder
                old = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", suffix=".old", dir=self.final.parent))
                os.replace(self.final, old / "case")
                os.replace(self.tmp, self.final)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.final)
        _fsync(self.final.parent)

    def _discard(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in reversed(self.created):
            try:
                folder.rmdir()
            except OSError:
                break


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def write_mask_nifti(mask, path: Path) -> None:
    """uint8 mask: a SimpleITK image on the FLAIR grid, or an (N, 256, 256) Kaggle slice stack.

    A Kaggle stack is written as a (256, 256, N) array in which ``[:, :, k]`` is slice file k+1,
    rows and columns as the ``.tif`` is read (identity affine: the spacing is unknown).
    """
    if isinstance(mask, sitk.Image):
        # niftilib reports a failed write (full disk) only on stderr and leaves a short file, so
        # make sure of the space first and check the file afterwards
        if shutil.disk_usage(path.parent).free < int(np.prod(mask.GetSize())) + (1 << 16):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        sitk.WriteImage(sitk.Cast(mask, sitk.sitkUInt8), str(path), useCompression=True)
        from .io.volumes import _check_nifti

        try:
            _check_nifti(path)
        except InputError as error:
            raise OSError(errno.EIO, f"{path.name} was not written completely ({error.problem})", str(path)) from None
        return
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ascontiguousarray(mask.transpose(1, 2, 0), dtype=np.uint8), np.eye(4)), str(path))


def write_seg_nrrd(mask, path: Path) -> None:
    """A 3D Slicer segmentation (``.seg.nrrd``) with one segment "Tumor", written by slicerio."""
    import slicerio

    if isinstance(mask, sitk.Image):
        voxels = sitk.GetArrayFromImage(mask).transpose(2, 1, 0)  # (i, j, k)
        direction = np.asarray(mask.GetDirection()).reshape(3, 3) * np.asarray(mask.GetSpacing())
        ijk_to_lps = np.eye(4)
        ijk_to_lps[:3, :3] = direction
        ijk_to_lps[:3, 3] = mask.GetOrigin()
    else:
        voxels = mask.transpose(1, 2, 0)  # same array layout as the Kaggle NIfTI
        ijk_to_lps = np.eye(4)
    segmentation = slicerio.create_segmentation(voxels.shape, ijk_to_lps)
    slicerio.add_segment(segmentation, voxels > 0, dict(TUMOR_SEGMENT))
    slicerio.write_segmentation(str(path), segmentation)


def write_overlay_png(slices: np.ndarray, masks: np.ndarray, flagged: np.ndarray, path: Path, columns: int = 6) -> None:
    """Montage of the flagged model-space slices (FLAIR channel) with the mask outline in colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = np.flatnonzero(flagged)
    if len(index) == 0:
        index = np.array([len(slices) // 2])
    rows = int(np.ceil(len(index) / columns))
    cols = min(columns, len(index))
    figure, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), index):
        ax.imshow(slices[k, 1], cmap="gray", vmin=0, vmax=1)
        if masks[k].any():
            ax.contour(masks[k], levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"slice {k}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
