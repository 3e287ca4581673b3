"""C-STORE of a case's DICOM results (the SEG, then the SR that references it) to a DICOM node.

Used by the node's outbox and by ``tumorseg send``. A result is sent under its own SOP Instance
UID, so a PACS that receives the same file twice keeps one instance: a send repeated by hand, or
after the node died between the PACS's answer and its own note of it, adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pydicom

from ..errors import InputError
from .address import DicomAddress, check_ae_title

__all__ = ["RESULT_FILES", "SendError", "result_files", "send_files"]

# in the order they are sent: the SR references the SEG, so the SEG goes first
RESULT_FILES = ("segmentation.dcm", "measurements.dcm")
# C-STORE statuses that mean "stored": success, and the warnings "coercion of data elements",
# "elements discarded" and "data set does not match SOP class" (the instance is stored all the same)
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}


class SendError(Exception):
    """A send that did not go through: the destination is down, refused the association or a file."""


def result_files(case_dir: str | Path) -> list[Path]:
    """The DICOM results of a finished case folder, in the order they are sent (none when no tumour was found)."""
    folder = Path(case_dir)
    return [folder / name for name in RESULT_FILES if (folder / name).is_file()]


def send_files(files: Sequence[Path], destination: DicomAddress, calling_ae: str, timeout: float = 30.0,
               on_sent: Callable[[Path], None] | None = None) -> None:
    """C-STORE ``files`` to ``destination`` in one association, in order; ``on_sent(file)`` after each is stored.

    Raises :class:`SendError` with one line saying what went wrong; the files stored before it
    stay stored (``on_sent`` told the caller which).
    """
    from pynetdicom import AE, evt

    check_ae_title(calling_ae, "calling AE title")
    contexts = {}
    for path in files:
        try:
            meta = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).file_meta
        except (OSError, pydicom.errors.InvalidDicomError) as error:
            raise InputError(path, f"cannot read the DICOM file ({error})") from None
        contexts.setdefault(meta.MediaStorageSOPClassUID, set()).add(meta.TransferSyntaxUID)
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    for sop_class, syntaxes in contexts.items():
        ae.add_requested_context(sop_class, sorted(syntaxes))
    connected = []  # pynetdicom reports a connection that failed as an aborted association: tell them apart
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title,
                         evt_handlers=[(evt.EVT_CONN_OPEN, lambda event: connected.append(True))])
    if not assoc.is_established:
        if not connected:
            raise SendError(f"cannot reach {destination} (connection refused or no answer in {timeout:g} s)")
        if assoc.is_rejected:
            raise SendError(f"{destination} rejected the association (does it know the calling AE title {calling_ae}?)")
        raise SendError(f"{destination} aborted the association or did not answer it")
    try:
        for path in files:
            status = assoc.send_c_store(path)
            if not status:  # no answer: the connection broke or the destination timed out
                raise SendError(f"{destination} did not answer the C-STORE of {path.name} (connection lost or timed out)")
            if status.Status not in _STORED:
                raise SendError(f"{destination} refused {path.name} (C-STORE status 0x{status.Status:04X})")
            if on_sent is not None:
                on_sent(path)
    finally:
        if assoc.is_established:
            assoc.release()
