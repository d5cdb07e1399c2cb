"""Every project page added for upload / label / images: who may see it, who may change through it."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.helpers import png
from webui.projects.models import Image, Membership, Project, ZipImport
from webui.serving.models import PredictionRecord, ShareLink
from webui.training.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db


def _png(colour=(200, 40, 40)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def data(project, owner, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label

    label = get_or_create_label(project, "ants")
    image = ingest_image(project, owner, SimpleUploadedFile("a.png", _png()), label=label).image
    return {"label": label, "image": image}


def _reads(project, data):
    p, i = project.pk, data["image"].pk
    return [
        reverse("projects:detail", args=[p]),
        reverse("projects:upload", args=[p]),
        reverse("projects:label", args=[p]),
        reverse("projects:label", args=[p]) + "?show=unlabeled",
        reverse("projects:image-thumb", args=[p, i]),
        reverse("projects:image-full", args=[p, i]),
    ]


def _writes(project, data):
    p, lab, i = project.pk, data["label"].pk, data["image"].pk
    return [
        (reverse("projects:label-apply", args=[p]), {"images": str(i), "label": "none"}),
        (reverse("projects:accept-suggestions", args=[p]), {"threshold": "90"}),
        (reverse("projects:label-create", args=[p]), {"name": "wasps"}),
        (reverse("projects:label-update", args=[p, lab]), {"name": "ants", "colour": "#000000"}),
        (reverse("projects:label-delete", args=[p, lab]), {}),
        (reverse("projects:upload-zip", args=[p]), {}),
        (reverse("projects:delete", args=[p]), {"confirm_name": "nope"}),
    ]


def test_it_sends_anonymous_visitors_to_sign_in(project, data):
    anonymous = Client()
    for url in _reads(project, data):
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
    for url, body in _writes(project, data):
        response = anonymous.post(url, body)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_it_shows_every_page_to_members(request, client_for, project, data, who):
    c = client_for(request.getfixturevalue(who))
    for url in _reads(project, data):
        assert c.get(url).status_code == 200, url


def test_it_answers_404_to_strangers_everywhere(client_for, project, data, stranger):
    c = client_for(stranger)
    for url in _reads(project, data):
        assert c.get(url).status_code == 404, url
    for url, body in _writes(project, data):
        assert c.post(url, body).status_code == 404, url
    data["image"].refresh_from_db()
    assert data["image"].label_id == data["label"].pk


def test_it_answers_404_for_an_image_of_another_project(client_for, project, data, stranger, media_root):
    from webui.projects.models import Project

    theirs = Project.objects.create(name="Theirs", owner=stranger)
    c = client_for(stranger)
    assert c.get(reverse("projects:image-thumb", args=[theirs.pk, data["image"].pk])).status_code == 404


def test_it_refuses_changes_from_viewers(client_for, project, data, viewer):
    c = client_for(viewer)
    for url, body in _writes(project, data):
        assert c.post(url, body).status_code == 403, url
    data["image"].refresh_from_db()
    assert data["image"].label_id == data["label"].pk
    assert project.labels.count() == 1


def test_it_hides_controls_from_viewers(client_for, project, data, viewer, editor):
    label_page = client_for(viewer).get(reverse("projects:label", args=[project.pk])).content.decode()
    assert 'id="actionbar"' not in label_page and "Add label" not in label_page
    upload_page = client_for(viewer).get(reverse("projects:upload", args=[project.pk])).content.decode()
    assert "View only" in upload_page and "upload.js" not in upload_page
    editor_page = client_for(editor).get(reverse("projects:label", args=[project.pk])).content.decode()
    assert 'id="actionbar"' in editor_page and "Add label" in editor_page


def test_it_lets_only_the_owner_delete_the_project(client_for, project, data, editor, owner):
    from webui.projects.models import Project

    url = reverse("projects:delete", args=[project.pk])
    assert client_for(editor).post(url, {"confirm_name": project.name}).status_code == 403
    assert client_for(owner).post(url, {"confirm_name": "wrong"}).status_code == 302
    assert Project.objects.filter(pk=project.pk).exists()
    response = client_for(owner).post(url, {"confirm_name": project.name})
    assert response.status_code == 302 and not Project.objects.filter(pk=project.pk).exists()


def test_it_requires_csrf_tokens_on_every_change(project, data, owner):
    c = Client(enforce_csrf_checks=True)
    c.force_login(owner)
    for url, body in _writes(project, data):
        assert c.post(url, body).status_code == 403, url


def test_it_refuses_to_be_framed(client_for, project, data, owner):
    c = client_for(owner)
    for url in _reads(project, data):
        assert c.get(url)["X-Frame-Options"] == "DENY", url


def test_it_renders_the_tabs_with_links_to_every_project_page(client_for, project, data, owner):
    body = client_for(owner).get(reverse("projects:detail", args=[project.pk])).content.decode()
    for name in ("projects:upload", "projects:label"):
        assert reverse(name, args=[project.pk]) in body
    assert 'class="tabs"' in body


def test_it_lists_projects_with_a_cover_and_counts(client_for, project, data, owner, make_version):
    version = make_version(project, 1, accuracy=0.875)
    version.promote(owner)
    body = client_for(owner).get(reverse("projects:list")).content.decode()
    assert reverse("projects:image-thumb", args=[project.pk, data["image"].pk]) in body
    assert "1 image " in body or "1 image\n" in body or "1 image ·" in body
    assert "1 label" in body
    assert "88%" in body  # 0.875 rounded


# --- the sweep: every page of the site, filled with another project's ids ------------------------------
#
# Access for pages: anonymous visitors are sent to sign in, signed-in strangers get
# 404 (never a hint that an id exists), viewers cannot change anything, and nothing changes in the
# database while being refused. The table below must name every URL pattern of the site; the guard test
# fails when a new page appears that the sweep does not know how to fill.

ANY_USER, READ, WRITE, OWNER = "any signed-in user", "members", "owner and editors", "owner only"
ALLOWED = {
    "owner": {ANY_USER, READ, WRITE, OWNER},
    "editor": {ANY_USER, READ, WRITE},
    "viewer": {ANY_USER, READ},
}
MISSING_ID = 987654

# Left out of the sweep, each for a reason. Keys are URL names (or "route:<pattern>" for unnamed ones).
EXCLUDED_PREFIXES = {
    "admin/": "Django's admin: staff only, with its own sign-in; tests/webui/test_admin.py",
    "api/": "the REST API answers 401/404 in JSON; tests/webui/api/test_permissions.py sweeps every route",
    "static/": "static assets (routed only under DEBUG); no project data",
    "media/": "stored files are never routed directly; images go through projects:image-thumb/full",
}
EXCLUDED = {
    "route:": "the site root only redirects to projects:list, which is swept",
    "healthz": "health check for load balancers: public by design, answers {ok: true} and nothing else",
    "route:favicon.ico": "a redirect to the static icon: public by design, no data",
    "login": "the sign-in page itself: public by design",
    "logout": "signing out: public by design, touches only the caller's own session",
    "password_change": "Django's own view, the caller's own password; no project ids",
    "password_change_done": "Django's own view, a static confirmation; no project ids",
    "password_reset": "Django's own view: public by design (forgot password); no project ids",
    "password_reset_done": "Django's own view, a static confirmation; no project ids",
    "password_reset_confirm": "Django's own view keyed by a signed reset token, not a project id",
    "password_reset_complete": "Django's own view, a static confirmation; no project ids",
    "serving:public": "public share page: the token is the key (tests/webui/test_share.py)",
    "serving:public_predict": "public share prediction by token, csrf-exempt for embeds (test_share.py)",
    "serving:public_feedback": "a share visitor's correction by token and signed answer (test_review.py)",
    "serving:embed": "public embeddable share page by token (tests/webui/test_share.py)",
    "serving:public_device": "a share page's on-device settings by token, for links that allow it (test_share_on_device.py)",
    "serving:public_model": "a share page's on-device model by token, for links that allow it (test_share_on_device.py)",
    "api-tokens": "the caller's own API tokens, no project ids (tests/webui/test_api_tokens.py)",
    "api-token-revoke": "revokes only the caller's own token, 404 otherwise (tests/webui/test_api_tokens.py)",
}


def _walk(patterns, prefix="", namespace="", params=frozenset()):
    """(key, route, parameter names) for every URL pattern, resolvers included."""
    from django.urls import URLResolver

    for entry in patterns:
        route = prefix + str(entry.pattern)
        names = params | set(entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, route, inner, names)
        else:
            key = f"{namespace}{entry.name}" if entry.name else f"route:{route}"
            yield key, route, names


def site_pages() -> dict[str, tuple[str, set[str]]]:
    from django.urls import get_resolver

    pages = {}
    for key, route, params in _walk(get_resolver().url_patterns):
        if any(route.startswith(prefix) for prefix in EXCLUDED_PREFIXES):
            continue
        pages[key] = (route, set(params))
    return pages


@dataclass
class World:
    """The victim's project (owner olive, editor eddie, viewer vera) with one of everything."""

    project: Any
    ants: Any
    bees: Any
    labelled: Any
    unlabeled: Any
    run: Any
    v1: Any
    v2: Any
    link: Any
    membership: Any
    media: Path
    zip_import: Any
    refresh: Any
    queued: Any


