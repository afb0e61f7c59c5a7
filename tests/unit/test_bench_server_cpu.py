"""The benchmark's count of a database server's CPU across its changing processes."""

import pytest

from bench.processes import server_cpu_between


@pytest.mark.parametrize(
    ("before", "after", "spent"),
    [
        ({1: 10.0, 2: 5.0}, {1: 12.5, 2: 5.0}, 2.5),
        ({1: 10.0}, {1: 10.0, 3: 1.5}, 1.5),  # a backend that started in between
        ({1: 10.0, 2: 900.0}, {1: 11.0}, 1.0),  # one that ended: never a negative count
        ({}, {}, 0.0),
    ],
)
def test_server_cpu_counts_what_each_process_spent_in_between(
    before: dict[int, float], after: dict[int, float], spent: float
) -> None:
    assert server_cpu_between(before, after) == pytest.approx(spent)
