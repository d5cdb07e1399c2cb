/* Label page: select thumbnails (click, shift-click, select all), label them with buttons or keys.

   Keys: arrows move the focus, Space toggles, 1-9 apply a label, u unlabels, a accepts the model's
   suggestion, Esc clears. Labelling one focused picture moves on to the next one by itself.

   Multi-label projects (the grid's data-multi="1"): 1-9 add a label to the pictures or, when they all
   have it, take it off; n says they show none of the labels; u makes them unlabelled; Enter goes on to
   the next picture. A tile's data-label-ids is "-" while it is unlabelled. */
(function () {
  "use strict";

  // Back from adding, renaming or deleting a label (their forms return to #labels): keep the panel open.
  const panel = document.getElementById("labels");
  if (panel && window.location.hash === "#labels") panel.open = true;

  const grid = document.getElementById("grid");
  if (!grid) return;
  const editable = grid.dataset.editable === "1";
  const applyUrl = grid.dataset.applyUrl;
  const show = grid.dataset.show;
  const multi = grid.dataset.multi === "1";
  const labelsNode = document.getElementById("labels-data");
  const labels = labelsNode ? JSON.parse(labelsNode.textContent) : [];
  const byId = new Map(labels.map((l) => [String(l.id), l]));
  const tiles = () => Array.from(grid.querySelectorAll(".tile"));
  const selected = new Set();
  let anchor = null;
  let focusIndex = 0;
  let busy = false;

  const skip = document.querySelector("[data-skip-to-tiles]");
  if (skip) skip.addEventListener("click", (e) => { e.preventDefault(); focusTile(0, true); });

  function focusTile(index, scroll) {
    const all = tiles();
    if (!all.length) return;
    focusIndex = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((t, i) => t.setAttribute("tabindex", i === focusIndex ? "0" : "-1"));
    all[focusIndex].focus({ preventScroll: !scroll });
    if (scroll) all[focusIndex].scrollIntoView({ block: "nearest" });
  }

  function refreshSelection() {
    tiles().forEach((t) => {
      const on = selected.has(t.dataset.id);
      t.classList.toggle("selected", on);
      t.setAttribute("aria-selected", on ? "true" : "false");
    });
    const counter = document.getElementById("selected-count");
    if (counter) counter.textContent = selected.size;
  }

  function toggle(tile, on) {
    const id = tile.dataset.id;
    const value = on === undefined ? !selected.has(id) : on;
    if (value) selected.add(id); else selected.delete(id);
  }

  function columns() {
    const all = tiles();
    if (!all.length) return 1;
    const top = all[0].offsetTop;
    let n = 0;
    while (n < all.length && all[n].offsetTop === top) n++;
    return Math.max(1, n);
  }

  // --- pointer --------------------------------------------------------------------------------

  grid.addEventListener("click", (e) => {
    if (e.target.closest("a")) return;
    const tile = e.target.closest(".tile");
    if (!tile || !editable) return;
    const all = tiles();
    const index = all.indexOf(tile);
    if (e.shiftKey && anchor !== null) {
      const [from, to] = [Math.min(anchor, index), Math.max(anchor, index)];
      for (let i = from; i <= to; i++) toggle(all[i], true);
    } else {
      toggle(tile);
      anchor = index;
    }
    focusTile(index, false);
    refreshSelection();
  });

  // --- applying -------------------------------------------------------------------------------

  /* The filter counts (All, Unlabeled, one per label) follow what was just saved, as a reload would show. */
  function recount(bucket, delta) {
    const counter = document.querySelector('.filters [data-count="' + bucket + '"]');
    if (counter) counter.textContent = Math.max(0, parseInt(counter.textContent, 10) + delta);
  }

  function paint(tile, label) {
    tile.dataset.labelId = label ? String(label.id) : "";
    const cap = tile.querySelector(".tile-cap");
    cap.textContent = "";
    if (label) {
      const chip = document.createElement("span");
      chip.className = "tile-label";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = label.colour;
      chip.append(swatch, document.createTextNode(label.name));
      cap.appendChild(chip);
    }
    const leaves = (show === "unlabeled" || show === "suggested" || show === "next") ? !!label
      : show === "label" ? true : show === "mislabeled";
    tile.classList.toggle("done", leaves);
  }

  function targets() {
    if (selected.size) return tiles().filter((t) => selected.has(t.dataset.id));
    const all = tiles();
    return all[focusIndex] ? [all[focusIndex]] : [];
  }

  // --- multi-label ----------------------------------------------------------------------------

  function idsOf(tile) {
    const value = tile.dataset.labelIds;
    if (value === undefined || value === "-") return null;
    return value ? value.split(",") : [];
  }

  function buckets(ids) {
    return ids === null ? [""] : ids.length ? ids : ["none"];
  }

  function chip(text, colour) {
    const span = document.createElement("span");
    span.className = "tile-label";
    if (colour) {
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour;
      span.appendChild(swatch);
    } else {
      span.classList.add("muted");
    }
    span.appendChild(document.createTextNode(text));
    return span;
  }

  function paintMulti(tile, ids) {
    buckets(idsOf(tile)).forEach((bucket) => recount(bucket, -1));
    buckets(ids).forEach((bucket) => recount(bucket, 1));
    tile.dataset.labelIds = ids === null ? "-" : ids.join(",");
    const cap = tile.querySelector(".tile-cap");
    cap.textContent = "";
    if (ids !== null && !ids.length) cap.appendChild(chip("none of these"));
    labels.filter((l) => ids && ids.includes(String(l.id))).forEach((l) => cap.appendChild(chip(l.name, l.colour)));
    const leaves = (show === "unlabeled" || show === "next" || show === "suggested") ? ids !== null
      : show === "none" ? !(ids && ids.length === 0) : show === "mislabeled";
    tile.classList.toggle("done", leaves);
  }

  /* Each key's pictures are taken when it is pressed and its request waits for the one before, so
     "1 2 Enter" typed quickly labels one picture with both labels and moves on. */
  let chain = Promise.resolve();

  function applyMulti(value, present) {
    const list = targets();
    if (!list.length) { Pinhole.toast("Select some pictures first"); return; }
    const wasSelection = selected.size > 0;
    const label = byId.get(String(value));
    if (wasSelection) { selected.clear(); refreshSelection(); }
    // A label may be one of several: stay on the picture; "none" and "unlabel" settle it, so move on.
    else if (!label) focusTile(focusIndex + 1, true);
    chain = chain.then(() => sendMulti(list, value, present, label));
  }

  async function sendMulti(list, value, present, label, labelIds) {
    if (present === "toggle") present = !list.every((t) => (idsOf(t) || []).includes(String(value)));
    const body = { images: list.map((t) => t.dataset.id).join(","), label: value };
    if (label) body.present = present ? "1" : "0";
    if (labelIds !== undefined) body.labels = labelIds;
    const result = await Pinhole.post(applyUrl, body);
    if (!result.ok) {
      Pinhole.toast((result.body && (result.body.error || result.body.detail)) || "Could not save (" + result.status + ")", "bad");
      return;
    }
    const now = result.body.images || {};
    list.forEach((t) => { if (t.dataset.id in now) paintMulti(t, now[t.dataset.id] === null ? null : now[t.dataset.id].map(String)); });
    const what = label ? (present ? "+ " : "\u2212 ") + label.name
      : value === "set" ? "Suggestion taken" : value === "none" ? "None of these" : "Unlabelled";
    Pinhole.toast(what + " \u00b7 " + list.length, "ok");
  }

  function toggleLabel(labelId) {
    if (editable) applyMulti(String(labelId), "toggle");
  }

  async function apply(value, chosen) {
    if (!editable || busy) return;
    if (multi && value !== "delete") { applyMulti(value); return; }
    const list = chosen || targets();
    if (!list.length) { Pinhole.toast("Select some pictures first"); return; }
    if (value === "delete" && !window.confirm("Delete " + list.length + " picture" + (list.length === 1 ? "" : "s") + " from the project?")) return;
    busy = true;
    const wasSelection = selected.size > 0 && !chosen;
    const result = await Pinhole.post(applyUrl, { images: list.map((t) => t.dataset.id).join(","), label: value });
    busy = false;
    if (!result.ok) {
      Pinhole.toast((result.body && (result.body.error || result.body.detail)) || "Could not save (" + result.status + ")", "bad");
      return;
    }
    const all = tiles();
    const last = Math.max(...list.map((t) => all.indexOf(t)));
    list.forEach((t) => recount(t.dataset.labelId || "", -1));
    if (value === "delete") {
      recount("all", -list.length);
      list.forEach((t) => t.remove());
      Pinhole.toast("Deleted " + result.body.changed);
    } else {
      const label = value === "none" ? null : byId.get(String(value));
      recount(label ? String(label.id) : "", list.length);
      list.forEach((t) => paint(t, label));
      Pinhole.toast((label ? label.name : "Unlabelled") + " · " + list.length, "ok");
    }
    if (wasSelection || chosen) selected.clear();
    refreshSelection();
    focusTile(value === "delete" ? last - list.length + 1 : last + 1, true);
  }

  async function acceptSuggestions() {
    if (multi) {
      // Multi-label: each picture takes its suggested set of labels ("none": none of them).
      const list = targets().filter((t) => t.dataset.suggestIds);
      if (!list.length) { Pinhole.toast("No suggestion for this picture"); return; }
      const wasSelection = selected.size > 0;
      if (wasSelection) { selected.clear(); refreshSelection(); } else focusTile(focusIndex + 1, true);
      const sets = new Map();
      list.forEach((t) => {
        const key = t.dataset.suggestIds === "none" ? "" : t.dataset.suggestIds;
        if (!sets.has(key)) sets.set(key, []);
        sets.get(key).push(t);
      });
      sets.forEach((group, ids) => {
        chain = chain.then(() => sendMulti(group, "set", undefined, undefined, ids));
      });
      return;
    }
    const groups = new Map();
    targets().forEach((t) => {
      if (!t.dataset.suggestId) return;
      if (!groups.has(t.dataset.suggestId)) groups.set(t.dataset.suggestId, []);
      groups.get(t.dataset.suggestId).push(t);
    });
    if (!groups.size) { Pinhole.toast("No suggestion for this picture"); return; }
    selected.clear();
    for (const [labelId, group] of groups) await apply(labelId, group);
  }

  document.querySelectorAll("[data-apply]").forEach((button) => {
    button.addEventListener("click", () => apply(button.dataset.apply));
  });
  document.querySelectorAll("[data-toggle-label]").forEach((button) => {
    button.addEventListener("click", () => toggleLabel(button.dataset.toggleLabel));
  });
  const acceptButton = document.querySelector("[data-accept]");
  if (acceptButton) acceptButton.addEventListener("click", acceptSuggestions);
  const all = document.getElementById("select-all");
  if (all) all.addEventListener("click", () => { tiles().forEach((t) => toggle(t, true)); refreshSelection(); });
  const none = document.getElementById("select-none");
  if (none) none.addEventListener("click", () => { selected.clear(); refreshSelection(); });

  // --- keyboard -------------------------------------------------------------------------------

  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select, [contenteditable]")) return;
    if (e.altKey || (e.metaKey && e.key !== "a") || (e.ctrlKey && e.key !== "a")) return;
    const key = e.key;
    // Enter and Space belong to the focused link or button (the skip link, "Accept suggestions"...).
    if ((key === " " || key === "Enter") && e.target.closest("a, button, summary")) return;
    let handled = true;
    if (key === "ArrowRight") focusTile(focusIndex + 1, true);
    else if (key === "ArrowLeft") focusTile(focusIndex - 1, true);
    else if (key === "ArrowDown") focusTile(focusIndex + columns(), true);
    else if (key === "ArrowUp") focusTile(focusIndex - columns(), true);
    else if (!editable) handled = false;
    else if (multi && key === "Enter") focusTile(focusIndex + 1, true);
    else if (multi && /^[1-9]$/.test(key)) {
      const label = labels[parseInt(key, 10) - 1];
      if (label) toggleLabel(String(label.id)); else handled = false;
    } else if (multi && key === "n") apply("none");
    else if (multi && key === "a" && !(e.ctrlKey || e.metaKey)) acceptSuggestions();
    else if (multi && (key === "u" || key === "0")) apply("unlabel");
    else if (key === " " || key === "Enter") {
      const tile = tiles()[focusIndex];
      if (tile) { toggle(tile); anchor = focusIndex; refreshSelection(); }
    } else if (/^[1-9]$/.test(key)) {
      const label = labels[parseInt(key, 10) - 1];
      if (label) apply(String(label.id)); else handled = false;
    } else if (key === "u" || key === "0") apply("none");
    else if (key === "a" && (e.ctrlKey || e.metaKey)) { tiles().forEach((t) => toggle(t, true)); refreshSelection(); }
    else if (key === "a") acceptSuggestions();
    else if (key === "Escape") { selected.clear(); refreshSelection(); }
    else if (key === "Delete") apply("delete");
    else handled = false;
    if (handled) e.preventDefault();
  });

  grid.addEventListener("focusin", (e) => {
    const tile = e.target.closest(".tile");
    if (tile) focusIndex = tiles().indexOf(tile);
  });
})();
