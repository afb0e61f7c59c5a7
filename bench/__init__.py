"""The benchmark: an open-model load generator against the gateway and a bare baseline.

Run it with ``make bench`` (every scenario, results in ``docs/performance.md``) or
``python -m bench --help``. It only ever talks to 127.0.0.1.
"""
