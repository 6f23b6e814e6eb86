"""czii benchmarks: ``make bench`` (``python -m benchmarks``) runs every ``bench_*.py``.

Each module exposes ``run() -> list[Result]``; every figure is shown next to a named
baseline measured in the same run, with the target it must meet.
"""
