"""The one rate limiter: exact counts in the database or Redis, windows from the first use, and the
sign-in limit per account and per address."""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from django.db import connection
from django.urls import reverse

from webui.lib.rates import Rate, parse_rate
from webui.ratelimit import limiter


@pytest.mark.django_db
def test_it_allows_exactly_the_rate_then_says_how_long_to_wait():
    rate = Rate(3, 60)
    assert [limiter.hit("t", "a", rate) for _ in range(3)] == [None, None, None]
    wait = limiter.hit("t", "a", rate)
    assert wait is not None and 1 <= wait <= 61
    assert limiter.over("t", "a", rate) is not None and limiter.over("t", "b", rate) is None
    assert limiter.hit("t", "b", rate) is None  # someone else has their own count
    limiter.clear("t", "a", rate)
    assert limiter.hit("t", "a", rate) is None


@pytest.mark.django_db
def test_a_window_starts_with_the_first_use_and_ends(monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from webui.ratelimit.models import Counter

    rate = Rate(1, 60)
    assert limiter.hit("t", "a", rate) is None
    assert limiter.hit("t", "a", rate) is not None
    Counter.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # the minute has passed
    assert limiter.hit("t", "a", rate) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_uses_are_all_counted():
    if connection.vendor == "sqlite" and "memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("threads cannot share an in-memory SQLite test database")
    rate, answers = Rate(25, 60), []

    def use():
        try:
            answers.extend(limiter.hit("t", "crowd", rate) is None for _ in range(10))
        finally:
            connection.close()

    threads = [threading.Thread(target=use) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 50 and sum(answers) == 25


def test_it_counts_in_redis_when_a_cache_url_is_set(settings):
    url = os.environ.get("PINHOLE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("PINHOLE_REQUIRE_SERVICES"):
            pytest.fail("PINHOLE_TEST_REDIS_URL is not set")
        pytest.skip("set PINHOLE_TEST_REDIS_URL to test the Redis counters")
    settings.PINHOLE_CACHE_URL = url
    who, rate = uuid.uuid4().hex, Rate(2, 30)
    try:
        assert [limiter.hit("t", who, rate) for _ in range(3)][:2] == [None, None]
        assert limiter.over("t", who, rate) is not None
        assert 1 <= limiter.hit("t", who, rate) <= 31
        limiter.clear("t", who, rate)
        assert limiter.over("t", who, rate) is None
    finally:
        limiter.clear("t", who, rate)


def test_rates_read_as_people_write_them():
    assert parse_rate("10/15min") == Rate(10, 900) and parse_rate("20/s") == Rate(20, 1)
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate("20 per second")


@pytest.mark.django_db
def test_wrong_passwords_lock_the_account_even_for_the_right_one(client, django_user_model, settings):
    settings.PINHOLE_SIGNIN_FAILURES_PER_ACCOUNT = Rate(3, 900)
    django_user_model.objects.create_user("ada", password="right-password-1")
    url = reverse("login")
    for _ in range(3):
        response = client.post(url, {"username": "ada", "password": "wrong"})
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    locked = client.post(url, {"username": "Ada", "password": "right-password-1"})  # any case
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert "Too many wrong passwords for this account. Wait 15 minutes" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked by these.
    django_user_model.objects.create_user("bob", password="right-password-2")
    assert client.post(url, {"username": "bob", "password": "right-password-2"}).status_code == 302


@pytest.mark.django_db
def test_a_right_password_clears_the_accounts_count(client, django_user_model, settings):
    settings.PINHOLE_SIGNIN_FAILURES_PER_ACCOUNT = Rate(3, 900)
    django_user_model.objects.create_user("ada", password="right-password-1")
    url = reverse("login")
    for _ in range(2):
        client.post(url, {"username": "ada", "password": "wrong"})
    assert client.post(url, {"username": "ada", "password": "right-password-1"}).status_code == 302
    client.logout()
    for _ in range(2):
        assert client.post(url, {"username": "ada", "password": "wrong"}).status_code == 200


@pytest.mark.django_db
def test_one_address_trying_many_names_is_stopped(client, settings):
    settings.PINHOLE_SIGNIN_FAILURES_PER_ADDRESS = Rate(4, 900)
    url = reverse("login")
    codes = [client.post(url, {"username": f"user{i}", "password": "x"}).status_code for i in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    assert "from your network" in client.post(url, {"username": "z", "password": "x"}).content.decode()


@pytest.mark.django_db
def test_the_admin_signs_in_through_the_limited_page(client, admin_user):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(admin_user)
    assert client.get("/admin/login/?next=/admin/")["Location"] == "/admin/"
