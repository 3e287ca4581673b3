"""``tumorseg batch``: many studies, one summary, resumable, on local processes or Ray actors.

- :mod:`.cases`: the cases, from a folder of case folders or a CSV manifest;
- :mod:`.worker`: the per-case function, on networks loaded once per worker;
- :mod:`.scheduler`: cases to workers, with the per-case time limit;
- :mod:`.local`, :mod:`.ray_engine`: the two kinds of worker;
- :mod:`.summary`: ``summary.csv``, rewritten atomically as cases finish;
- :mod:`.run`: all of it, as the command runs it.
"""

from .cases import Case, find_cases
from .run import BatchOptions, run_batch

__all__ = ["BatchOptions", "Case", "find_cases", "run_batch"]
