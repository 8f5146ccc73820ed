"""``docqueue worker --check``: the container healthcheck of a worker (compose, Kubernetes probes).

It asks Redis, not Celery: the workers' presence records (``docqueue.presence``) answer at once,
also while a solo-pool (GPU) worker is busy in a long batch, when a Celery ``ping`` would go
unanswered (the solo pool runs the task in the loop that would answer) and an orchestrator would
kill a healthy worker. It never starts anything (no embedded Redis, no database connection).
"""

from __future__ import annotations

import socket

import click
import redis

from docqueue import presence
from docqueue.broker import existing_broker_url, redis_client
from docqueue.secrets import mask_url
from docqueue.settings import Settings

#: Exit status: the worker is not alive / not consuming.
EXIT_UNHEALTHY = 1
#: Exit status: Redis could not be asked (which also means no worker can consume).
EXIT_NO_BROKER = 2


def check_local_worker(settings: Settings, queues: list[str] | None) -> int:
    """Print one line and return the exit status (0 healthy) for the workers of this host."""
    url = existing_broker_url(settings)
    try:
        client = redis_client(url, timeout=min(settings.broker_connect_timeout_s, 5.0))
        health = presence.local_health(client, socket.gethostname(), queues)
    except (redis.RedisError, OSError) as e:
        click.echo(f"unhealthy: cannot ask the broker at {mask_url(url)}: {mask_url(str(e))}", err=True)
        return EXIT_NO_BROKER
    if health.ok:
        click.echo(health.line)
        return 0
    click.echo(f"unhealthy: {health.line}", err=True)
    return EXIT_UNHEALTHY
