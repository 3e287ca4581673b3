"""``tumorseg listen`` and ``tumorseg send``: TumorSeg as a DICOM node beside a PACS.

A PACS (or a scanner, or a router) sends a study to the node with C-STORE; the node runs the
same detect as ``tumorseg detect --study`` on it and sends the SEG (and SR) back with C-STORE,
where every viewer shows them as new series of the study. The parts:

- :mod:`.address`: ``AE@HOST:PORT`` and AE titles;
- :mod:`.reception`: the Storage SCP side: each instance on disk before it is acknowledged,
  transfers followed until they end, a study taken once it has been quiet;
- :mod:`.requests`: one state file per request to process a study (received, running, done,
  sent, failed), and the ``summary.csv`` rows made from them;
- :mod:`.store`: C-STORE of a case's result files to a destination (also ``tumorseg send``);
- :mod:`.outbox`: sends retried with back-off until they succeed;
- :mod:`.node`: all of it, as ``tumorseg listen`` runs it, on the workers of ``tumorseg batch``.
"""

from .address import DicomAddress, parse_address
from .node import NodeOptions, run_node
from .store import SendError, result_files, send_files

__all__ = ["DicomAddress", "NodeOptions", "SendError", "parse_address", "result_files", "run_node", "send_files"]
