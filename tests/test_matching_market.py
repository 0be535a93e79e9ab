"""The market simulator: policies on identical arrivals, capacity respected, learning pays off."""

from __future__ import annotations

import numpy as np
import pytest

from central.matching.config import load_rules
from hardware_sim.market import POLICIES, Market, MarketConfig, make_population, run_policies


def test_small_market_ranks_the_policies_sensibly() -> None:
    config = MarketConfig(teachers=60, students=600, sessions=2_000, seed=11)
    results = run_policies(config, load_rules())
    assert set(results) == set(POLICIES)
    for result in results.values():
        assert result.sessions >= config.sessions
        assert result.over_capacity == 0
        assert result.max_load_over_capacity <= 1.0
    gain = {policy: r.mean_gain_until(config.sessions) for policy, r in results.items()}
    assert gain["oracle"] > gain["random"] * 1.2
    assert gain["ours"] > gain["random"]
    assert gain["ours"] > gain["popular"]
    assert gain["oracle"] >= gain["ours"] * 0.98
    ours = results["ours"]
    assert np.mean(ours.waits_priority) <= np.mean(ours.waits_other)


def test_unknown_policy_is_refused() -> None:
    config = MarketConfig(teachers=5, students=10, sessions=10)
    with pytest.raises(ValueError, match="unknown policy"):
        Market(config, make_population(config), load_rules(), "best")
