"""The benchmark: an open-model load generator against the gateway and two references, a
bare baseline and a minimal outbox gateway (``bench/baseline.py``).

Run it with ``make bench`` (every scenario, results in ``docs/performance.md``) or
``python -m bench --help``. It only ever talks to 127.0.0.1.
"""
