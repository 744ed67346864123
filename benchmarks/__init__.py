"""Speed, memory and quality-per-cost scripts; run each from the repository root as a module, e.g.
``python -m benchmarks.ode_overhead``. Their figures are in ``docs/benchmarks.md``."""
