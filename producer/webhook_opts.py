"""``--webhook URL`` and ``--webhook-documents``: where a batch's completion events are POSTed.

Any command that creates batches (every ``submit`` subcommand, a schedule) adds them with
``*WEBHOOK_OPTIONS`` and takes them out of its keyword arguments with :func:`pop_webhook_options`,
without naming them in its signature (as ``producer.sourceopts``). The URL is stored
on the batch (``batch.webhook_url``); the worker that finishes the batch enqueues the POST on the
``webhooks`` queue (``docqueue.events``, ``workers.webhooks``).
"""

from __future__ import annotations

from typing import Any

import click

from docqueue.webhooks import check_url


def _checked_url(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value:
        try:
            return check_url(value)
        except ValueError as e:
            raise click.BadParameter(str(e), ctx=ctx, param=param) from e
    return value


WEBHOOK_OPTIONS = [
    click.option("--webhook", metavar="URL", default=None, envvar="DOCQUEUE_SUBMIT_WEBHOOK", show_envvar=True,
                 callback=_checked_url,
                 help="POST the batch.finished event here when the batch ends, signed as Standard Webhooks "
                 "(DOCQUEUE_WEBHOOK_SECRET on the webhooks worker); needs a `docqueue worker --queues webhooks`."),
    click.option("--webhook-documents/--no-webhook-documents", default=False,
                 envvar="DOCQUEUE_SUBMIT_WEBHOOK_DOCUMENTS", show_envvar=True,
                 help="With --webhook: also POST each document's document.finished event."),
]


def pop_webhook_options(kwargs: dict[str, Any]) -> tuple[str | None, bool]:
    """``(url, per_document)`` out of a command's keyword arguments (removed from them); UsageError
    for ``--webhook-documents`` without ``--webhook``."""
    url, per_document = kwargs.pop("webhook", None) or None, bool(kwargs.pop("webhook_documents", False))
    if per_document and not url:
        raise click.UsageError("--webhook-documents needs --webhook URL")
    return url, per_document
