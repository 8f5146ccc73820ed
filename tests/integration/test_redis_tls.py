"""A real TLS redis-server (Debian's Redis 7 is built with TLS): a ``rediss://`` submit and a worker
run end to end with the CA setting, and the same URL without the CA is refused in one line.

Certificates are made with openssl here: a CA, and a server certificate for 127.0.0.1 it signed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, service_env
from tests.faults.servers import REDIS_SERVER, _wait_port, free_port
from tests.helpers import cli, cli_json, wait_until


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> dict[str, Path]:
    d.mkdir()
    ca_key, ca, key, csr, cert = d / "ca.key", d / "ca.crt", d / "server.key", d / "server.csr", d / "server.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
             "-subj", "/CN=docqueue test CA")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(d / "san.ext"))
    return {"ca": ca, "cert": cert, "key": key}


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, dict[str, Path]]]:
    if not Path(REDIS_SERVER).exists() or shutil.which("openssl") is None:
        pytest.skip("needs /usr/bin/redis-server (built with TLS) and openssl")
    certs = make_certs(tmp_path / "certs")
    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(certs["cert"]), "--tls-key-file", str(certs["key"]),
                             "--tls-ca-cert-file", str(certs["ca"]), "--tls-auth-clients", "no", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, 20, "TLS redis-server")
        yield port, certs
    finally:
        proc.terminate()
        proc.wait(10)


def test_rediss_submit_and_worker_with_the_ca(tls_redis: tuple[int, dict[str, Path]], sqlite_url: str,
                                              tmp_path: Path, start_worker) -> None:
    port, certs = tls_redis
    env = service_env(f"rediss://127.0.0.1:{port}/0", sqlite_url, tmp_path, DOCQUEUE_REDIS_TLS_CA=str(certs["ca"]),
                      DOCQUEUE_BROKER_CONNECT_TIMEOUT_S="3")
    worker = start_worker(env, module="tests.faults.noop_worker")
    out = cli(env, "submit", "classify", str(FIXTURES / "classify" / "invoice-7731.txt"), "--labels",
              "contract,invoice", "--json")
    batch = json.loads(out.stdout)["batch"]
    assert "Traceback" not in out.stderr and "could not" not in out.stderr, out.stderr  # events over TLS too
    wait_until(lambda: cli_json(env, "status", batch, "--json")["succeeded"] == 1, timeout=120,
               what="the job over TLS")
    assert worker.proc.poll() is None

    # the same server without the CA: the certificate cannot be verified, one line, exit 4
    no_ca = {k: v for k, v in env.items() if k != "DOCQUEUE_REDIS_TLS_CA"}
    refused = cli(no_ca, "submit", "classify", str(FIXTURES / "classify"), "--labels", "a,b", check=False, timeout=60)
    assert refused.returncode == 4, refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "TLS" in refused.stderr or "certificate" in refused.stderr, refused.stderr
