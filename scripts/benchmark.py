"""Performance of unlearnbench, written to docs/performance.md: ``unlearnbench-bench`` (the same flags).

    python scripts/benchmark.py --mode quick   # < 5 minutes on a 2-core CPU: subsets, short sequences
    python scripts/benchmark.py --mode full    # MiniLM on full bbc / tweets (5,000), 3 seeds: hours on CPU

The measurements live in the package, unlearnbench.bench (one module per section).
"""

from unlearnbench.cli.bench import main

if __name__ == "__main__":
    main()
