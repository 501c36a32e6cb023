"""Executors: results in input order, pool reuse, clean shutdown, errors surface."""

from __future__ import annotations

import os

import pytest

from corpuslab.errors import ConfigError
from corpuslab.executor import Executor, LocalExecutor, SerialExecutor


def square(x: int) -> int:
    return x * x


def worker_pid(_: int) -> int:
    return os.getpid()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


@pytest.mark.parametrize("make", [SerialExecutor, lambda: LocalExecutor(2)])
def test_map_returns_results_in_input_order(make):
    with make() as executor:
        assert isinstance(executor, Executor)
        assert list(executor.map(square, range(20))) == [x * x for x in range(20)]
        assert list(executor.map(square, [])) == []


def test_local_pool_is_reused_across_maps_and_closed():
    executor = LocalExecutor(2)
    first = set(executor.map(worker_pid, range(8)))
    second = set(executor.map(worker_pid, range(8)))
    assert first and second <= first | second and os.getpid() not in first
    assert len(first | second) <= 2  # the same two workers served both calls
    executor.close()
    assert executor._pool is None
    assert list(executor.map(square, [3])) == [9]  # a closed executor starts a fresh pool
    executor.close()


def test_worker_errors_reach_the_caller():
    with LocalExecutor(2) as executor, pytest.raises(ValueError, match="three"):
        list(executor.map(fail_on_three, range(5)))


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="executor.processes"):
        LocalExecutor(processes=0)
    with pytest.raises(ConfigError, match="executor.start_method"):
        LocalExecutor(start_method="teleport")


def test_defaults_to_all_cores():
    assert LocalExecutor().processes == (os.cpu_count() or 1)
