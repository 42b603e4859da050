"""The settle-freeze decision: freeze once connection churn stops, undo it when churn exceeds the budget."""

from evsite.gc_settle import SettleFreeze


def test_freezes_only_after_the_count_has_held_still_for_settle_s() -> None:
    d = SettleFreeze(settle_s=5.0)
    assert d.step(100, 100, 0.0) is None
    assert d.step(180, 180, 3.0) is None  # still connecting
    assert d.step(180, 180, 7.9) is None  # 4.9 s of quiet
    assert d.step(180, 180, 8.0) == "freeze"
    assert d.frozen_at == 180
    assert d.step(180, 180, 30.0) is None  # frozen: nothing more to do


def test_nothing_to_freeze_without_connections() -> None:
    d = SettleFreeze(settle_s=1.0)
    assert d.step(0, 0, 0.0) is None
    assert d.step(0, 0, 10.0) is None


def test_churn_beyond_the_budget_unfreezes_then_refreezes_once_settled() -> None:
    d = SettleFreeze(settle_s=2.0, min_budget=50, budget_share=0.05)
    d.step(2000, 2000, 0.0)
    assert d.step(2000, 2000, 2.0) == "freeze"
    assert d.budget == 100  # 5 % of 2,000 connections
    assert d.step(2100, 1950, 3.0) is None  # 100 events: within the budget
    assert d.step(2101, 1949, 4.0) == "unfreeze"
    assert d.step(6000, 2000, 5.0) is None  # the storm goes on
    assert d.step(6000, 2000, 6.9) is None
    assert d.step(6000, 2000, 7.0) == "freeze"


def test_small_sites_get_the_minimum_budget() -> None:
    d = SettleFreeze(settle_s=1.0, min_budget=50)
    d.step(10, 10, 0.0)
    assert d.step(10, 10, 1.0) == "freeze"
    assert d.budget == 50
    assert d.step(60, 10, 2.0) is None
    assert d.step(61, 10, 3.0) == "unfreeze"