@pytest.fixture
def world(project, owner, editor, make_user, make_version, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label
    from webui.serving.models import Suggestion, SuggestionRefresh

    make_user("nina")  # someone to share with
    ants, bees = get_or_create_label(project, "ants"), get_or_create_label(project, "bees")
    images = []
    for index, (label, colour) in enumerate([(ants, (200, 40, 40)), (bees, (40, 40, 200))]):
        for seed in range(2):
            upload = SimpleUploadedFile(f"{label.name}{seed}.png", png(colour, seed=index * 10 + seed))
            images.append(ingest_image(project, owner, upload, label=label).image)
    unlabeled = ingest_image(project, owner, SimpleUploadedFile("u.png", png((9, 9, 9), seed=77))).image
    v1, v2 = make_version(project, 1), make_version(project, 2)
    v1.promote(owner)
    v2.promote(owner)  # v2 serves; rollback has v1 to go back to
    # The model's suggestion for the unlabeled image, as a refresh would have stored it.
    Suggestion.objects.create(version=v2, sha256=unlabeled.sha256, label="bees", probability=0.99)
    project.refresh_from_db()
    return World(
        project=project,
        ants=ants,
        bees=bees,
        labelled=images[0],
        unlabeled=unlabeled,
        run=TrainingRun.objects.create(project=project, params={}),
        v1=v1,
        v2=v2,
        link=ShareLink.create_for(project, owner)[0],
        membership=Membership.objects.get(project=project, user=editor),
        media=media_root,
        zip_import=ZipImport.objects.create(project=project, archive="imports/x.zip", name="x.zip"),
        refresh=SuggestionRefresh.objects.create(project=project, version=v2),
        queued=_queued(project, v2),
    )


def _queued(project, version):
    """An answer waiting for review, with its photo kept."""
    from webui.serving.models import PredictionRecord
    from webui.serving.records import store_photo

    row = PredictionRecord(
        project=project, version=version, version_number=version.number, source="try", label="ants",
        probability=0.51, sure=True, reason="unsure", review="queued", sha256="0" * 64,
    )  # fmt: skip
    store_photo(row, png((120, 60, 90), seed=3))
    row.save()
    return row


def _zip(w: World):
    import zipfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("wasps/w.png", png((10, 200, 10), seed=5))
    return {"archive": SimpleUploadedFile("more.zip", buffer.getvalue(), content_type="application/zip")}


def _get(model, **filters):
    return model.objects.filter(**filters).first()


def _label_of(image) -> int | None:
    image.refresh_from_db()
    return image.label_id


def _serving_id(w: World) -> int | None:
    w.project.refresh_from_db()
    return w.project.serving_version_id


@dataclass(frozen=True)
class Page:
    """How to fill one URL pattern, who may GET and POST it, and how to tell that a POST did its work.

    get / post: ANY_USER, READ, WRITE or OWNER; None when the method is refused (405) to everyone.
    A READ post must change nothing for anyone (it renders a page or answers a prediction).
    """

    ids: dict[str, Callable[[World], Any]]
    get: str | None
    post: str | None
    body: Callable[[World], dict] = lambda w: {}
    done: Callable[[World], bool] | None = None
    query: str = ""


P = {"project_id": lambda w: w.project.pk}
P_IMAGE = {**P, "image_id": lambda w: w.labelled.pk}
P_V1 = {**P, "number": lambda w: w.v1.number}
P_V2 = {**P, "number": lambda w: w.v2.number}
P_RUN = {**P, "run_id": lambda w: w.run.pk}
P_LINK = {**P, "link_id": lambda w: w.link.pk}
P_ANTS = {**P, "label_id": lambda w: w.ants.pk}
P_IMPORT = {**P, "job_id": lambda w: w.zip_import.pk}
P_REFRESH = {**P, "job_id": lambda w: w.refresh.pk}
P_RECORD = {**P, "record_id": lambda w: w.queued.pk}


def _zip_imported(w) -> bool:
    """The POST stored the archive and queued its import; run the import as a worker would."""
    from webui.projects.imports import run_zip_import

    for job in ZipImport.objects.filter(project=w.project, status="queued").exclude(pk=w.zip_import.pk):
        run_zip_import(job.pk)
    return w.project.images.filter(label__name="wasps").exists()


def _done_project_gone(w):
    return not Project.objects.filter(pk=w.project.pk).exists()


PAGES: dict[str, Page] = {
    # projects
    "projects:list": Page({}, ANY_USER, ANY_USER),
    "backbones": Page({}, ANY_USER, None),
    "projects:create": Page(
        {}, ANY_USER, ANY_USER, body=lambda w: {"name": "Mine"},
        done=lambda w: Project.objects.filter(name="Mine").exists(),
    ),
    "projects:detail": Page(P, READ, READ),
    "projects:delete": Page(
        P, None, OWNER, body=lambda w: {"confirm_name": w.project.name}, done=_done_project_gone
    ),
    "projects:settings": Page(
        P, READ, WRITE,
        body=lambda w: {"name": "Renamed", "description": "", "backbone": "efficientnet_lite0"},
        done=lambda w: Project.objects.get(pk=w.project.pk).name == "Renamed",
    ),
    "projects:member-add": Page(
        P, None, OWNER, body=lambda w: {"username": "nina", "role": "editor"},
        done=lambda w: Membership.objects.filter(project=w.project, user__username="nina").exists(),
    ),
    "projects:member-remove": Page(
        {**P, "membership_id": lambda w: w.membership.pk}, None, OWNER,
        done=lambda w: not Membership.objects.filter(pk=w.membership.pk).exists(),
    ),
    "projects:upload": Page(P, READ, READ),
    "projects:upload-zip": Page(
        P, None, WRITE, body=_zip, done=_zip_imported
    ),
    "projects:zip-import": Page(P_IMPORT, READ, None),
    "projects:zip-import-cancel": Page(
        P_IMPORT, None, WRITE, done=lambda w: _get(ZipImport, pk=w.zip_import.pk).status == "cancelled"
    ),
    "projects:suggestion-refresh": Page(P_REFRESH, READ, None),
    "projects:label": Page(P, READ, READ, query="?show=unlabeled"),
    "projects:label-apply": Page(
        P, None, WRITE, body=lambda w: {"images": str(w.unlabeled.pk), "label": str(w.ants.pk)},
        done=lambda w: _label_of(w.unlabeled) == w.ants.pk,
    ),
    "projects:accept-suggestions": Page(
        P, None, WRITE, body=lambda w: {"threshold": "90"},
        done=lambda w: _label_of(w.unlabeled) == w.bees.pk,
    ),
    "projects:label-create": Page(
        P, None, WRITE, body=lambda w: {"name": "wasps"},
        done=lambda w: w.project.labels.filter(name="wasps").exists(),
    ),
    "projects:label-update": Page(
        P_ANTS, None, WRITE, body=lambda w: {"name": "formicidae", "colour": "#000000"},
        done=lambda w: w.project.labels.filter(name="formicidae").exists(),
    ),
    "projects:label-delete": Page(
        P_ANTS, None, WRITE, done=lambda w: not w.project.labels.filter(pk=w.ants.pk).exists()
    ),
    "projects:image-thumb": Page(P_IMAGE, READ, None),
    "projects:export": Page(P, READ, None),
    "projects:image-full": Page(P_IMAGE, READ, None),
    # training
    "training:train": Page(
        P, READ, WRITE, body=lambda w: {"strategy": "linear"},
        done=lambda w: w.project.runs.count() == 2,
    ),
    "training:run_status": Page(P_RUN, READ, None),
    "training:cancel": Page(
        P_RUN, None, WRITE, done=lambda w: _get(TrainingRun, pk=w.run.pk).status == "cancelled"
    ),
    "training:versions": Page(P, READ, None),
    "training:compare": Page(P, READ, None),
    "training:rollback": Page(P, None, WRITE, done=lambda w: _serving_id(w) == w.v1.pk),
    "training:version": Page(P_V2, READ, None),
    "training:exports": Page(
        P_V2, READ, WRITE, body=lambda w: {"format": "onnx"},
        done=lambda w: w.v2.exports.filter(format="onnx").exists(),
    ),
    "training:cell": Page(P_V2, READ, None, query="?true=0&pred=1"),
    "training:promote": Page(P_V1, None, WRITE, done=lambda w: _serving_id(w) == w.v1.pk),
    "training:threshold": Page(
        P_V1,
        None,
        WRITE,
        body=lambda w: {"threshold": "80"},
        done=lambda w: ModelVersion.objects.get(pk=w.v1.pk).answer_threshold == 0.8,
    ),
    "training:delete": Page(
        P_V1, None, WRITE, done=lambda w: not ModelVersion.objects.filter(pk=w.v1.pk).exists()
    ),
    "training:relabel": Page(
        P_IMAGE, None, WRITE, body=lambda w: {"label": str(w.bees.pk)},
        done=lambda w: _label_of(w.labelled) == w.bees.pk,
    ),
    "training:delete-image": Page(
        P_IMAGE, None, WRITE, done=lambda w: not Image.objects.filter(pk=w.labelled.pk).exists()
    ),
    # serving (signed in)
    "serving:try": Page(P, READ, None),
    # Bytes that are no image, for the pretrained network: members get past access to the image
    # check (400) and no model loads.
    "serving:predict": Page(
        P, None, READ, body=lambda w: {"file": _upload("x.png", b"not an image"), "mode": "pretrained"}
    ),
    "serving:share": Page(
        P, READ, WRITE, done=lambda w: w.project.share_links.count() == 2
    ),
    "serving:review": Page(P, READ, None),
    "serving:review-photo": Page(P_RECORD, READ, None),
    "serving:review-decide": Page(
        P_RECORD, None, WRITE, body=lambda w: {"label": "ants"},
        done=lambda w: _get(PredictionRecord, pk=w.queued.pk).review == "accepted",
    ),
    "serving:share_revoke": Page(
        P_LINK, None, WRITE, done=lambda w: not _get(ShareLink, pk=w.link.pk).enabled
    ),
    "serving:share_regenerate": Page(
        P_LINK, None, WRITE,
        done=lambda w: w.project.share_links.filter(enabled=True).exclude(pk=w.link.pk).exists(),
    ),
}  # fmt: skip


def _upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def _url(name: str, w: World, **override) -> str:
    page = PAGES[name]
    kwargs = {key: fill(w) for key, fill in page.ids.items()}
    kwargs.update(override)
    return reverse(name, kwargs=kwargs) + page.query


def _snapshot(w: World) -> dict:
    """Every row of every table (sessions and rate-limit counters aside) and every stored file."""
    from django.apps import apps

    state = {}
    for model in apps.get_models():
        if model._meta.proxy or model._meta.label in ("sessions.Session", "ratelimit.Counter"):
            continue
        state[model._meta.label] = sorted(repr(row) for row in model.objects.values_list())
    state["files"] = sorted(str(p.relative_to(w.media)) for p in w.media.rglob("*"))
    return state


def _changes(before: dict, after: dict) -> list[str]:
    return [key for key in before.keys() | after.keys() if before.get(key) != after.get(key)]


def _request(c: Client, method: str, name: str, w: World, **override):
    url = _url(name, w, **override)
    if method == "get":
        return c.get(url)
    return c.post(url, PAGES[name].body(w))


def _with_ids(name: str) -> bool:
    return bool(PAGES[name].ids)


def test_it_knows_how_to_fill_every_page():
    """A new page must join the sweep (or be excluded above with its reason)."""
    pages = site_pages()
    unknown = set(pages) - set(PAGES) - set(EXCLUDED)
    assert not unknown, f"pages the sweep cannot fill: add them to PAGES: {sorted(unknown)}"
    stale = (set(PAGES) | set(EXCLUDED)) - set(pages)
    assert not stale, f"no such URL patterns any more: {sorted(stale)}"
    for name, page in PAGES.items():
        assert set(page.ids) == pages[name][1], f"{name} ({pages[name][0]}) takes {pages[name][1]}"
        if page.post in (WRITE, OWNER):
            assert page.done is not None, f"{name}: say how to tell that an allowed POST did its work"


def test_it_sends_anonymous_visitors_to_sign_in_from_every_page(world):
    anonymous, failures = Client(), []
    for name in PAGES:
        for method in ("get", "post"):
            before = _snapshot(world)
            response = _request(anonymous, method, name, world)
            to_login = response.status_code == 302 and response["Location"].startswith(reverse("login"))
            if not (to_login or response.status_code == 404):
                failures.append(f"{method.upper()} {name}: {response.status_code}")
            if changed := _changes(before, _snapshot(world)):
                failures.append(f"{method.upper()} {name} changed {changed}")
    assert not failures


def test_it_answers_404_to_strangers_on_every_page(client_for, world, stranger):
    c, failures = client_for(stranger), []
    for name in filter(_with_ids, PAGES):
        for method in ("get", "post"):
            access = getattr(PAGES[name], method)
            before = _snapshot(world)
            response = _request(c, method, name, world)
            # 405 answers every caller alike (test_it_refuses_undeclared_methods_to_everyone).
            expected = 404 if access else 405
            if response.status_code != expected:
                failures.append(f"{method.upper()} {name}: {response.status_code}, not {expected}")
            if changed := _changes(before, _snapshot(world)):
                failures.append(f"{method.upper()} {name} changed {changed}")
    assert not failures


def test_it_answers_foreign_ids_in_ones_own_project_like_missing_ones(client_for, world, stranger):
    """Owning project B gives no way into project A's labels, images, runs, versions, links, members."""
    theirs = Project.objects.create(name="Theirs", owner=stranger)
    c, failures = client_for(stranger), []
    for name in PAGES:
        inner = set(PAGES[name].ids) - {"project_id"}
        if not inner:
            continue
        for method in ("get", "post"):
            before = _snapshot(world)
            missing = _request(
                c, method, name, world, project_id=theirs.pk, **dict.fromkeys(inner, MISSING_ID)
            )
            response = _request(c, method, name, world, project_id=theirs.pk)
            if response.status_code != missing.status_code or response.status_code not in (302, 404, 405):
                failures.append(
                    f"{method.upper()} {name}: {response.status_code}, missing: {missing.status_code}"
                )
            if changed := _changes(before, _snapshot(world)):
                failures.append(f"{method.upper()} {name} changed {changed}")
    assert not failures


def test_it_lists_only_the_callers_own_projects(client_for, world, stranger):
    body = client_for(stranger).get(reverse("projects:list")).content.decode()
    assert world.project.name not in body and f"/projects/{world.project.pk}/" not in body


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_it_shows_every_page_to_every_member(request, client_for, world, who):
    c, failures = client_for(request.getfixturevalue(who)), []
    for name, page in PAGES.items():
        if page.get is None:
            continue
        response = c.get(_url(name, world))
        if response.status_code >= 400 or response.get("Location", "").startswith(reverse("login")):
            failures.append(f"GET {name}: {response.status_code}")
    assert not failures


def test_it_refuses_undeclared_methods_to_everyone(client_for, world, owner):
    c, failures = client_for(owner), []
    for name, page in PAGES.items():
        for method in ("get", "post"):
            if getattr(page, method) is None:
                before = _snapshot(world)
                status = _request(c, method, name, world).status_code
                if status != 405:
                    failures.append(f"{method.upper()} {name}: {status}; declare who may use it")
                if changed := _changes(before, _snapshot(world)):
                    failures.append(f"{method.upper()} {name} changed {changed}")
    assert not failures


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
@pytest.mark.parametrize("name", [name for name, page in PAGES.items() if page.post and page.ids])
def test_it_enforces_roles_on_every_post(request, client_for, world, who, name):
    page = PAGES[name]
    c = client_for(request.getfixturevalue(who))
    before = _snapshot(world)
    response = _request(c, "post", name, world)
    if page.post not in ALLOWED[who]:
        assert response.status_code in (403, 404), response.status_code
        assert not _changes(before, _snapshot(world))
        return
    assert response.status_code not in (403, 404, 405), response.status_code
    assert not response.get("Location", "").startswith(reverse("login"))
    if page.post == READ:
        assert not _changes(before, _snapshot(world)), "a POST declared READ must change nothing"
    else:
        assert page.done(world), f"{who} was allowed but the POST did not do its work"


def test_it_requires_csrf_tokens_on_every_post(world, owner):
    c, failures = Client(enforce_csrf_checks=True), []
    c.force_login(owner)
    for name, page in PAGES.items():
        if page.post is None:
            continue
        before = _snapshot(world)
        status = _request(c, "post", name, world).status_code
        if status != 403:  # the owner may do everything: a 403 here can only be the CSRF check
            failures.append(f"POST {name}: {status}")
        if changed := _changes(before, _snapshot(world)):
            failures.append(f"POST {name} changed {changed}")
    assert not failures


def test_a_refused_request_is_logged_on_one_line_without_a_traceback(client_for, project, viewer, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client_for(viewer).post(
            reverse("projects:delete", args=[project.pk]), {"confirm_name": "x"}
        )
    assert response.status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == f"Forbidden (Permission denied): /projects/{project.pk}/delete/"
    assert record.exc_info is None and "Traceback" not in caplog.text


def test_the_favicon_is_found_where_browsers_look(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("pinhole/favicon.svg")
