"""Run every benchmark module and print one table (stderr) and a TSV (stdout).

The run starts again under glibc's huge-page tunable, as the ``czii`` executable does
(:mod:`czii_cli.launcher`), so czii, its baselines and its floors all meet the same
allocator; the performance benchmark has one row without it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time

from rich.console import Console
from rich.table import Table

import benchmarks
from czii_cli.launcher import restart_with_huge_pages


def main() -> int:
    restart_with_huge_pages()  # every figure under the allocator setting of the czii executable
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help="only these modules (e.g. metric normalize)")
    options = parser.parse_args()
    modules = sorted(info.name for info in pkgutil.iter_modules(benchmarks.__path__) if info.name.startswith("bench_"))
    if options.names:
        modules = [m for m in modules if m.removeprefix("bench_") in options.names]
    else:  # pre-training alone takes half an hour: run it by name or with make bench-pretrain
        modules = [m for m in modules if m != "bench_pretrain"]
    console = Console(stderr=True, width=200)
    results, failed = [], False
    for name in modules:
        console.print(f"[bold]running {name}[/bold]")
        start = time.perf_counter()
        try:
            results.extend(importlib.import_module(f"benchmarks.{name}").run())
        except Exception as err:  # one broken benchmark must not hide the others
            console.print(f"[red]{name} failed: {type(err).__name__}: {err}[/red]")
            failed = True
        console.print(f"  {name}: {time.perf_counter() - start:.0f} s")
    table = Table(title="czii benchmarks (this machine)")
    for column in ("benchmark", "figure", "baseline", "baseline figure", "ratio", "target", "met"):
        table.add_column(column)
    print("benchmark\tfigure\tbaseline\tbaseline_figure\tratio\ttarget\tmet")
    for r in results:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        table.add_row(
            r.benchmark, r.value, r.baseline, r.baseline_value, ratio, r.target, "yes" if r.ok else "[red]NO[/red]"
        )
        print("\t".join([r.benchmark, r.value, r.baseline, r.baseline_value, ratio, r.target, "yes" if r.ok else "no"]))
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
