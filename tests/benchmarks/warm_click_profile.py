"""Where the CPU time of a second "Detect tumor" click on an unchanged study goes: a cProfile of each side.

The FG-6692 sample (FLAIR, T1 and T1c loaded with Slicer's reader into a slicer-core scene) is
detected once to warm up, then clicked again:

- **engine**: ``monai_core.engine.Engine.handle`` run in this process on the volumes as the Slicer
  module writes them (a new folder per click), profiled;
- **Slicer module**: ``TumorSegLogic.process`` against the real engine process, profiled on the
  module's side, with the engine process's own CPU seconds from /proc (Linux).

Profiles count CPU time (``time.process_time``), not wall time, so that they mean something on a
busy machine; ``--wall`` profiles wall time instead (which on a busy machine shows where the
process waits for a core). Prints the totals and the top functions by cumulative time.

    python tests/benchmarks/warm_click_profile.py [--clicks 3] [--top 25] [--wall]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import slicer_fixture as sf  # noqa: E402


def _profile(clock, call):
    profile = cProfile.Profile(clock)
    started = clock()
    result = profile.runcall(call)
    return result, clock() - started, profile


def _top(profile, count: int) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("cumulative").print_stats(count)
    return out.getvalue()


def _process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_engine(nodes: dict, clicks: int, clock, top: int) -> None:
    from TumorSegLib.nodewriter import writeVolume

    from monai_core.engine import Engine

    engine = Engine(io.StringIO(), log=sys.stderr)
    engine.load()
    with tempfile.TemporaryDirectory() as temp:
        def request(click: int) -> str:  # as TumorSegLogic._start writes a click's inputs
            paths = {}
            for name, node in nodes.items():
                paths[name] = str(Path(temp) / f"click{click}" / "input" / f"{name}.nrrd")
                writeVolume(node, paths[name])
            return json.dumps({**paths, "output": str(Path(temp) / f"click{click}" / "out"), "case_id": "case"})

        engine.handle(request(1))
        for click in range(2, clicks + 2):
            line = request(click)
            answer, spent, profile = _profile(clock, lambda: engine.handle(line))
            assert answer.get("done"), answer
            print(f"engine, click {click}: {spent:.3f} s  {answer['engine']}")
    print(_top(profile, top))


def profile_module(nodes: dict, clicks: int, clock, top: int) -> None:
    TumorSeg = sf.import_module()
    logic = TumorSeg.TumorSegLogic()
    TumorSeg.TumorSegLogic.stopEngine()
    flair, t1, t1c = nodes["flair"], nodes["t1"], nodes["t1c"]
    try:
        assert logic.process(flair, t1, t1c) is not None
        engine = TumorSeg.sharedEngine(logic.pythonExecutable(), logic.engineDirectory())
        for click in range(2, clicks + 2):
            before = _process_cpu(engine.pid)
            wall = time.perf_counter()
            segmentation, spent, profile = _profile(clock, lambda: logic.process(flair, t1, t1c))
            wall = time.perf_counter() - wall
            after = _process_cpu(engine.pid)
            assert segmentation is not None
            engine_cpu = f"{after - before:.2f} s" if before is not None and after is not None else "unknown"
            print(f"Slicer module, click {click}: {spent:.3f} s on the module's side, engine process CPU {engine_cpu}, "
                  f"wall {wall:.2f} s, engine request {engine.lastAnswer['elapsed_s']} s  {engine.lastAnswer['engine']}")
    finally:
        TumorSeg.TumorSegLogic.stopEngine()
    print(_top(profile, top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=3, help="clicks after the first, each profiled (default 3)")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile (default 25)")
    parser.add_argument("--wall", action="store_true", help="profile wall time instead of CPU time")
    options = parser.parse_args()
    clock = time.perf_counter if options.wall else time.process_time

    sf.import_module()  # TumorSegLib on sys.path
    scene = sf.new_scene()
    nodes = {name: sf.load_volume(scene, sf.SAMPLE_DIR / f"{name}.nii.gz", name) for name in ("flair", "t1", "t1c")}
    print(f"second clicks on FG-6692 (FLAIR + T1 + T1c); {'wall' if options.wall else 'CPU'} seconds; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f}")
    profile_engine(nodes, options.clicks, clock, options.top)
    profile_module(nodes, options.clicks, clock, options.top)


if __name__ == "__main__":
    main()
