"""A thousand pictures at once through the upload page: the page keeps only the requests in flight on
screen, every file is accounted for, and the project ends up with all of them.

Its own project and generated pictures; it runs after test_flows.py (file order), whose first flow
expects alice to start with no project.
"""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

COUNT = 1000
ROWS_AT_MOST = 4 * 8  # requests in flight x files per request (webui/static/pinhole/upload.js)


def _pictures(n: int) -> list[dict]:
    from PIL import Image

    out = []
    for i in range(n):
        image = Image.new("RGB", (24, 24), (i % 256, (i // 256) * 40 % 256, 90))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append({"name": f"shelf-{i:04d}.png", "mimeType": "image/png", "buffer": buffer.getvalue()})
    return out


def test_upload_of_a_thousand_pictures(live_app, sign_in, shot):
    page = sign_in("alice")
    page.get_by_role("link", name="+ New project").click()
    page.fill("#id_name", "Shelf photos")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Upload", exact=True).click()
    page.wait_for_url("**/upload/")  # loaded: upload.js (deferred) listens before files are picked

    page.set_input_files("#pick-files", _pictures(COUNT))
    most_rows = 0
    done = page.locator("#done-text")
    for _ in range(1200):  # sample the page while it uploads (at most about 2 minutes)
        rows = page.locator("#active-list li").count()
        most_rows = max(most_rows, rows)
        if done.is_visible() and done.inner_text():
            break
        page.wait_for_timeout(100)
    expect(done).to_have_text(f"{COUNT} added.", timeout=60_000)
    assert 0 < most_rows <= ROWS_AT_MOST, most_rows
    expect(page.locator("#active-list li")).to_have_count(0)
    expect(page.locator("#n-bad")).to_have_text("0")
    expect(page.locator("#progress-bytes")).to_have_text(f"{COUNT} of {COUNT} files")
    expect(page.locator("#image-count")).to_have_text(str(COUNT))
    expect(page.locator("#go-label")).to_have_text("Label the new pictures")  # they came without labels
    shot(page, "01-uploaded")

    page.get_by_role("navigation", name="Project").get_by_role("link", name="Label", exact=True).click()
    expect(page.locator("#grid .tile")).to_have_count(60)  # one page of the thousand
    expect(page.locator(".filters a.active .n")).to_have_text(str(COUNT))
