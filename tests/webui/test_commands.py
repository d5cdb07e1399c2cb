"""`manage.py ensure_admin`: the first admin account of a fresh install, created once."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def _run(**options) -> str:
    out = StringIO()
    call_command("ensure_admin", stdout=out, **options)
    return out.getvalue()


def test_it_creates_an_admin_with_a_password_shown_once(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    out = _run(url="http://127.0.0.1:9000/")
    assert "Sign in at http://127.0.0.1:9000/ as 'admin'" in out
    password = re.search(r"with the password: (\S+)", out).group(1)
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_superuser and user.is_staff


def test_it_takes_the_name_and_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root-of-all")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long enough secret 123")
    out = _run()
    assert "as 'root-of-all'" in out and "a long enough secret 123" not in out  # never echoed
    assert authenticate(username="root-of-all", password="a long enough secret 123").is_superuser


def test_it_does_nothing_once_anyone_exists(monkeypatch, owner):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "second")
    assert _run() == ""
    assert list(get_user_model().objects.values_list("username", flat=True)) == [owner.username]
