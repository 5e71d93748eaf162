"""Fuzzing the parsers of untrusted input in CI: a short, derandomized hypothesis run per
target (raw bytes, mutated seeds and structure-aware near-valid inputs; see strategies.py)
that must end with no crash. ``bench/fuzz.py`` runs the same targets for longer, with
random inputs (atheris, or hypothesis).

A failure prints the input; replay it with ``tests.fuzz.targets.run(name, data)``, fix
the parser, and add a ``test_regression_<what>`` unit test next to the parser's tests.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz import strategies
from tests.fuzz.seeds import SEEDS
from tests.fuzz.targets import TARGETS, run, transfer_session

# Inputs per target: 1-2 s each on two idle cores, 2-4 s on two busy ones (all targets
# together about 12 and 25 s); bench/fuzz.py runs them for minutes.
EXAMPLES = {"pktline": 1500, "lfs_transfer": 500, "ssh_command": 1500, "hook_body": 1200, "hook_http": 1000,
            "hub_commit": 600, "lfs_batch": 700, "lfs_locks": 800}


def test_every_target_has_seeds_examples_and_a_strategy():
    assert set(TARGETS) == set(SEEDS) == set(EXAMPLES) == set(strategies.STRUCTURED)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_are_accepted(name: str):
    """The seeds take the parsers' success paths (else the fuzzers would start from nothing)."""
    for seed in SEEDS[name]:
        assert run(name, seed) is True, seed[:200]


def test_transfer_seeds_get_only_success_answers():
    for seed in SEEDS["lfs_transfer"]:
        status, out = transfer_session(seed)
        statuses = re.findall(rb"status (\d{3})", out)
        assert status == 0 and statuses and all(s < b"400" for s in statuses), (seed[:120], statuses)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz(name: str):
    # derandomize: the same inputs on every run (a fixed seed per test), so CI cannot turn red by
    # chance; bench/fuzz.py runs the same strategies with random inputs for minutes.
    @settings(max_examples=EXAMPLES[name], deadline=None, database=None, print_blob=True, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(strategies.inputs(name))
    def fuzz(data: bytes) -> None:
        inputs.append(run(name, data))

    inputs: list[bool] = []
    start = time.perf_counter()
    fuzz()
    print(f"fuzz {name}: {len(inputs)} inputs ({sum(inputs)} accepted) in {time.perf_counter() - start:.1f} s")
    assert sum(inputs) > 0, "no input was accepted: the strategies no longer reach the parser's success path"
