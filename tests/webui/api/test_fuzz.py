"""Schemathesis against the OpenAPI schema: no 5xx, and answers match the schema.

The app runs in-process over WSGI, signed in by token as a project's owner; examples are bounded so the
whole module stays within seconds per operation. Path ids point at the owner's real project, label,
image, run and versions (generated ids would almost always be unknown, so only the 404 paths would
be fuzzed); the bodies and query strings stay generated.
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
    from webui.api.models import ApiToken

    return ApiToken.create_for(owner, "fuzzing")[1]


@pytest.fixture
def real_ids(labelled_project, serving_history):
    """Ids of rows the owner can reach: v2 serves (its artifact has intact checksums but no usable
    model, so predictions must answer 409, never 500), v1 is there to roll back to."""
    from webui.training.models import TrainingRun

    project = labelled_project
    _v1, v2 = serving_history
    return {
        "project_id": project.pk,
        "label_id": project.labels.first().pk,
        "image_id": project.images.first().pk,
        "run_id": TrainingRun.objects.create(project=project, params={}).pk,
        "version_id": v2.pk,
    }


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_it_never_fails_with_a_server_error_and_matches_its_schema(case, owner_token, real_ids, media_root):
    for name in (case.path_parameters or {}).keys() & real_ids.keys():
        case.path_parameters[name] = real_ids[name]
    # A schema-valid `file` is any string, but only real image bytes are an image: refusing the rest
    # with 400 is the documented behaviour, so "positive data acceptance" does not apply to uploads.
    case.call_and_validate(
        headers={"Authorization": f"Token {owner_token}"}, excluded_checks=[positive_data_acceptance]
    )
