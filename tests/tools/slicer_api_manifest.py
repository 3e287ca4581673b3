"""Record where each Slicer API the TumorSeg module uses is defined in the oldest Slicer it supports.

    python tests/tools/slicer_api_manifest.py SLICER_GIT_DIR

SLICER_GIT_DIR is a clone of https://github.com/Slicer/Slicer (with its tags). For every entry of
tests/slicer_api.py's SLICER_API whose source is a Slicer file, the file is read at the tag of
TumorSeg.MINIMUM_SLICER_VERSION (``git show v5.10.0:<file>``) and the line that defines the
entry's last name is recorded in tests/data/slicer_api/<tag>.json. An entry that the tag does not
define stops the tool with exit code 2 and the entries it could not find: then the module uses API
newer than its minimum version. tests/test_slicer_module.py checks the record against the module.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from slicer_api import MANIFEST_DIR, MODULE_DIR, SLICER_API, definition_line, slicer_source  # noqa: E402


def minimum_tag() -> str:
    """``v5.10.0`` from ``MINIMUM_SLICER_VERSION = (5, 10)`` in TumorSeg.py (read, not imported: no Slicer needed)."""
    for node in ast.walk(ast.parse((MODULE_DIR / "TumorSeg.py").read_text())):
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["MINIMUM_SLICER_VERSION"]:
            major, minor = ast.literal_eval(node.value)
            return f"v{major}.{minor}.0"
    raise SystemExit("MINIMUM_SLICER_VERSION not found in TumorSeg.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slicer_git_dir", type=Path, help="a clone of github.com/Slicer/Slicer with its tags")
    args = parser.parse_args()
    tag = minimum_tag()
    git = ["git", "-C", str(args.slicer_git_dir)]
    commit = subprocess.run([*git, "rev-parse", f"{tag}^{{commit}}"], capture_output=True, text=True)
    if commit.returncode:
        parser.error(f"{args.slicer_git_dir}: no tag {tag} ({commit.stderr.strip()})")
    entries, missing, files = {}, [], {}
    for chain in sorted(SLICER_API):
        source = slicer_source(chain)
        if source is None:
            continue
        if source not in files:
            shown = subprocess.run([*git, "show", f"{tag}:{source}"], capture_output=True, text=True)
            files[source] = shown.stdout if shown.returncode == 0 else None
        found = definition_line(files[source], chain.split(".")[-1]) if files[source] is not None else None
        if found is None:
            missing.append(f"{chain} ({source})")
            continue
        entries[chain] = {"file": source, "line": found[0], "text": found[1]}
    if missing:
        print(f"not in Slicer {tag}:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2
    MANIFEST_DIR.mkdir(parents=True, exist_ok=True)
    out = MANIFEST_DIR / f"{tag}.json"
    record = {"tag": tag, "commit": commit.stdout.strip(), "source": "https://github.com/Slicer/Slicer", "entries": entries}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(out)
    print(f"wrote {out}: {len(entries)} entries checked in Slicer {tag} ({record['commit'][:10]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
