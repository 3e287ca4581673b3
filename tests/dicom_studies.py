"""Whole clinical DICOM studies for tests, derived at test time from this repository's real data.

The headers are those of the real scanner series in ``tests/data/dicom/PGBM-001_T1post``, rewritten
with pydicom; the pixels are the real TCGA-FG-6692 volumes (``tests/data/TCGA-FG-6692``), resampled
where a series needs another geometry. :func:`philips_study` builds the issue's 19-series study:
localizers, diffusion and its derived registrations, SWI, BOLD, perfusion, two same-named FLAIRs,
a same-named pre/post-contrast T1 pair, a 200-slice 3D coronal T1, 3D isotropic T1s and their
reformats, and T2 TSE series. Only the FLAIR (701), T1 (901), T1c (1201) and axial T2 (301) hold a whole volume;
the other series are a few slices (small matrices), which is all the series choice reads. Like the issue's
scanner, the study may be written with zero outside the head (:func:`zero_outside_head`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

DATA = Path(__file__).resolve().parent / "data"
TEMPLATE = DATA / "dicom" / "PGBM-001_T1post" / "1-07.dcm"
RAW = DATA / "TCGA-FG-6692"
AXIAL, CORONAL, SAGITTAL = (1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 0, -1), (0, 1, 0, 0, 0, -1)
ORIGINAL = ("ORIGINAL", "PRIMARY", "M", "NORM")
DERIVED = ("DERIVED", "SECONDARY", "MPR")


def volume(name: str) -> sitk.Image:
    return sitk.ReadImage(str(RAW / f"{name}.nii.gz"), sitk.sitkFloat32)


def zero_outside_head(image: sitk.Image) -> sitk.Image:
    """``image`` with every voxel outside the head set to zero, slice by slice, as some scanners write it.

    The head is what lies above 5% of the 99th percentile of the positive voxels, closed, its holes
    filled, largest component per slice: skull and scalp stay, only the air around them becomes 0.
    """
    voxels = sitk.GetArrayFromImage(image)
    level = 0.05 * np.percentile(voxels[voxels > 0], 99)
    head = np.zeros(voxels.shape, bool)
    for z in range(len(voxels)):
        section = sitk.GetImageFromArray((voxels[z] > level).astype(np.uint8))
        filled = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(section, [2, 2]))
        head[z] = sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(filled), sortByObjectSize=True) == 1)
    out = sitk.GetImageFromArray(np.where(head, voxels, 0).astype(np.float32))
    out.CopyInformation(image)
    return out


def regrid(image: sitk.Image, orientation, size, spacing) -> sitk.Image:
    """``image`` resampled onto a grid of ``orientation`` (DICOM row and column cosines) centred on it."""
    row, column = np.array(orientation[:3], float), np.array(orientation[3:], float)
    direction = np.column_stack([row, column, np.cross(row, column)])
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))
    origin = centre - direction @ ((np.array(size) - 1) / 2 * np.array(spacing))
    return sitk.Resample(image, [int(n) for n in size], sitk.Transform(), sitk.sitkLinear, origin.tolist(),
                         [float(s) for s in spacing], direction.ravel().tolist(), 0.0, sitk.sitkFloat32)


def write_series(folder: Path, image: sitk.Image, description: str, number: int | None, study: dict, *,
                 time: str | None = "090000", image_type=ORIGINAL, acquisition: str = "2D", agent: str | None = None,
                 protocol: str | None = None, tags: dict | None = None, orientations=None) -> str:
    """Write ``image`` as a single-frame MR series (one file per z slice) with these headers; returns its UID.

    ``study`` holds StudyInstanceUID and FrameOfReferenceUID. ``agent`` is the ContrastBolusAgent
    (None: no tag). ``tags`` sets further keywords (None deletes). ``orientations`` gives each
    slice its own ImageOrientationPatient (a three-plane localizer).
    """
    template = pydicom.dcmread(TEMPLATE)
    uid = generate_uid()
    folder.mkdir(parents=True)
    voxels = np.clip(np.rint(sitk.GetArrayFromImage(image)), 0, 65535).astype(np.uint16)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    for k in range(image.GetSize()[2]):
        ds = template.copy()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.StudyInstanceUID = uid, study["study_uid"]
        ds.FrameOfReferenceUID = study["frame_of_reference"]
        ds.PatientName, ds.PatientID = "Derived^Study", study.get("patient", "DERIVED-1")
        ds.SeriesDescription, ds.ProtocolName = description, protocol if protocol is not None else description
        ds.InstanceNumber = k + 1
        ds.ImageType = list(image_type)
        ds.MRAcquisitionType = acquisition
        cosines = orientations[k] if orientations else [*direction[:, 0], *direction[:, 1]]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in cosines]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.PixelSpacing = [f"{image.GetSpacing()[1]:.6f}", f"{image.GetSpacing()[0]:.6f}"]
        ds.SliceThickness = ds.SpacingBetweenSlices = f"{image.GetSpacing()[2]:.4f}"
        ds.Rows, ds.Columns = voxels.shape[1:]
        ds.BitsStored, ds.HighBit = 16, 15
        ds.PixelData = voxels[k].tobytes()
        values = {"SeriesNumber": number, "AcquisitionTime": time, "SeriesTime": time, "ContrastBolusAgent": agent,
                  "SmallestImagePixelValue": None, "LargestImagePixelValue": None, **(tags or {})}
        for keyword, value in values.items():
            if value is None:
                ds.pop(keyword, None)
            else:
                setattr(ds, keyword, value)
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return uid


def new_study(patient: str = "DERIVED-1") -> dict:
    return {"study_uid": generate_uid(), "frame_of_reference": generate_uid(), "patient": patient}


def philips_study(root: Path, contrast_tags: bool = False, flair: bool = True, full: bool = True,
                  zero_background: bool = False) -> dict[int, str]:
    """The issue's Philips study in ``root`` (one folder per series); returns {SeriesNumber: SeriesInstanceUID}.

    ``contrast_tags``: ContrastBolusAgent on the series after the injection (else on none, as the
    issue's scanner wrote it). ``flair=False`` leaves both FLAIRs out (an ambiguous study).
    ``full=False`` writes only 3 slices of the FLAIR, T1, T1c and axial T2 (for header-only tests).
    ``zero_background`` writes zero outside the head, skull and scalp kept, as the issue's scanner did.
    """
    study = new_study()
    t1, t1c, flair_volume, t2 = (volume(n) for n in ("t1", "t1c", "flair", "t2"))
    if zero_background:
        t1, t1c, flair_volume, t2 = (zero_outside_head(image) for image in (t1, t1c, flair_volume, t2))
    whole = (lambda image: image) if full else (lambda image: image[:, :, 10:13])
    agent = "Gadovist" if contrast_tags else None
    small = dict(size=(64, 64, 3), spacing=(3.5, 3.5, 5.0))
    uids = {}

    def add(number, description, image, **options):
        uids[number] = write_series(root / f"s{number:04d}", image, description, number, study, **options)

    add(101, "Survey", regrid(t1, AXIAL, **small), time="090000",
        orientations=[AXIAL, SAGITTAL, CORONAL])  # Philips names the three-plane localizer "Survey"
    add(201, "SmartBrain", regrid(t1, SAGITTAL, **small), time="090100", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    add(301, "T2W_TSE_TRA", whole(t2), time="091000")
    add(401, "DWI_TRA", regrid(t2, AXIAL, **small), time="091500", tags={"DiffusionBValue": 1000})
    add(402, "dReg - DWI_TRA", regrid(t2, AXIAL, **small), time="091500", image_type=("DERIVED", "SECONDARY"))
    add(403, "dADC - DWI_TRA", regrid(t2, AXIAL, **small), time="091500", image_type=("DERIVED", "PRIMARY", "ADC"))
    add(501, "SWIp", regrid(t1, AXIAL, **small), time="092000", acquisition="3D")
    add(601, "BOLD resting", regrid(t2, AXIAL, **small), time="092500", tags={"NumberOfTemporalPositions": 120})
    if flair:
        add(701, "T2W_FLAIR_TRA", whole(flair_volume), time="093000")
    add(801, "T2W_TSE_COR", regrid(t2, CORONAL, **small), time="094000")
    add(901, "T1W_SE-TRA_FS", whole(t1), time="094500")
    add(1001, "PWI_DSC", regrid(t2, AXIAL, **small), time="100000", tags={"NumberOfTemporalPositions": 40}, agent=agent)
    add(1101, "T1W_3D_FFE_ COR CLEAR", regrid(t1c, CORONAL, (96, 96, 200), (2.5, 2.0, 1.0)), time="100200",
        acquisition="3D", agent=agent)
    add(1102, "VT1W_3D_FFE_ SAG", regrid(t1c, SAGITTAL, **small), time="100200", acquisition="3D", image_type=DERIVED, agent=agent)
    add(1103, "VT1W_3D_FFE_ TRA", regrid(t1c, AXIAL, **small), time="100200", acquisition="3D", agent=agent)  # ORIGINAL, named
    add(1201, "T1W_SE-TRA_FS", whole(t1c), time="100500", agent=agent)
    if flair:
        add(1301, "T2W_FLAIR_TRA", flair_volume[:, :, 10:13], time="101500", agent=agent)
    add(1401, "sT1W_FS 3D_ISO_COR", regrid(t1c, CORONAL, (64, 64, 20), (3.0, 3.0, 1.0)), time="102000",
        acquisition="3D", agent=agent)
    add(1402, "VsT1W_3D_ISO SENSE", regrid(t1c, AXIAL, **small), time="102000", acquisition="3D", image_type=DERIVED,
        agent=agent)
    return uids
