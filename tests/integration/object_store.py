"""An S3-compatible server for the tests: moto's standalone server, speaking the S3 HTTP protocol.

No real store installs from the registries we reach: MinIO, SeaweedFS and Garage are in none of them,
and Debian's Ceph (16.2) needs a whole cluster behind its S3 gateway (the stand-alone "dbstore" came
with 17). moto's server is a separate process on 127.0.0.1 that django-storages and boto3 talk to over
HTTP, exactly as they talk to MinIO or AWS; nothing in Pinhole knows which store it is.
PINHOLE_TEST_S3_URL names another server to use instead (a real MinIO, say), with
PINHOLE_TEST_S3_ACCESS_KEY_ID / _SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ObjectStore:
    """A running S3-compatible server; `env(bucket)` is what a Pinhole process needs to use it."""

    def __init__(self, log_path: Path):
        self.process = None
        self.url = os.environ.get("PINHOLE_TEST_S3_URL", "").strip()
        self.access_key = os.environ.get("PINHOLE_TEST_S3_ACCESS_KEY_ID", "pinhole-test")
        self.secret_key = os.environ.get("PINHOLE_TEST_S3_SECRET_ACCESS_KEY", "pinhole-test-secret")
        if not self.url:
            port = _free_port()
            self.url = f"http://127.0.0.1:{port}"
            self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=self._log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._wait_until_it_answers()

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name=REGION,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )  # fmt: skip

    def _wait_until_it_answers(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client().list_buckets()
                return
            except Exception as e:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"the S3 server exited with {self.process.returncode}") from e
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no S3 server answers at {self.url}: {e}") from e
                time.sleep(0.2)

    def new_bucket(self) -> str:
        bucket = f"pinhole-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def env(self, bucket: str) -> dict[str, str]:
        """The settings that put a Pinhole process's files in `bucket` (see webui/lib/env.py)."""
        return {
            "PINHOLE_S3_BUCKET": bucket,
            "PINHOLE_S3_ENDPOINT_URL": self.url,
            "PINHOLE_S3_REGION": REGION,
            "PINHOLE_S3_ACCESS_KEY_ID": self.access_key,
            "PINHOLE_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self._log.close()
