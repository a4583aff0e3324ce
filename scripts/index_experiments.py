"""Regenerate ``docs/experiments/README.md``, the index of the experiment files there.

  python scripts/index_experiments.py [--folder docs/experiments]

The reading and formatting are ``rlx.lab.index``'s; ``tests/test_experiments_index.py`` checks
that the committed page equals a fresh regeneration.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlx.lab import index

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--folder", type=Path, default=REPO / "docs" / "experiments")
    args = parser.parse_args()
    print(index.write(args.folder))


if __name__ == "__main__":
    main()
