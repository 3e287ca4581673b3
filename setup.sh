#!/usr/bin/env bash
# Set up TumorSeg on a fresh Debian machine with Python 3.11: a .venv in the repository root with
# the pinned CPU build of PyTorch, MONAI and the project (editable), and the `tumorseg` command.
# Running it again is quick and changes nothing.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
stamp=.venv/.tumorseg-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || setup.sh -nt $stamp ]]; then
    # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
    .venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
    .venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
    touch "$stamp"
fi
echo "TumorSeg is set up: $(pwd)/.venv/bin/tumorseg"
