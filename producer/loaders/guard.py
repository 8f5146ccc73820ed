"""PDF and Word parsing in a guarded child process: a time and a memory budget per file.

pypdf and python-docx run pure-Python parsers over attacker-controlled structure. Some inputs make
them loop for minutes or allocate gigabytes (object streams referencing each other, huge content
streams, deeply nested tables). A thread cannot be stopped and an in-process memory limit would
hit the whole producer, so each such file is parsed in one long-lived child process: the parent
waits at most ``parse_timeout_s`` for its answer and kills the child when it is late; the child
runs under an address-space limit (``parse_memory_mb`` above its idle size), so a file that needs
more fails alone with ``parse_memory``. The child is reused across files (starting one costs about
0.3 s; a round trip about a millisecond) and restarted after a kill or a crash.

Protocol on the child's stdin/stdout: a JSON header line ``{"suffix": ".pdf", "size": N}`` then
N bytes; the answer is an 8-byte big-endian length and that much JSON, either
``{"ok": true, "text", "page_offsets", "meta"}`` or ``{"ok": false, "kind", "message"}``.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import IO, Any

from docqueue.errors import DocumentError
from producer.loaders.base import Extracted

#: Formats parsed in the child (HTML is one linear lxml pass; text needs no parser).
GUARDED_SUFFIXES = frozenset({".pdf", ".docx"})
#: The child writes this byte once its parsers are imported and its memory limit is set.
READY = b"R"
START_TIMEOUT_S = 60.0


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class ParserProcess:
    """One child process parsing one file at a time (the producer reads files one by one)."""

    def __init__(self, timeout_s: float, memory_mb: int) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            proc = subprocess.Popen(
                [sys.executable, "-m", "producer.loaders.guard", str(self.memory_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
            assert proc.stdout is not None
            # Start-up (imports) is not the file's fault: wait for the child's ready byte apart
            # from the file's parse budget.
            ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
            if not ready or proc.stdout.read(1) != READY:
                proc.kill()
                proc.wait()
                raise DocumentError("unreadable", f"the guarded parser process did not start within "
                                    f"{START_TIMEOUT_S:g} s (exit {proc.poll()})")
            self._proc = proc
        return self._proc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def extract(self, suffix: str, data: bytes) -> Extracted:
        """The text of ``data`` parsed as ``suffix``; raises DocumentError (the format's own kinds,
        ``parse_timeout`` or ``parse_memory``)."""
        with self._lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            started = time.monotonic()
            try:
                proc.stdin.write(json.dumps({"suffix": suffix, "size": len(data)}).encode() + b"\n")
                proc.stdin.write(data)
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], self.timeout_s)
                if not ready:
                    self.close()
                    raise DocumentError("parse_timeout", f"parsing took longer than parse_timeout_s "
                                        f"({self.timeout_s:g} s); the file was skipped")
                size = int.from_bytes(_read_exact(proc.stdout, 8), "big")
                answer: dict[str, Any] = json.loads(_read_exact(proc.stdout, size))
            except (BrokenPipeError, EOFError, ValueError) as e:
                code = proc.poll()
                self.close()
                raise DocumentError(_corrupt_kind(suffix), f"the parser process died on this file "
                                    f"({type(e).__name__}, exit {code}) after "
                                    f"{time.monotonic() - started:.1f} s") from e
        if not answer["ok"]:
            raise DocumentError(answer["kind"], answer["message"])
        return Extracted(text=answer["text"], page_offsets=answer["page_offsets"], meta=answer["meta"])


def _corrupt_kind(suffix: str) -> str:
    return {".pdf": "corrupt_pdf", ".docx": "corrupt_docx"}.get(suffix, "unreadable")


_shared: ParserProcess | None = None
_shared_lock = threading.Lock()


def extract(suffix: str, data: bytes, timeout_s: float, memory_mb: int) -> Extracted:
    """Parse one file in the shared guarded child (created on first use, killed at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None or (_shared.timeout_s, _shared.memory_mb) != (timeout_s, memory_mb):
            if _shared is not None:
                _shared.close()
            _shared = ParserProcess(timeout_s, memory_mb)
            atexit.register(_shared.close)
        parser = _shared
    return parser.extract(suffix, data)


# ------------------------------------------------------------------------------------ the child
def _limit_memory(memory_mb: int) -> None:
    """Cap the address space at what the idle child maps plus ``memory_mb``."""
    import resource

    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    limit = mapped + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child(memory_mb: int) -> None:  # pragma: no cover - runs in the child; tested through extract()
    from producer.loaders import pdf, word

    extractors = {".pdf": pdf.extract, ".docx": word.extract}
    if sys.platform.startswith("linux") and memory_mb > 0:
        _limit_memory(memory_mb)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(READY)
    stdout.flush()
    while True:
        header = stdin.readline()
        if not header:
            return
        request = json.loads(header)
        data = _read_exact(stdin, request["size"])
        try:
            result = extractors[request["suffix"]](data)
            answer: dict[str, Any] = {"ok": True, "text": result.text, "page_offsets": result.page_offsets,
                                      "meta": result.meta}
        except DocumentError as e:
            answer = {"ok": False, "kind": e.kind, "message": e.message}
        except MemoryError:
            answer = {"ok": False, "kind": "parse_memory", "message": f"parsing needs more than "
                      f"parse_memory_mb ({memory_mb} MiB); the file was skipped"}
        except Exception as e:  # a parser bug on a hostile file: that file fails, the next is read
            answer = {"ok": False, "kind": _corrupt_kind(request["suffix"]),
                      "message": f"cannot be read ({type(e).__name__}: {e})"}
        del data
        body = json.dumps(answer).encode()
        stdout.write(len(body).to_bytes(8, "big") + body)
        stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    _child(int(sys.argv[1]))
