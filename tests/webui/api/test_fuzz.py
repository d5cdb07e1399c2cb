"""Schemathesis against the OpenAPI schema (RELIABILITY row 36): no 5xx, and answers match the schema.

The app runs in-process over WSGI, signed in by token as a project's owner; examples are bounded so the
whole module stays within seconds per operation.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _load_schema():
    # Fetched through the app itself at collection time (the schema view needs no database).
    from webui.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/v1/schema/", application)


schema = _load_schema()


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # Calling the WSGI app directly fires request_started/finished, whose close_old_connections() would
    # close the test's own connection mid-transaction; Django's test client disconnects it the same way.
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def owner_token(owner, project):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=owner).key


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_it_never_fails_with_a_server_error_and_matches_its_schema(case, owner_token, media_root):
    # A schema-valid `file` is any string, but only real image bytes are an image: refusing the rest
    # with 400 is the documented behaviour, so "positive data acceptance" does not apply to uploads.
    case.call_and_validate(
        headers={"Authorization": f"Token {owner_token}"}, excluded_checks=[positive_data_acceptance]
    )
