"""``docqueue models optimize MODEL``: build a sentence encoder's ONNX Runtime int8 artifact.

The export needs torch and the producer never imports it, so the work runs in a child process,
``python -m workers.optimize`` (the worker side, which has torch and the model), with this command's
settings in its environment. Its progress and the quality gate's figures go to stderr as they come;
the command's exit status is the child's: 0 accepted, 3 refused by the gate, 2 could not build.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from producer.context import Context, json_option, pass_ctx


@click.command("optimize")
@click.argument("model")
@click.option("--revision", envvar="DOCQUEUE_OPTIMIZE_REVISION", show_envvar=True, default=None,
              help="Revision of the model to export [default: the one a worker loads].")
@click.option("--gate-data", "gate_data", multiple=True, envvar="DOCQUEUE_OPTIMIZE_GATE_DATA", show_envvar=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="JSONL rows {text, label} the int8 model must agree on with fp32 (repeatable; e.g. "
              "ledgar/dev500.jsonl of the public eval data) [default: the LEDGAR provisions of tests/fixtures].")
@click.option("--min-agreement", type=click.FloatRange(0, 1), envvar="DOCQUEUE_ONNX_MIN_AGREEMENT",
              show_envvar=True, default=None,
              help="Refuse the artifact when fewer gate texts get the same nearest label as with fp32 "
              "[default: 0.85].")
@json_option("Print the manifest (gate figures, source revision, artifact path) as JSON on stdout.")
@pass_ctx
def optimize(obj: Context, model: str, revision: str | None, gate_data: tuple[Path, ...],
             min_agreement: float | None, as_json: bool) -> None:
    """Export MODEL (a sentence encoder) to ONNX, quantize it to int8 with per-channel weights, and gate it
    on quality against the fp32 model; an accepted artifact is kept beside the model (or under
    DOCQUEUE_ONNX_DIR) with its source revision. Workers run it for models listed in DOCQUEUE_ONNX_MODELS.
    Needs the onnx extra: pip install 'docqueue[onnx]'."""
    obj.settings  # a broken configuration fails here, before the child starts  # noqa: B018
    argv = [sys.executable, "-m", "workers.optimize", model]
    if revision:
        argv += ["--revision", revision]
    for path in gate_data:
        argv += ["--gate-data", str(path)]
    if min_agreement is not None:
        argv += ["--min-agreement", str(min_agreement)]
    if as_json:
        argv.append("--json")
    code = subprocess.call(argv)  # the child reads the same DOCQUEUE_* environment
    if code != 0:
        raise SystemExit(code)
