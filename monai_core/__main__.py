"""``python -m monai_core``: the same as the ``tumorseg`` command."""

import sys

from monai_core.cli import main

sys.exit(main())
