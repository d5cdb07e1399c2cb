"""Prints, as JSON, every environment variable a Pinhole process reads while it starts.

Run as a script in a fresh interpreter: os.environ is replaced by a recording mapping before anything
imports it, then the settings, the Celery app and the engine choice load as in a web or worker process.
"""

import json
import os


class Recording(dict):
    seen: set[str] = set()

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.seen.add(key)
        return super().__contains__(key)

    def setdefault(self, key, default=None):
        self.seen.add(key)
        return super().setdefault(key, default)


os.environ = Recording(os.environ)  # noqa: B003 - replacing it is the point: every read is recorded

import django  # noqa: E402

django.setup()

import classifier.engines  # noqa: E402
import webui.celery  # noqa: E402, F401

classifier.engines.choose(None)
print(json.dumps(sorted(Recording.seen)))
