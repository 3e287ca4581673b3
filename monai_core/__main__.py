"""``python -m monai_core``: the same as the ``tumorseg`` command."""

from monai_core.cli import console_main

console_main()
