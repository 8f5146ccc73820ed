"""The producer stays light: importing and running the CLI must not load torch, transformers or
any worker code (it sends tasks by name)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

FORBIDDEN = ("torch", "transformers", "workers", "tokenizers", "sentencepiece")


def test_producer_import_tree_has_no_torch() -> None:
    code = (
        "import sys, json, pkgutil, importlib\n"
        "import producer\n"
        "for m in pkgutil.walk_packages(producer.__path__, 'producer.'):\n"
        "    importlib.import_module(m.name)\n"
        "from click.testing import CliRunner\n"
        "from producer.cli import main\n"
        "for args in (['--help'], ['submit', '--help'], ['submit', 'classify', '--help'], ['status', '--help']):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
        "print(json.dumps(sorted(m for m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    leaked = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert not leaked, f"the producer imported {leaked[:10]}"
    assert "producer.cli" in loaded  # the check ran on the real CLI


def test_core_imports_no_torch() -> None:
    code = ("import sys, pkgutil, importlib, docqueue\n"
            "for m in pkgutil.walk_packages(docqueue.__path__, 'docqueue.'):\n"
            "    if '.migrations' not in m.name: importlib.import_module(m.name)\n"
            f"print(','.join(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
