"""Details a newcomer hit (issue 13), checked in Chromium: flash icons that show, tabs that say there is
more on a phone, and file buttons that show keyboard focus.

Its own project; it runs after test_flows.py (file order), whose first flow expects alice to start with
no project.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def _new_project(page, name: str) -> None:
    page.get_by_role("link", name="+ New project").click()
    page.fill("#id_name", name)
    page.get_by_role("button", name="Create project").click()


def test_a_flash_message_shows_its_icon(live_app, sign_in):
    page = sign_in("alice")
    _new_project(page, "Icons")
    message = page.locator(".messages li").first
    expect(message).to_be_visible()
    icon, text = message.evaluate(
        "li => [getComputedStyle(li, '::before').backgroundColor, getComputedStyle(li, '::before').color]"
    )
    assert icon != text, f"the icon's disc and its glyph have the same colour ({icon})"


def test_phone_tabs_show_the_current_one_and_hint_at_the_rest(live_app, sign_in, shot):
    page = sign_in("alice", viewport={"width": 390, "height": 844})
    _new_project(page, "Tabs on a phone")
    tabs = page.get_by_role("navigation", name="Project")
    expect(tabs).to_have_class("tabs more-right")  # Overview shows; more tabs to the right
    tabs.get_by_role("link", name="Settings", exact=True).click()
    tabs = page.get_by_role("navigation", name="Project")
    current = tabs.locator("[aria-current=page]")
    expect(current).to_have_text("Settings")
    box = current.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box  # scrolled into view
    expect(tabs).to_have_class("tabs more-left")
    shot(page, "01-settings-tab-on-a-phone")


def test_the_file_buttons_show_keyboard_focus(live_app, sign_in):
    page = sign_in("alice")
    _new_project(page, "Focus")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Upload", exact=True).click()
    page.wait_for_url("**/upload/")  # loaded: upload.js (deferred) listens before files are picked
    label = page.locator("label[for=pick-files]")
    unfocused = label.evaluate("label => getComputedStyle(label).boxShadow")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "pick-files":
            break
    else:
        pytest.fail("Tab never reached the file input")
    ring = "(want) => getComputedStyle(document.querySelector('label[for=pick-files]')).boxShadow "
    page.wait_for_function(ring + "!== want", arg=unfocused, timeout=3000)  # (the ring fades in)
    page.keyboard.press("Tab")  # the focus moves on, and the ring with it
    page.wait_for_function(ring + "=== want", arg=unfocused, timeout=3000)


def _pictures(n: int) -> list[dict]:
    import io

    from PIL import Image

    out = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 40), (40 * i % 256, 120, 200)).save(buffer, "PNG")
        out.append({"name": f"p{i}.png", "mimeType": "image/png", "buffer": buffer.getvalue()})
    return out


def test_on_a_phone_the_label_bar_shows_every_button_and_the_toast_stays_above_it(live_app, sign_in, shot):
    page = sign_in("alice", viewport={"width": 390, "height": 844})
    page.get_by_role("link", name="+ New project").click()
    page.fill("#id_name", "Bar on a phone")
    page.fill("#id_labels", "ants, bees")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Upload", exact=True).click()
    page.wait_for_url("**/upload/")  # loaded: upload.js (deferred) listens before files are picked
    page.set_input_files("#pick-files", _pictures(3))
    expect(page.locator("#done-text")).to_have_text("3 added.", timeout=30_000)
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Label", exact=True).click()

    bar = page.locator("#actionbar")
    for button in bar.locator("button:visible").all():
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (button.inner_text(), box)
    page.locator("#grid .tile").first.click()
    page.keyboard.press("1")
    toast = page.locator("#toast.show")
    expect(toast).to_have_text("ants · 1")
    assert toast.bounding_box()["y"] + toast.bounding_box()["height"] <= bar.bounding_box()["y"]
    filters = page.get_by_role("navigation", name="Show")
    expect(filters.get_by_role("link", name="Unlabeled")).to_have_text("Unlabeled 2")  # counts follow
    expect(filters.get_by_role("link", name="ants")).to_have_text("ants 1")
    expect(filters.get_by_role("link", name="All")).to_have_text("All 3")

    page.locator("#labels summary").click()  # add a label: the panel stays open for the next one
    page.get_by_label("New label name").fill("wasps")
    page.get_by_role("button", name="Add label").click()
    expect(page.locator(".messages")).to_contain_text("Added the label “wasps”.")
    expect(page.locator("#labels")).to_have_attribute("open", "")
    shot(page, "01-labelled-on-a-phone")

    page.goto(page.url.split("#")[0])  # from the keyboard: the first Tab offers the way to the pictures
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the pictures"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.classList.contains('tile')")


def test_on_a_phone_revoke_buttons_are_on_screen(live_app, sign_in, shot):
    page = sign_in("alice", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto("/accounts/tokens/")
    page.get_by_label("What is it for?").fill("a script with a rather long name for a phone screen")
    page.get_by_role("button", name="Create token").click()
    revoke = page.get_by_role("button", name="Revoke a script with a rather long name for a phone screen")
    box = revoke.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    page.goto("/projects/")
    _new_project(page, "Share on a phone")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Share", exact=True).click()
    select = page.get_by_label("Answers with")
    box = select.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box  # not cut off by its long option
    page.get_by_role("button", name="Create link").click()
    for name in ("Regenerate", "Revoke"):
        box = page.locator("table tbody tr").get_by_role("button", name=name).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (name, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "01-share-links-on-a-phone")


def test_holding_the_camera_button_records_frames_into_a_label(live_app, sign_in, shot):
    page = sign_in("alice")
    page.get_by_role("link", name="+ New project").click()
    page.fill("#id_name", "Camera capture")
    page.fill("#id_labels", "cups, plates")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Label", exact=True).click()
    page.get_by_role("button", name="Record with the camera").click()
    camera = page.locator("#camera")
    expect(camera).to_be_visible()
    page.wait_for_function("() => document.querySelector('#camera video').videoWidth > 0", timeout=15_000)
    camera.get_by_label("Record into").select_option("plates")
    hold = camera.get_by_role("button", name="Hold to record")
    expect(hold).to_be_enabled()
    hold.hover()
    page.mouse.down()
    page.wait_for_timeout(1300)  # about five frames
    page.mouse.up()
    expect(hold).to_have_attribute("aria-pressed", "false")
    status = camera.locator("[data-camera-status]")
    expect(status).to_contain_text(re.compile(r"^\d+ frames captured, \d+ stored\.$"), timeout=30_000)
    captured, stored = (int(n) for n in re.findall(r"\d+", status.inner_text())[:2])
    assert captured >= 3 and stored >= 1, (
        status.inner_text()
    )  # the test pattern repeats: copies are stored once
    shot(page, "01-camera")
    page.get_by_role("button", name="Stop the camera").click()
    page.reload()
    filters = page.get_by_role("navigation", name="Show")
    expect(filters.get_by_role("link", name="plates")).to_have_text(f"plates {stored}")
