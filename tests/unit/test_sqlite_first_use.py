"""Several processes opening one new SQLite file at once (two workers started together on the
zero-setup default) all get the migrated schema: one migrates, the others wait for it instead of
refusing a half-made schema ("at schema revision none")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = "import sys; from docqueue.db import ensure_schema; ensure_schema(sys.argv[1]); print('ok')"


def test_processes_migrating_one_new_file_together_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'docqueue.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, url], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in outputs]
