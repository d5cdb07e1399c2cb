"""Oversized requests are refused before their body is read (too many files, too many bytes)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_it_refuses_a_body_over_the_limit_from_its_header(client, settings):
    settings.PINHOLE_MAX_REQUEST_MB = 1
    response = client.post(
        "/api/v1/projects/1/images/", data=b"x" * 10, content_type="application/octet-stream",
        CONTENT_LENGTH=str(60 * 1024 * 1024),
    )  # fmt: skip
    assert response.status_code == 413
    assert "limit is 1 MB" in response.json()["detail"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(90)
def test_it_answers_413_to_a_60_mb_stream_without_reading_it(tmp_path):
    port = _free_port()
    env = dict(os.environ, PINHOLE_DATA_DIR=str(tmp_path), PINHOLE_MAX_REQUEST_MB="50")
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "webui.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        size = 60 * 1024 * 1024
        head = (
            f"POST /api/v1/projects/1/images/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {size}\r\n\r\n"
        )
        started = time.monotonic()
        sock.sendall(head.encode() + b"--x\r\n" + b"\0" * (256 * 1024))  # a first chunk, not 60 MB
        answer = sock.recv(4096).decode("latin-1")
        sock.close()
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        assert time.monotonic() - started < 5
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_it_stops_reading_a_body_without_a_length_past_the_limit(settings):
    from django.core.files.uploadhandler import StopUpload

    from webui.lib.limits import LimitedUploadHandler

    settings.PINHOLE_MAX_REQUEST_MB = 1
    handler = LimitedUploadHandler()
    chunk = b"\0" * (256 * 1024)
    for start in range(0, 1024 * 1024, len(chunk)):
        assert handler.receive_data_chunk(chunk, start) == chunk
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(chunk, 1024 * 1024)
