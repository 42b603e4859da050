"""A PostgreSQL store URL without the optional psycopg driver gives a clear error naming the extra."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy.exc import SQLAlchemyError

from controller.store import Store
from controller.store.store import MissingDriver


@pytest.mark.parametrize("url", ["postgresql://evsite@127.0.0.1/evsite", "postgresql+psycopg://evsite@127.0.0.1/x"])
def test_postgres_url_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed: ``import psycopg`` raises
    with pytest.raises(MissingDriver, match=r"evsite\[postgres\]") as err:
        Store.open(url)
    assert isinstance(err.value, SQLAlchemyError), "evsite serve reports store errors of this family cleanly"


def test_sqlite_needs_no_optional_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    Store.open("sqlite://").close()
