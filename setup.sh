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
    # torch first and pinned, as the CPU build: PyPI's Linux wheel of torch==2.13.0 is the CUDA build (several
    # GB with the NVIDIA libraries). PyTorch's own index labels its CPU build 2.13.0+cpu, which pip prefers to
    # PyPI's. TUMORSEG_TORCH_INDEX_URL overrides that index (a mirror, or a CUDA build such as
    # https://download.pytorch.org/whl/cu126); set it empty to use only the sources pip is configured with.
    torch_index=${TUMORSEG_TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
    .venv/bin/pip install --quiet --disable-pip-version-check ${torch_index:+--extra-index-url "$torch_index"} torch==2.13.0
    .venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
    touch "$stamp"
fi
echo "TumorSeg is set up: $(pwd)/.venv/bin/tumorseg"
