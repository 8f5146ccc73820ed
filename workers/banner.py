"""Celery's start-up banner without a password mask where there is no password.

Celery prints the broker as ``connection.as_uri()``, and kombu masks the password position even
when the URL has none: ``redis://:**@localhost:6379/0`` reads as if a password were configured,
which misleads exactly the operator checking whether one is. The banner is not a log line (our
masking log filter never sees it), so the worker class's ``startup_info`` is wrapped instead.
"""

from __future__ import annotations

from typing import Any

from kombu.utils.url import url_to_parts

_EMPTY_MASK = ":**@"


def has_password(url: str) -> bool:
    try:
        return bool(url_to_parts(url).password)
    except Exception:
        return True  # cannot tell: keep kombu's mask


def honest_banner(app: Any, broker_url: str) -> None:
    """Make ``app``'s worker banner show the broker without ``:**@`` when ``broker_url`` has no password."""
    if has_password(broker_url):
        return
    base = app.Worker

    class Worker(base):  # type: ignore[misc, valid-type]
        def startup_info(self, artlines: bool = True) -> str:
            return str(super().startup_info(artlines)).replace(_EMPTY_MASK, "@", 1)

    app.Worker = Worker
