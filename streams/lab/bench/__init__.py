"""`recstream bench`: the performance figures of BENCHMARKS.md, each measured by a function here."""
