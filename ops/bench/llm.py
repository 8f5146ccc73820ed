"""LLM throughput: docqueue against the same model in-process, in docs/s and generated tokens/s.

Ways to write one short summary ("TL;DR") per document with one causal LM, all greedy, the same
documents, prompts and max new tokens, measured in one run on one device:

- ``raw-static``: ``model.generate`` on left-padded static batches of ``--batch`` prompts;
- ``raw-continuous``: transformers' continuous batching (``model.generate_batch``, paged KV cache);
- ``engine``: docqueue's ``LLMSummarizer.run`` in-process (what a worker runs per message: prompts
  rendered, windows, token-budget static batches, provenance);
- ``docqueue`` (with ``--e2e``): ``docqueue submit summarize --engine llm --wait`` against one real
  worker process (``--pool solo``) on Redis (``REDIS_URL``) and a fresh SQLite database, after a
  one-document warm-up that loads the model: files read, jobs stored, micro-batched messages
  (the default ``DOCQUEUE_BATCH_MAX_DOCS``/``_MAX_TOKENS``), results written, ``--wait`` polling;
- ``one-task-per-doc`` (with ``--e2e``): the same, the same worker settings otherwise, a fresh
  worker and database, with micro-batching off: ``DOCQUEUE_BATCH_MAX_DOCS=1`` makes the producer
  (``producer.batching.plan_batches``) publish one Celery message per document, and the worker's
  gatherer (``workers.gather``) pull nothing more into a message that already holds one document;
  ``DOCQUEUE_BATCH_GATHER_MS=0`` as well. So every document is its own Celery task, its own
  transaction and its own ``engine.run`` of one text: one ``generate`` call of batch size 1 per
  window (``windows`` in the row; with ``--tiny`` every document is one window, ``windows`` equals
  ``docs``). This is the naive use of Celery, one task per document. ``celery_tasks`` counts the
  timed part's "succeeded" lines in the worker's log.

"raw" is the better of the first two; the ratios to raw are the numbers that matter (the worker's
own overhead is measured for every engine by ops/bench/throughput.py). Usage::

    python ops/bench/llm.py --model /path/to/model [--docs 64] [--new-tokens 32] [--device cuda]
    python ops/bench/llm.py --tiny       # builds the tiny random Llama chat model of the tests first
    REDIS_URL=redis://127.0.0.1:6379/13 python ops/bench/llm.py --tiny --docs 48 --e2e

On a GPU run it as a prepared script: ``REDIS_URL=redis://127.0.0.1:6379/0 python ops/bench/llm.py
--model Qwen/Qwen2.5-0.5B-Instruct --device cuda --docs 256 --e2e`` (the model must be in the HF
cache; nothing is downloaded by this script).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def _docs(n: int) -> list[str]:
    from tests.helpers import prose
    from tests.tiny_llms import WORDS

    return [prose(300 + (i * 131) % 900, WORDS, seed=i) for i in range(n)]


def _timed(label: str, docs: int, fn: Any) -> dict[str, Any]:
    began = time.perf_counter()
    generated = fn()
    seconds = time.perf_counter() - began
    return {"way": label, "seconds": round(seconds, 3), "docs_per_s": round(docs / seconds, 2),
            "generated_tokens": generated, "generated_tokens_per_s": round(generated / seconds, 1)}


def _end_to_end(way: str, spec: str, docs: list[str], new_tokens: int, device: str,
                settings: dict[str, str]) -> dict[str, Any]:
    """``submit --wait`` of every document against one fresh worker and database, after a warm-up
    document; ``settings`` (``DOCQUEUE_*``) go to both the producer and the worker."""
    import subprocess

    from tests.helpers import ROOT, cli, results_jsonl

    work = Path(tempfile.mkdtemp(prefix=f"llmbench-{way}-"))
    inbox, warm = work / "inbox", work / "warm"
    inbox.mkdir()
    warm.mkdir()
    for i, d in enumerate(docs):
        (inbox / f"doc{i:04d}.txt").write_text(d)
    (warm / "warm.txt").write_text(docs[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
    env.update({"REDIS_URL": os.environ["REDIS_URL"],
                "DATABASE_URL": f"sqlite:///{work / 'docqueue.db'}", "DOCQUEUE_DATA_DIR": str(work / "data"),
                "DOCQUEUE_LLM_MODEL": spec, "DOCQUEUE_SUMMARIZE_ENGINE": "llm", "DOCQUEUE_DEVICE": device,
                "DOCQUEUE_LLM_MAX_NEW_TOKENS": json.dumps({"summarize": new_tokens}), "HF_HUB_OFFLINE": "1",
                **settings})
    log_path = work / "worker.log"
    log = log_path.open("ab")
    worker = subprocess.Popen([sys.executable, "-m", "workers", "--queues", "summarize", "--pool", "solo"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    rows: list[dict[str, Any]] = []
    try:
        submit = ("submit", "summarize", "--engine", "llm", "--style", "tldr", "--max-new-tokens", str(new_tokens),
                  "--wait", "--timeout", "3600", "--json")
        cli(env, submit[0], submit[1], str(warm), *submit[2:], timeout=3600)  # loads the model
        log.flush()
        warm_log = log_path.stat().st_size

        def run() -> int:
            batch = json.loads(cli(env, submit[0], submit[1], str(inbox), *submit[2:], timeout=3600).stdout)["batch"]
            rows.extend(results_jsonl(env, batch))
            return sum(int(r["result"]["llm"]["completion_tokens"]) for r in rows if r["status"] == "succeeded")

        result = _timed(way, len(docs), run)
    finally:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    with log_path.open("rb") as f:
        f.seek(warm_log)
        tasks = f.read().count(b"] succeeded in ")
    ok = [r for r in rows if r["status"] == "succeeded"]
    result.update({"succeeded": len(ok), "windows": sum(int(r["result"].get("chunks", 1)) for r in ok),
                   "celery_tasks": tasks, "settings": settings})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="causal LM: HF id (in the cache) or local folder")
    parser.add_argument("--tiny", action="store_true", help="build and use the tests' tiny random chat model")
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16, help="raw-static: prompts per batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-continuous", action="store_true")
    parser.add_argument("--e2e", action="store_true", help="also docqueue end to end, on the Redis (and DB number) "
                        "of REDIS_URL: its 'summarize' queue must be free for this run")
    args = parser.parse_args()
    import torch
    from transformers import GenerationConfig

    from docqueue.params import SummarizeParams
    from docqueue.settings import Settings
    from workers.engines.llm import LLMSummarizer
    from workers.engines.llm.common import Prompter
    from workers.registry import Registry

    spec = args.model
    if args.tiny:
        from tests.tiny_llms import build_llama_chat

        spec = str(build_llama_chat(Path(tempfile.mkdtemp()) / "llama-chat"))
    if not spec:
        parser.error("--model or --tiny")
    if args.e2e and not os.environ.get("REDIS_URL"):
        parser.error("--e2e needs REDIS_URL (a Redis DB no other docqueue uses during the run)")
    registry = Registry(Settings(device=args.device, model_dirs=[str(Path(spec).parent)], allowed_models=[spec],
                                 llm_max_new_tokens={"summarize": args.new_tokens}))
    model = registry.llm(spec)
    docs = _docs(args.docs)
    prompter = Prompter(model)
    prompts = [prompter.tokens("summarize.tldr", document=d, words="", language="") for d in docs]
    results = []

    def static() -> int:
        total = 0
        for start in range(0, len(prompts), args.batch):
            total += sum(g.completion_tokens for g in model.generate(prompts[start:start + args.batch],
                                                                     args.new_tokens))
        return total

    model.batch_tokens = 10**9  # raw-static: exactly --batch rows per batch, no token budget
    results.append(_timed("raw-static", len(docs), static))
    model.batch_tokens = registry.settings.batch_max_tokens
    if not args.skip_continuous:
        config = GenerationConfig(max_new_tokens=args.new_tokens, do_sample=False, eos_token_id=model.eos_ids,
                                  pad_token_id=model.pad_id)

        def continuous() -> int:
            with torch.inference_mode():
                out = model.model.generate_batch(inputs=prompts, generation_config=config)
            total = 0
            for o in out.values():
                tokens = list(o.generated_tokens)
                stop = next((k for k, t in enumerate(tokens) if t in model.eos_ids), None)
                total += len(tokens[:stop] if stop is not None else tokens)
            return total

        try:
            results.append(_timed("raw-continuous", len(docs), continuous))
        except Exception as e:  # reported, not hidden: some devices/attention kernels lack paged attention
            results.append({"way": "raw-continuous", "error": f"{type(e).__name__}: {str(e)[:200]}"})
    engine = LLMSummarizer(model, registry.llm_limits())

    def through_engine() -> int:
        outs = engine.run(docs, SummarizeParams(engine="llm", style="tldr", max_new_tokens=args.new_tokens))
        return sum(int(o["llm"]["completion_tokens"]) for o in outs if isinstance(o, dict))

    results.append(_timed("engine", len(docs), through_engine))
    if args.e2e:
        micro = {"DOCQUEUE_BATCH_MAX_DOCS": "1", "DOCQUEUE_BATCH_GATHER_MS": "0"}
        results.append(_end_to_end("docqueue", spec, docs, args.new_tokens, args.device, {}))
        results.append(_end_to_end("one-task-per-doc", spec, docs, args.new_tokens, args.device, micro))
    raw = max((r for r in results if r["way"].startswith("raw") and "docs_per_s" in r), key=lambda r: r["docs_per_s"])
    summary: dict[str, Any] = {"model": spec, "device": str(model.device), "docs": len(docs),
                               "new_tokens": args.new_tokens, "results": results, "raw_best": raw["way"]}
    for r in results:
        if not r["way"].startswith("raw") and "docs_per_s" in r:
            key = r["way"].replace("-", "_")
            summary[f"{key}_vs_raw_docs_per_s"] = round(r["docs_per_s"] / raw["docs_per_s"], 3)
            if raw["generated_tokens_per_s"]:
                summary[f"{key}_vs_raw_tokens_per_s"] = round(
                    r["generated_tokens_per_s"] / raw["generated_tokens_per_s"], 3)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
