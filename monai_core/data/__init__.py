"""Data lists for training and evaluation."""

from .lgg import (
    DEFAULT_PATIENT_LIST,
    find_slices,
    lgg_datalist,
    patient_folds,
    read_patient_list,
    split_by_patient,
    tumour_sampling_weights,
)

__all__ = [
    "DEFAULT_PATIENT_LIST",
    "find_slices",
    "lgg_datalist",
    "patient_folds",
    "read_patient_list",
    "split_by_patient",
    "tumour_sampling_weights",
]
