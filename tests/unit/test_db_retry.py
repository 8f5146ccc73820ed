"""``workers.results.retrying``: a write is tried again only while the database is away."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from workers import results


def _lost() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("UPDATE job", {}, Exception("connection refused"))


def test_connection_loss_is_ridden_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "RETRY_BACKOFF_S", (0.01,))
    tries: list[int] = []

    def write() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise _lost()
        return "stored"

    assert results.retrying(write, budget_s=5, what="storing outcomes") == "stored"
    assert len(tries) == 3


def test_a_refused_statement_is_not_retried() -> None:
    tries: list[int] = []

    def write() -> None:
        tries.append(1)
        raise sa.exc.IntegrityError("INSERT INTO job", {}, Exception("duplicate key"))

    with pytest.raises(sa.exc.IntegrityError):
        results.retrying(write, budget_s=5, what="storing outcomes")
    assert len(tries) == 1


def test_the_budget_ends_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "RETRY_BACKOFF_S", (0.05,))
    tries: list[int] = []

    def write() -> None:
        tries.append(1)
        raise _lost()

    with pytest.raises(sa.exc.OperationalError):
        results.retrying(write, budget_s=0.3, what="claiming jobs")
    assert 2 <= len(tries) <= 8
