"""A zip of 2,000 pictures imported as a background job: the upload page follows the job, the site keeps
answering other requests while a worker imports, and every picture is accounted for.

Its own project and generated pictures; it runs after test_flows.py (file order), whose first flow
expects alice to start with no project.
"""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

COUNT = 2000


def _archive(n: int) -> bytes:
    """n small PNGs in shelf/left/ and shelf/right/ (a wrapper folder, then one folder per label)."""
    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(n):
            picture = Image.new("RGB", (16, 16), (i % 256, (i // 256) * 30 % 256, 200))
            data = io.BytesIO()
            picture.save(data, "PNG")
            archive.writestr(f"shelf/{'left' if i % 2 else 'right'}/{i:04d}.png", data.getvalue())
    return buffer.getvalue()


def test_a_zip_of_two_thousand_pictures_is_imported_by_a_job_while_the_site_answers(live_app, sign_in, shot):
    page = sign_in("alice")
    page.get_by_role("link", name="+ New project").click()
    page.fill("#id_name", "Zipped shelf")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Upload", exact=True).click()
    page.wait_for_url("**/upload/")  # loaded: upload.js (deferred) listens before files are picked
    projects_url = live_app.url + "/projects/"

    page.set_input_files(
        "#pick-zip", {"name": "shelf.zip", "mimeType": "application/zip", "buffer": _archive(COUNT)}
    )
    title = page.locator("#progress-title")
    answered_mid_import = 0
    for _ in range(1500):  # at most about 3 minutes
        text = title.inner_text()
        done = re.search(r"(\d+) of 2000 pictures", text)
        if done and 0 < int(done.group(1)) < COUNT:
            # The worker is importing: other pages answer meanwhile (the import left the request).
            response = page.request.get(projects_url)
            assert response.status == 200
            if re.search(r"(\d+) of 2000 pictures", title.inner_text()):
                answered_mid_import += 1
        if text in ("Done", "Stopped"):
            break
        page.wait_for_timeout(100)
    expect(title).to_have_text("Done")
    assert answered_mid_import >= 1, "no page was asked for while the import ran"
    expect(page.locator("#done-text")).to_have_text(f"{COUNT} added. Labels from the folders: left, right.")
    expect(page.locator("#n-bad")).to_have_text("0")
    # Every picture came labelled by its folder: what comes next is training, not labelling.
    expect(page.locator("#go-label")).to_have_text("Train a model")
    assert page.locator("#go-label").get_attribute("href").endswith("/train/")
    shot(page, "01-imported")

    page.reload()  # the upload page lists the import, and the project holds every picture
    imports = page.locator("#zip-imports")
    expect(imports.locator(".badge")).to_have_text("Succeeded")
    expect(imports).to_contain_text("imported 2000 of 2000 pictures (0 already in the project, 0 refused)")
    expect(page.locator("#image-count")).to_have_text(str(COUNT))
