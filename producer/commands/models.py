"""``docqueue models list|pull``: the models each task is configured to use, and fetching one."""

from __future__ import annotations

import json
import os

import click
from rich.console import Console

from docqueue.models_catalog import configured_models, local_copy_hint
from docqueue.settings import Settings
from producer.commands.train import show_store
from producer.context import Context, FullHelpGroup, json_option, pass_ctx
from producer.render import models_table


@click.group(cls=FullHelpGroup, name="models")
def models_group() -> None:
    """The models each task is configured to use (DOCQUEUE_<TASK>_MODEL; translate: DOCQUEUE_TRANSLATE_MODELS)."""


@models_group.command("list")
@json_option("Machine-readable output on stdout (one object per line).")
@pass_ctx
def models_list(obj: Context, as_json: bool) -> None:
    """Each task's configured model(s): available on this machine?, size on disk, which engine runs;
    then the models `docqueue train` wrote into the model store (DOCQUEUE_MODEL_STORE)."""
    rows = configured_models(obj.settings)
    if as_json:
        for r in rows:
            click.echo(json.dumps({"task": r.task, "engine": r.engine, "default": r.default, "pair": r.pair,
                                   "model": r.spec, "revision": r.revision, "available": r.location.available,
                                   "size_bytes": r.location.size_bytes, "path": r.location.path}))
    else:
        Console().print(models_table(rows))
    show_store(obj, as_json)


@models_group.command("pull")
@click.argument("name")
@click.option("--revision", envvar="DOCQUEUE_PULL_REVISION", show_envvar=True, default=None,
              help="Branch, tag or commit to fetch [default: main].")
@pass_ctx
def models_pull(obj: Context, name: str, revision: str | None) -> None:
    """Download a model from the Hugging Face hub into the HF cache (HF_HOME), where a hub is reachable."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(repo_id=name, revision=revision)
    except Exception as e:
        first = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true") else ""
        try:
            settings: Settings | None = obj.settings
        except click.UsageError:  # a broken configuration must not hide the download error
            settings = None
        raise click.ClickException(f"cannot download {name!r} from the Hugging Face hub{offline}: {first}. "
                                   f"On a machine without a hub, copy a saved model folder here and "
                                   f"{local_copy_hint(settings, name)}.") from e
    click.echo(path)
