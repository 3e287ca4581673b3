"""The preprocessing contract: bring a scanner volume into the model's slice space and back.

The LGG training slices were made (Buda et al., ``preprocessing3D.m``) by resizing each axial
slice so that its smaller side is 256 pixels, centre-cropping to 256x256 and scaling the
intensities per volume to 8 bits (see :func:`intensity_window` for what the slices show). Here that resize-and-crop is a
*grid in physical space* (:func:`model_grid`), so that going to the model and coming back are
both plain SimpleITK resamplings, and the output overlays the input exactly in any viewer.

Orientation: the training slices, in SimpleITK array order, have rows running anterior to
posterior, columns running right to left and slices numbered inferior to superior, which is
SimpleITK's "LPS" orientation code. Any input is first relabelled to that orientation (a lossless
permutation and flip, which also turns a sagittal or coronal acquisition into axial slices).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import numpy as np
import SimpleITK as sitk

from .bspline import resample_axis_aligned
from .errors import InputError

__all__ = [
    "MODEL_SIZE",
    "TRAINING_ORIENTATION",
    "model_grid",
    "to_model_space",
    "from_model_space",
    "intensity_window",
    "register_rigid",
    "register_rigid_all",
    "euler_of",
]

MODEL_SIZE = 256
PERCENTILE_99_TARGET = 135 / 255  # measured on the development patients, see intensity_window
TRAINING_ORIENTATION = "LPS"


def model_grid(reference: sitk.Image, size: int = MODEL_SIZE) -> sitk.Image:
    """An empty image whose grid is the reference volume resized and centre-cropped as in training.

    The in-plane field of view is scaled so that its smaller side spans ``size`` square pixels
    (the data set's "smaller side to 256" rule, in millimetres so that non-square pixels work too),
    then the larger side is centre-cropped. Slices keep the reference's positions.
    """
    oriented = sitk.DICOMOrient(reference, TRAINING_ORIENTATION)
    n = np.asarray(oriented.GetSize(), dtype=float)
    spacing = np.asarray(oriented.GetSpacing(), dtype=float)
    direction = np.asarray(oriented.GetDirection()).reshape(3, 3)
    fov = n[:2] * spacing[:2]
    pixel = fov.min() / size
    resized = np.ceil(fov / pixel - 1e-6)
    # crop start as preprocessing3D.m computes it: max(1, floor((p - 256) / 2)), 1-based
    start = np.maximum(0, np.floor((resized - size) / 2) - 1)
    start[resized <= size] = 0
    # first output pixel centre, measured from the first input pixel centre along each axis
    offset = -spacing[:2] / 2 + pixel / 2 + start * pixel
    origin = np.asarray(oriented.GetOrigin()) + direction[:, 0] * offset[0] + direction[:, 1] * offset[1]
    grid = sitk.Image([size, size, int(n[2])], sitk.sitkUInt8)
    grid.SetSpacing([pixel, pixel, spacing[2]])
    grid.SetDirection(oriented.GetDirection())
    grid.SetOrigin(origin.tolist())
    return grid


# How a registered T1 or T1c is brought onto the FLAIR's model grid: linearly. ITK's cubic B-spline of a grid
# tilted against the volume weighs 64 coefficients per point: 0.4 s of CPU per sequence on the sample study,
# 2.3 s on a 1 mm scan of 155 slices, and no cheaper exact evaluation was found here (numpy: 0.33-0.46 s;
# torch's grid_sample on the coefficients: 0.8-1.6 s; ITK's resampler from precomputed coefficients: 0.38 s).
# Linear costs a tenth and changed nothing measured out of fold: the 88 development patients with tilted T1
# and T1c, each detected by its own fold's networks, mean Dice 0.8574 against 0.8575 (difference 95% bootstrap
# -0.0012 to +0.0016, training/registered_interpolation.py); the three real scans with their folds' networks
# 0.726, 0.783, 0.766 against 0.731, 0.778, 0.767 (training/robustness.py --fold-networks --real-only). It
# also reproduces the published training channels of TCGA-FG-6692 a little better (median slice correlation
# 0.972 against 0.963 for the FLAIR registered onto the T1's grid, 0.913 against 0.900 for the T1c): those
# slices went through registration and resizing before their bicubic step.
REGISTERED_INTERPOLATOR = sitk.sitkLinear


def to_model_space(volume: sitk.Image, grid: sitk.Image, transform: sitk.Transform | None = None) -> np.ndarray:
    """Resample a volume onto the model grid; (N, 256, 256) float32.

    Without ``transform`` (the FLAIR onto its own model grid): cubic B-spline, as the training slices were
    made (bicubic). A grid that runs along the volume's axes is resampled one axis at a time
    (:mod:`monai_core.bspline`: ITK's result to float rounding, a tenth of the CPU time).

    ``transform`` maps points of the grid's space into the volume's space: a registered T1 or T1c, whose
    grid is tilted against the FLAIR's. It is interpolated linearly (:data:`REGISTERED_INTERPOLATOR`).
    """
    if transform is not None:
        resampled = sitk.GetArrayFromImage(sitk.Resample(volume, grid, transform, REGISTERED_INTERPOLATOR, 0.0, sitk.sitkFloat32))
    else:
        resampled = resample_axis_aligned(volume, grid)
        if resampled is None:
            resampled = sitk.GetArrayFromImage(sitk.Resample(volume, grid, sitk.Transform(), sitk.sitkBSpline, 0.0, sitk.sitkFloat32))
    return np.clip(resampled, 0, None)


def from_model_space(
    probabilities: np.ndarray,
    grid: sitk.Image,
    target: sitk.Image,
    threshold: float = 0.5,
    transform: sitk.Transform | None = None,
) -> sitk.Image:
    """Map (N, 256, 256) probabilities on the model grid back to a uint8 mask on the target grid.

    Probabilities are interpolated linearly and then thresholded, which keeps lesion borders
    smooth when the target's pixels are smaller than the model's. ``transform`` maps target
    points into the grid's space (for a grid that belongs to another, registered sequence).
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(probabilities, dtype=np.float32))
    image.CopyInformation(grid)
    if transform is None:
        return _lesion_box_back(image, np.asarray(probabilities) >= threshold, target, threshold)
    return _threshold(sitk.Resample(image, target, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32), target, threshold)


def _threshold(back: sitk.Image, target: sitk.Image, threshold: float) -> sitk.Image:
    mask = sitk.BinaryThreshold(back, lowerThreshold=float(threshold), upperThreshold=1e9, insideValue=1, outsideValue=0)
    mask.CopyInformation(target)
    return sitk.Cast(mask, sitk.sitkUInt8)


def _lesion_box_back(image: sitk.Image, above: np.ndarray, target: sitk.Image, threshold: float) -> sitk.Image:
    """:func:`from_model_space` resampling only the part of the target that can reach the threshold.

    A linearly interpolated value is a weighted mean of its neighbours, so it reaches the threshold
    only next to a model voxel that does. The model grid is cropped to the box of those voxels with
    a margin of 2 (more than the interpolation's reach), and only the target voxels whose points fall
    in that crop are resampled: the same mask as resampling the whole map, at a fraction of the cost.
    """
    out = np.zeros(target.GetSize()[::-1], np.uint8)
    if above.any():
        found = np.argwhere(above)
        low = np.maximum(found.min(0) - 2, 0)[::-1]  # x, y, z, as SimpleITK indexes
        high = np.minimum(found.max(0) + 2, np.asarray(above.shape) - 1)[::-1]
        crop = image[int(low[0]):int(high[0]) + 1, int(low[1]):int(high[1]) + 1, int(low[2]):int(high[2]) + 1]
        corners = [target.TransformPhysicalPointToContinuousIndex(image.TransformContinuousIndexToPhysicalPoint(
            [float(low[a] - 0.5 if c[a] == 0 else high[a] + 0.5) for a in range(3)])) for c in np.ndindex(2, 2, 2)]
        start = np.maximum(np.floor(np.min(corners, 0)).astype(int) - 1, 0)
        stop = np.minimum(np.ceil(np.max(corners, 0)).astype(int) + 1, np.asarray(target.GetSize()) - 1)
        if np.all(stop >= start):
            size = [int(n) for n in stop - start + 1]
            back = sitk.Resample(crop, size, sitk.Transform(), sitk.sitkLinear,
                                 target.TransformIndexToPhysicalPoint([int(i) for i in start]), target.GetSpacing(),
                                 target.GetDirection(), 0.0, sitk.sitkFloat32)
            part = sitk.GetArrayViewFromImage(back) >= threshold
            out[start[2]:stop[2] + 1, start[1]:stop[1] + 1, start[0]:stop[0] + 1] = part
    mask = sitk.GetImageFromArray(out)
    mask.CopyInformation(target)
    return mask


def intensity_window(volume: np.ndarray) -> np.ndarray:
    """Scale a resampled volume to the intensities of the LGG slices; values in [0, 1].

    ``preprocessing3D.m`` describes a histogram-peak window, but the published slices do not
    follow it: fitted against the raw volumes of TCGA-FG-6692, every channel is a linear map from
    0 with almost no clipping, and over the 88 development patients the 99th percentile of the
    non-zero voxels sits at a median of 137/255 (T1), 137 (FLAIR) and 126 (T1c) with no saturated
    voxels. So the volume is scaled linearly so that its 99th percentile lands at
    :data:`PERCENTILE_99_TARGET`, which reproduces the FG-6692 channels (slope within 2-7%).
    """
    values = volume[volume > 0]
    if values.size == 0:
        return np.zeros_like(volume, dtype=np.float32)
    reference = float(np.percentile(values, 99))
    if reference <= 0:
        return np.zeros_like(volume, dtype=np.float32)
    scaled = np.clip(volume, 0, None) * (PERCENTILE_99_TARGET / reference)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


# The registration pyramid: (voxel size in mm each level's images are binned to, metric samples, smallest
# optimiser step). Measured on the sample study and the skull-stripped scans by
# tests/benchmarks/registration_accuracy.py; see register_rigid for why.
REGISTRATION_LEVELS = ((8.0, 5000, 5e-2), (4.0, 5000, 1e-2), (2.0, 20000, 1e-3))
REGISTRATION_ITERATIONS = 200  # per level; the benchmark's cases stop at 8-57 iterations, once at 125


def register_rigid(fixed: sitk.Image, moving: sitk.Image, path=None, threads: int | None = None,
                   seed: int = 42) -> sitk.Transform:
    """Rigid (Euler 3D) registration by Mattes mutual information; maps fixed points into moving space.

    The LGG channels were registered to each other, while the sequences of a real study are not
    aligned by their headers alone (FLAIR to T1 of TCGA-FG-6692: 16 mm and 4 degrees). Registration
    runs even when a sequence shares the FLAIR's grid: the raw T1 and T1c of FG-6692 share one grid
    and are 21 mm apart.

    A pyramid in millimetres: each level bins both volumes to about 8, 4, then 2 mm voxels per axis
    (:func:`registration_level`) and registers those with a fixed number of metric samples, each level
    starting from the last one's result. Binning by physical size leaves a 5.5 mm slice axis whole
    where ITK's own pyramid (shrink factors for every axis) halved it to 11 mm, and the images of each
    level are small, so their smoothing and gradients cost little. Release 0.4.0's recipe (ITK's
    shrink 4 then 2 on the full images, 5% random samples, 80 iterations per level) stopped at the
    iteration limit on the sample study: another metric seed moved its result by 2.3-8.8 mm, and
    with a header moved by a known transform it landed 1.3-2.4 mm off what the move implied. This
    pyramid converges: another seed moves the sample by 0.7-0.9 mm, a header move is followed to
    0.2 mm, and the mutual information over every voxel of the FLAIR's head is better (T1c -0.301
    against -0.241). On the skull-stripped scans, where 0.4.0 converged, it lies 0.4-0.5 mm from
    0.4.0's result (seeds: 0.4-0.7 mm, 0.4.0 0.3-0.7). It costs half the CPU on the sample study and a
    tenth on the 1 mm scans (tests/benchmarks/registration_accuracy.py).

    ``threads`` is the number of threads of the registration method (default: SimpleITK's global
    default); it changes the result only by rounding. The result is the same to the bit from run to run only
    with SimpleITK's global thread count at 1, as :func:`register_rigid_all` runs it. ``seed`` draws the
    metric samples (benchmarks vary it to measure the recipe's noise).
    """
    fixed_f = sitk.Cast(fixed, sitk.sitkFloat32)
    moving_f = sitk.Cast(moving, sitk.sitkFloat32)
    if not _overlap(fixed_f, moving_f):
        raise InputError(path, "does not overlap the FLAIR in space; is it from the same study?")
    transform = sitk.CenteredTransformInitializer(
        fixed_f, moving_f, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    for voxel_mm, samples, min_step in REGISTRATION_LEVELS:
        level_fixed, level_moving = registration_level(fixed_f, voxel_mm), registration_level(moving_f, voxel_mm)
        method = rigid_registration_method(level_fixed.GetNumberOfPixels(), samples, min_step, threads, seed)
        method.SetInitialTransform(transform, inPlace=False)
        transform = euler_of(method.Execute(level_fixed, level_moving))
    return transform


def registration_level(image: sitk.Image, voxel_mm: float) -> sitk.Image:
    """``image`` binned (block means) to voxels of about ``voxel_mm`` along each axis; an axis whose voxels
    are already that large stays as it is."""
    factors = [max(1, int(round(voxel_mm / spacing))) for spacing in image.GetSpacing()]
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def rigid_registration_method(voxels: int, samples: int, min_step: float, threads: int | None = None,
                              seed: int = 42) -> sitk.ImageRegistrationMethod:
    """One level of :func:`register_rigid`, set up without its initial transform: ``samples`` random
    metric samples (fixed seed) of a fixed image of ``voxels`` voxels, or all of them if it has fewer."""
    method = sitk.ImageRegistrationMethod()
    if threads is not None:
        method.SetNumberOfThreads(int(threads))
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    if samples < voxels:
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(samples / voxels, seed=seed)  # seed 0 would mean "wall clock"
    else:
        method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=min_step, numberOfIterations=REGISTRATION_ITERATIONS, gradientMagnitudeTolerance=1e-6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    return method


def euler_of(transform: sitk.Transform) -> sitk.Euler3DTransform:
    """The Euler3DTransform that a registration returns inside a composite of one (or that ``transform`` is)."""
    if transform.GetName() == "CompositeTransform":
        transform = sitk.CompositeTransform(transform).GetNthTransform(0)
    return sitk.Euler3DTransform(transform)


def register_rigid_all(fixed: sitk.Image, movings: dict, paths: dict | None = None, then=None) -> dict:
    """:func:`register_rigid` of each of ``movings`` (name -> image) onto ``fixed``, all at once; name -> transform.

    Most of a registration's time goes into ITK filters that use a second thread poorly (at best
    1.5 of 2 cores), so the registrations run side by side instead, each on its share of
    SimpleITK's global thread count (one thread each for T1 and T1c on two cores). SimpleITK
    releases the GIL while it registers. ``paths`` (name -> path) names the input in an error; with
    several errors, the first name's is raised.

    The registrations run with SimpleITK's global thread count at 1 (:func:`_one_global_itk_thread`): with
    2, a part of ITK's registration that takes the global count, not the method's, made every run differ at
    1e-7 mm, and the mask of the sample study by 2-3 voxels from one run of ``tumorseg detect`` to the next.
    At 1 the transforms are the same to the bit on every run, side by side at no cost (0.35-0.36 s for both
    on the sample study either way); a lone registration keeps its method's threads and costs 0.29 s
    instead of 0.18 s, and its follow-up runs after it, on every thread.

    ``then(name, transform)``, if given, runs in the same worker as soon as that sequence's
    registration ends (its return value is dropped: it keeps what it makes): the registrations do not take equally
    long (on the sample study the T1c's ends 0.1-0.3 s after the T1's), so the work that follows each one, its
    check and resampling, uses the core the faster one frees instead of waiting for both.
    """
    paths = paths or {}
    if not movings:
        return {}
    budget = max(1, sitk.ProcessObject.GetGlobalDefaultNumberOfThreads())
    workers = min(len(movings), budget)
    threads = max(1, budget // len(movings))

    def register(name, alone):
        with _one_global_itk_thread() if alone else nullcontext():
            transform = register_rigid(fixed, movings[name], paths.get(name), threads)
        if then is not None:
            then(name, transform)
        return transform

    if workers == 1:
        return {name: register(name, alone=True) for name in movings}
    with _one_global_itk_thread(), ThreadPoolExecutor(workers, thread_name_prefix="register") as pool:
        futures = {name: pool.submit(register, name, False) for name in movings}
        return {name: future.result() for name, future in futures.items()}


@contextmanager
def _one_global_itk_thread():
    """SimpleITK's global default thread count at 1 for the block, then as it was (see register_rigid_all)."""
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def _overlap(a: sitk.Image, b: sitk.Image) -> bool:
    """Whether the physical bounding boxes of two volumes intersect."""

    def box(image):
        corners = [
            image.TransformContinuousIndexToPhysicalPoint([i * (s - 1) for i, s in zip(c, image.GetSize())])
            for c in np.ndindex(2, 2, 2)
        ]
        return np.min(corners, axis=0), np.max(corners, axis=0)

    (a0, a1), (b0, b1) = box(a), box(b)
    return bool(np.all(a0 <= b1) and np.all(b0 <= a1))
