"""A DICOM node's address, ``AE@HOST:PORT``, and the AE titles the node uses and accepts."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

__all__ = ["DicomAddress", "parse_address", "check_ae_title"]


def check_ae_title(title: str, what: str = "AE title") -> str:
    """``title`` if it is a valid Application Entity title (1-16 printable ASCII characters, no backslash)."""
    if not title or not title.strip() or len(title) > 16 or "\\" in title or not all(" " <= c <= "~" for c in title):
        raise InputError(None, f"invalid {what} {title!r}: 1 to 16 printable ASCII characters, no backslash")
    return title


@dataclass(frozen=True)
class DicomAddress:
    """Where a DICOM node listens: its AE title, host name or address, and TCP port."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def parse_address(text: str) -> DicomAddress:
    """``PACS@pacs.hospital.org:104`` (or ``PACS@[::1]:104``) as a :class:`DicomAddress`; an InputError otherwise."""
    usage = f"invalid DICOM address {text!r}: expected AE@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242"
    ae_title, at, rest = text.partition("@")
    host, colon, port = rest.rpartition(":")
    if not at or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(None, usage)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise InputError(None, usage + " (an IPv6 address goes in brackets)")
    return DicomAddress(check_ae_title(ae_title, "AE title in " + repr(text)), host, int(port))
