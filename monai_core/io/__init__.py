"""Readers for studies: NIfTI, NRRD, DICOM series and Kaggle slice folders."""
