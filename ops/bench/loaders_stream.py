"""How fast the loaders read, and whether memory stays flat, on generated inputs of a chosen size.

    python ops/bench/loaders_stream.py --csv-mb 200 --pdfs 300 --files 10000 --workdir /tmp/docqueue-bench

Writes a CSV export of about ``--csv-mb`` MB, a folder of ``--pdfs`` two-page PDFs and a folder
tree of ``--files`` small text files (100 per sub-folder, as mail or scan exports lay them out), then reads
each through ``producer.loaders.iter_documents`` (nothing stored), printing documents, MB/s and the
peak resident memory growth while reading. Reading only: no database, no broker.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from producer.loaders import LoadOptions, ReadStats, iter_documents


def _rss_mb() -> float:
    """Current resident memory (Linux), sampled while reading: the high-water mark of the whole
    process would hide what reading costs behind what building the inputs cost."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _make_csv(path: Path, megabytes: int) -> None:
    if path.exists() and path.stat().st_size >= megabytes * 1_000_000:
        return
    body = "The customer writes about invoice {i} and the renewal of contract {j}; " * 3
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "owner", "priority"])
        i = 0
        while f.tell() < megabytes * 1_000_000:
            writer.writerow([f"T-{i}", body.format(i=i, j=i * 7), "ops", i % 5])
            i += 1


def _make_pdfs(folder: Path, count: int) -> None:
    from reportlab.pdfgen import canvas  # a dev dependency, only needed to build the inputs

    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        path = folder / f"contract-{n:05d}.pdf"
        if path.exists():
            continue
        c = canvas.Canvas(str(path))
        for page in range(2):
            for line in range(40):
                c.drawString(60, 800 - line * 18, f"Contract {n}, page {page + 1}, clause {line}: the parties agree.")
            c.showPage()
        c.save()


def _make_text_files(folder: Path, count: int) -> None:
    body = "Dear team, please find the invoice {n} attached; payment is due within thirty days.\n"
    for n in range(count):
        sub = folder / f"{n // 100:05d}"
        if n % 100 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"message-{n:06d}.txt"
        if not path.exists():
            path.write_text(body.format(n=n) * (1 + n % 7), encoding="utf-8")


def _read(label: str, inputs: list[str], options: LoadOptions) -> None:
    stats = ReadStats()
    before = peak = _rss_mb()
    start = time.perf_counter()
    documents = 0
    for _ in iter_documents(inputs, options, stats):
        documents += 1
        if documents % 5000 == 0:
            peak = max(peak, _rss_mb())
    seconds = time.perf_counter() - start
    print(f"{label}: {documents} documents from {stats.files} files, {stats.bytes / 1e6:.1f} MB in {seconds:.1f} s "
          f"({stats.bytes / 1e6 / seconds:.1f} MB/s, {documents / seconds:.0f} docs/s); "
          f"RSS {before:.0f} MB before, at most {max(peak, _rss_mb()):.0f} MB while reading")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv-mb", type=int, default=200)
    parser.add_argument("--pdfs", type=int, default=300)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/docqueue-bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    _make_csv(args.workdir / "export.csv", args.csv_mb)
    _make_pdfs(args.workdir / "pdfs", args.pdfs)
    _read("csv", [str(args.workdir / "export.csv")], LoadOptions(id_field="id"))
    _read("pdf", [str(args.workdir / "pdfs")], LoadOptions())
    if args.files:
        _make_text_files(args.workdir / f"text-{args.files}", args.files)
        _read("files", [str(args.workdir / f"text-{args.files}")], LoadOptions())


if __name__ == "__main__":
    main()
