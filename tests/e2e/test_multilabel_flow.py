"""A multi-label project in the browser: alice asks "red blobs, blue stripes, both or neither?",
uploads unlabelled pictures, labels each with the keyboard (1 and 2 toggle a label, n says none of
them, Enter goes on), trains, moves one label's threshold on the results page and asks the model about
a new picture. Independent of the single-label flows. Screenshots at 1366 and 390 px wide.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_flows import filter_count, tab, train_and_wait
from tests.helpers import shapes

pytestmark = pytest.mark.e2e

KINDS = {"n": (False, False), "r": (True, False), "b": (False, True), "rb": (True, True)}


def test_flow6_multi_label_labelled_by_keyboard_trained_and_asked(live_app, sign_in, shot, tmp_path):
    files = []
    for i in range(5):
        for name, (red, blue) in KINDS.items():
            path = tmp_path / f"{name}-{i}.jpg"
            path.write_bytes(shapes(red, blue, seed=300 + 10 * i + len(files)))
            files.append(path)

    page = sign_in("alice")
    page.goto("/projects/new/")
    page.fill("#id_name", "Blobs and stripes")
    page.get_by_label("Any of the labels per picture (several, or none)").check()
    page.fill("#id_labels", "red, blue")
    shot(page, "01-new-multi-label-project")
    page.get_by_role("button", name="Create project").click()
    project_id = int(re.search(r"/projects/(\d+)/", page.url).group(1))

    tab(page, "Upload").click()
    page.wait_for_url("**/upload/")
    page.set_input_files("#pick-files", [str(p) for p in files])
    expect(page.locator("#done-text")).to_have_text("20 added.", timeout=60_000)

    page.goto(f"/projects/{project_id}/label/?show=all")
    assert filter_count(page, "Unlabeled") == "20"
    titles = page.locator("#grid .tile").evaluate_all("tiles => tiles.map(t => t.title)")
    ids = {label["name"]: label["id"] for label in json.loads(page.locator("#labels-data").text_content())}
    page.locator("#grid .tile").first.focus()
    for title in titles:
        red, blue = KINDS[title.split("-")[0]]
        if red:
            page.keyboard.press("1")
        if blue:
            page.keyboard.press("2")
        if not (red or blue):
            page.keyboard.press("n")  # none of these: moves on by itself
        else:
            page.keyboard.press("Enter")  # on to the next picture at once; the saves follow in order
    for index, title in enumerate(titles):
        red, blue = KINDS[title.split("-")[0]]
        expected = ",".join(str(ids[n]) for n, on in (("red", red), ("blue", blue)) if on)
        expect(page.locator("#grid .tile").nth(index)).to_have_attribute("data-label-ids", expected)
    expect(page.locator("nav.filters a", has_text="Unlabeled").locator(".n")).to_have_text("0")
    assert filter_count(page, "None of these") == "5"
    assert filter_count(page, "red") == "10" and filter_count(page, "blue") == "10"
    # Take "blue" off a picture that has both, then put it back: the counts follow.
    both = next(i for i, t in enumerate(titles) if t.startswith("rb-"))
    page.locator("#grid .tile").nth(both).focus()
    page.keyboard.press("2")
    expect(page.locator("nav.filters a", has_text="blue").locator(".n")).to_have_text("9")
    page.keyboard.press("2")
    expect(page.locator("nav.filters a", has_text="blue").locator(".n")).to_have_text("10")
    page.reload()
    assert filter_count(page, "None of these") == "5" and filter_count(page, "blue") == "10"
    shot(page, "02-labelled")

    train_and_wait(page, project_id, 1, shot, "03", live_app)
    page.goto(f"/projects/{project_id}/versions/1/")
    expect(page.locator("main")).to_contain_text("Mean average precision")
    slider = page.locator("#id_t0")
    expect(slider).to_be_visible()
    slider.fill("90")
    expect(page.locator("[data-label-index='0'] [data-said]")).to_have_text("90%")
    shot(page, "04-results")
    page.get_by_role("button", name="Serve with these thresholds").click()
    expect(page.locator(".messages")).to_contain_text("serves with these thresholds")
    expect(page.locator("[data-label-index='0']")).to_contain_text("(trained:")

    phone = sign_in("alice", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    for path, step in (
        (f"/projects/{project_id}/label/", "05"),
        (f"/projects/{project_id}/versions/1/", "06"),
    ):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        shot(phone, f"{step}-on-a-phone")

    tab(page, "Try it").click()
    question = tmp_path / "question.jpg"
    question.write_bytes(shapes(False, True, seed=999))
    page.locator(".tryit .try-buttons input[type=file]").first.set_input_files(str(question))
    expect(page.locator(".try-answer .answer-title")).to_have_text("blue", timeout=30_000)
    expect(page.locator(".try-answer")).to_contain_text("Each label is its own question")
    shot(page, "07-try-it")
    phone.goto(f"/projects/{project_id}/try/")
    phone.locator(".tryit .try-buttons input[type=file]").first.set_input_files(str(question))
    expect(phone.locator(".try-answer .answer-title")).to_have_text("blue", timeout=30_000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "07b-try-it-on-a-phone")

    # The review queue: the answer was kept if the model was unsure of a label (members' photos are
    # kept by default); a member ticks the labels it shows.
    tab(page, "Review").click()
    page.wait_for_url("**/review/")
    if page.locator(".review-item").count():
        item = page.locator(".review-item").first
        expect(item.locator("input[type=checkbox][name=labels]")).to_have_count(2)
        shot(page, "08-review")
        item.locator("input[value=red]").uncheck()
        item.locator("input[value=blue]").check()
        item.get_by_role("button", name="Add with these labels").click()
        expect(page.locator(".messages")).to_contain_text("Added to the project as “blue”")
    else:
        expect(page.locator("main")).to_contain_text("Nothing to review")
