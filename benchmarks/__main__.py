"""``python -m benchmarks``: the whole benchmark report (``--help`` lists the jobs)."""

from __future__ import annotations

import os
import sys

from benchmarks.run import main

if __name__ == "__main__":
    sys.exit(main(prog=os.environ.get("LSC_ORT_BENCH_PROG", "python -m benchmarks")))
