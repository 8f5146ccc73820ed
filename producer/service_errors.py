"""The one line a command prints when Redis or the database is away or refuses it (a wrong password,
a server down, a full disk), instead of a traceback.

Any command may be the first to touch a service, so the root group asks here about every
exception a command lets through. The line names the service, the URL without its password, and
the service's own reason, never a SQL statement or its parameters (they can hold documents' text).
"""

from __future__ import annotations

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import AuthenticationError, RedisError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from docqueue.secrets import mask_url


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return mask_url(text.splitlines()[0])[:300] if text else type(e).__name__


def service_fault_line(e: BaseException) -> str | None:
    """The line for ``e`` when it is a fault of Redis or the database; None for anything else (a bug
    keeps its traceback)."""
    if isinstance(e, AuthenticationError):
        return f"Redis refused the credentials in REDIS_URL ({_first_line(e)}); check its password"
    if isinstance(e, (RedisError, KombuOperationalError)):
        return f"Redis is unreachable or failing ({type(e).__name__}: {_first_line(e)}); check REDIS_URL"
    if isinstance(e, DBAPIError):
        origin: BaseException = e.orig if e.orig is not None else e
        return (f"the database failed ({type(origin).__name__}: {_first_line(origin)}); check DATABASE_URL "
                "and that the database server is up")
    if isinstance(e, SQLAlchemyError):
        reason = _first_line(e).split("[SQL:")[0].strip()
        return f"the database failed ({type(e).__name__}: {reason}); check DATABASE_URL"
    return None
