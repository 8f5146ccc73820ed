"""How long the review engine takes on one very long contract (default: 120 pages' worth).

    python ops/bench/review_long.py [--data ../shared/data] [--pages 120]

The contract is CUAD's longest dev contract repeated until it is ``--pages`` pages long (3,000
characters a page); prints pages, segments, seconds and peak memory of this process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from docqueue.names import REVIEW  # noqa: E402
from docqueue.params import ReviewParams  # noqa: E402
from docqueue.settings import get_settings  # noqa: E402
from workers.registry import Registry  # noqa: E402

PAGE_CHARS = 3000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--pages", type=int, default=120)
    args = ap.parse_args()
    contracts = sorted((args.data / "cuad" / "contracts").glob("*.txt"), key=lambda p: p.stat().st_size)
    base = contracts[-1].read_text(encoding="utf-8")
    text = (base + "\n\n") * (args.pages * PAGE_CHARS // len(base) + 1)
    engine = Registry(get_settings(device="cpu")).get(REVIEW)
    engine.run(["warm-up. This Agreement is governed by the laws of New York."], ReviewParams.of({}))
    started = time.perf_counter()
    (result,) = engine.run([text], ReviewParams.of({}))
    elapsed = time.perf_counter() - started
    assert isinstance(result, dict), result
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(text) / PAGE_CHARS:.0f} pages, {len(result['clauses'])} clauses, {len(result['risks'])} risks: "
          f"{elapsed:.1f}s, peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
