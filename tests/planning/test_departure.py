"""Departure estimate per id tag: medians by day type, the fallback chain, no peeking at the future."""

from __future__ import annotations

import pandas as pd
import pytest

from planning.allocation.departure import SITE_DEFAULT_STAY_S, DepartureHistory, estimate_departures

TZ = "America/Los_Angeles"


def stays(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """(tag, local connect time, stay in hours) -> history rows in UTC."""
    connected = pd.DatetimeIndex([pd.Timestamp(t, tz=TZ) for _, t, _ in rows]).tz_convert("UTC")
    hours = pd.to_timedelta([h for _, _, h in rows], unit="h")
    return pd.DataFrame(
        {"id_tag": [tag for tag, _, _ in rows], "connected": connected, "disconnected": connected + hours}
    )


HISTORY = stays(
    [
        ("A", "2021-08-02 08:00", 8.0),  # Monday
        ("A", "2021-08-03 08:00", 9.0),
        ("A", "2021-08-04 08:00", 100.0),  # an odd one: the median ignores it
        ("A", "2021-08-07 10:00", 2.0),  # Saturday
        ("B", "2021-08-02 09:00", 4.0),
        ("C", "2021-08-02 09:00", 6.0),
        ("C", "2021-08-03 09:00", 6.0),
    ]
)


def test_tag_weekday_median() -> None:
    book = DepartureHistory(HISTORY, TZ)
    when = pd.Timestamp("2021-08-16 07:30", tz=TZ)  # a Monday, after all of the history
    est = book.estimate("A", when)
    assert est.stay_s == 9 * 3600
    assert est.departure == when + pd.Timedelta(hours=9)
    assert est.basis == "tag A weekday median of 3 stays"


def test_fallbacks_tag_any_day_then_site_then_default() -> None:
    book = DepartureHistory(HISTORY, TZ)
    saturday = pd.Timestamp("2021-08-14 10:00", tz=TZ)
    assert book.estimate("A", saturday).basis == "tag A median of 4 stays"  # only 1 weekend stay of its own
    assert book.estimate("A", saturday).stay_s == 8.5 * 3600
    monday = pd.Timestamp("2021-08-16 09:00", tz=TZ)
    est = book.estimate("B", monday)  # one stay of its own: the site's weekday median (6 weekday stays)
    assert est.basis == "site weekday median of 6 stays" and est.stay_s == pytest.approx(7.0 * 3600)
    assert book.estimate("", saturday).basis == "site default stay"  # 1 weekend stay at the site
    assert book.estimate("", saturday).stay_s == SITE_DEFAULT_STAY_S
    assert book.estimate("B", monday, min_count=1).basis == "tag B weekday median of 1 stays"


def test_only_stays_that_ended_before_count() -> None:
    book = DepartureHistory(HISTORY, TZ)
    early = pd.Timestamp("2021-08-03 07:00", tz=TZ)  # only the Monday stays had ended
    assert book.estimate("A", early).basis == "site weekday median of 3 stays"
    out = estimate_departures(HISTORY, HISTORY, TZ)
    assert out.index.equals(HISTORY.index)
    # The first stay of all has no history: the site default.
    assert out.iloc[0] == HISTORY["connected"].iloc[0] + pd.Timedelta(seconds=SITE_DEFAULT_STAY_S)


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match=r"missing column.*disconnected"):
        DepartureHistory(HISTORY.drop(columns="disconnected"), TZ)
