"""Run the benchmark grid: ``python benchmarks/run.py --profile full --out benchmarks/results``.

The benchmark grid; see ``--help`` and :mod:`lab.runner`.
"""

import sys

from lab import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="benchmarks/run.py"))
