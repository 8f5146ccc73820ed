"""``--webhook URL`` and ``--webhook-documents``: where a batch's completion events are POSTed.

Kept in the Click context (``expose_value=False``, as ``producer.sourceopts``), so any command that
creates batches (every ``submit`` subcommand, a schedule) adds them with ``*WEBHOOK_OPTIONS`` and
reads them with :func:`webhook_options`, without naming them in its signature. The URL is stored
on the batch (``batch.webhook_url``); the worker that finishes the batch enqueues the POST on the
``webhooks`` queue (``docqueue.events``, ``workers.webhooks``).
"""

from __future__ import annotations

from typing import Any

import click

from docqueue.webhooks import check_url

_META_KEY = "docqueue.webhook_options"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if param.name == "webhook" and value:
        try:
            value = check_url(value)
        except ValueError as e:
            raise click.BadParameter(str(e), ctx=ctx, param=param) from e
    ctx.meta.setdefault(_META_KEY, {})[param.name] = value
    return value


WEBHOOK_OPTIONS = [
    click.option("--webhook", metavar="URL", default=None, envvar="DOCQUEUE_SUBMIT_WEBHOOK", show_envvar=True,
                 expose_value=False, callback=_remember,
                 help="POST the batch.finished event here when the batch ends, signed as Standard Webhooks "
                 "(DOCQUEUE_WEBHOOK_SECRET on the webhooks worker); needs a `docqueue worker --queues webhooks`."),
    click.option("--webhook-documents/--no-webhook-documents", default=False,
                 envvar="DOCQUEUE_SUBMIT_WEBHOOK_DOCUMENTS", show_envvar=True, expose_value=False,
                 callback=_remember, help="With --webhook: also POST each document's document.finished event."),
]


def webhook_options(ctx: click.Context | None = None) -> tuple[str | None, bool]:
    """``(url, per_document)`` as given to the running command; UsageError for
    ``--webhook-documents`` without ``--webhook``."""
    values = (ctx or click.get_current_context()).meta.get(_META_KEY, {})
    url, per_document = values.get("webhook") or None, bool(values.get("webhook_documents"))
    if per_document and not url:
        raise click.UsageError("--webhook-documents needs --webhook URL")
    return url, per_document
