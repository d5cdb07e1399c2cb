/* Upload page: files, folders (picked or dropped) and zips, sent in parallel to the images API.

   Thousands of files stay cheap: the queue is a plain array, only the requests in flight have rows
   in the page, refused files are listed up to a cap, and counters redraw at most once per frame. */
(function () {
  "use strict";
  const root = document.getElementById("uploader");
  if (!root) return;

  const API = root.dataset.api;
  const ZIP_URL = root.dataset.zipUrl;
  const MAX_FILES = Math.min(parseInt(root.dataset.maxFiles, 10) || 100, 8);
  const MAX_IMAGE = parseFloat(root.dataset.maxImageMb) * 1024 * 1024;
  const MAX_ZIP = parseFloat(root.dataset.maxZipMb) * 1024 * 1024;
  const CONCURRENCY = 4;
  const BATCH_BYTES = 12 * 1024 * 1024;
  const REFUSED_SHOWN = 200;
  const IGNORED = /^(\.|thumbs\.db$|desktop\.ini$)/i;

  const $ = (id) => document.getElementById(id);
  const labelSelect = $("upload-label");
  const folderLabels = $("folder-labels");

  // One round of uploading: from the first file added while nothing was going on to the last answer.
  const state = { queue: [], total: 0, totalBytes: 0, sentBytes: 0, added: 0, dup: 0, bad: 0,
    running: 0, zips: 0, stopped: false, refusedShown: 0, refusedHidden: 0 };
  // Unlabeled pictures in the project: those it had when the page loaded, plus every one added since.
  let projectUnlabeled = parseInt(root.dataset.unlabeled || "0", 10);

  /* A new round starts from zero: counters that added up across rounds ("490 of 490") said nothing. */
  function newRoundIfIdle() {
    if (state.running || state.zips || state.queue.length) return;
    Object.assign(state, { total: 0, totalBytes: 0, sentBytes: 0, added: 0, dup: 0, bad: 0,
      stopped: false, refusedShown: 0, refusedHidden: 0 });
    $("refused-list").textContent = "";
    $("refused-more").textContent = "";
    $("refused").hidden = true;
  }

  /* "In this project" follows every picture as it is stored, not only at the end. */
  function countStored(n) {
    const count = $("image-count");
    if (count && n) count.textContent = parseInt(count.textContent, 10) + n;
  }

  // --- collecting files -------------------------------------------------------------------------

  function folderOf(path) {
    const parts = (path || "").split("/").filter(Boolean);
    return parts.length >= 2 ? parts[parts.length - 2] : "";
  }

  function labelFor(relativePath) {
    const folder = folderLabels.checked ? folderOf(relativePath) : "";
    return folder || labelSelect.value || "";
  }

  function add(files) {
    newRoundIfIdle();
    const zips = [];
    let added = 0;
    for (const item of files) {
      const file = item.file || item;
      const path = item.path || file.webkitRelativePath || "";
      if (IGNORED.test(file.name) || path.split("/").some((p) => p === "__MACOSX")) continue;
      if (/\.zip$/i.test(file.name) || file.type === "application/zip") { zips.push(file); continue; }
      state.queue.push({ file, label: labelFor(path) });
      state.total += 1;
      state.totalBytes += file.size;
      added += 1;
    }
    if (added) start();
    zips.forEach(importZip);
  }

  // Dropped folders arrive as entries; readEntries hands back at most ~100 at a time.
  function readAll(reader) {
    return new Promise((resolve) => {
      const all = [];
      const next = () => reader.readEntries((batch) => {
        if (!batch.length) return resolve(all);
        all.push(...batch);
        next();
      }, () => resolve(all));
      next();
    });
  }

  async function walk(entry, out) {
    if (entry.isFile) {
      await new Promise((resolve) => entry.file((file) => {
        out.push({ file, path: entry.fullPath.replace(/^\//, "") });
        resolve();
      }, resolve));
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child, out);
    }
  }

  async function fromDrop(dataTransfer) {
    const items = Array.from(dataTransfer.items || []);
    const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
    if (!entries.length || entries.some((e) => !e)) return Array.from(dataTransfer.files || []);
    const out = [];
    for (const entry of entries) await walk(entry, out);
    return out;
  }

  // --- sending ----------------------------------------------------------------------------------

  function nextBatch() {
    const first = state.queue.shift();
    const batch = [first];
    let bytes = first.file.size;
    while (state.queue.length && batch.length < MAX_FILES) {
      const candidate = state.queue[0];
      if (candidate.label !== first.label || bytes + candidate.file.size > BATCH_BYTES) break;
      batch.push(state.queue.shift());
      bytes += candidate.file.size;
    }
    return batch;
  }

  function row(entry) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = (entry.label ? entry.label + " / " : "") + entry.file.name;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.appendChild(document.createElement("span"));
    const size = document.createElement("span");
    size.className = "muted small nowrap";
    size.textContent = Pinhole.formatBytes(entry.file.size);
    li.append(name, bar, size);
    entry.li = li;
    entry.bar = bar.firstChild;
    $("active-list").appendChild(li);
  }

  function refuse(entry, why) {
    state.bad += 1;
    if (entry.li) entry.li.remove();
    $("refused").hidden = false;
    if (state.refusedShown >= REFUSED_SHOWN) {
      state.refusedHidden += 1;
      $("refused-more").textContent = "(and " + state.refusedHidden + " more not listed)";
      return;
    }
    state.refusedShown += 1;
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = entry.file.name;
    const badge = document.createElement("span");
    badge.className = "badge badge-bad";
    badge.textContent = "refused";
    const reason = document.createElement("span");
    reason.className = "why";
    reason.textContent = why;
    li.append(name, document.createElement("span"), badge, reason);
    $("refused-list").appendChild(li);
  }

  async function send(batch) {
    const form = new FormData();
    let bytes = 0;
    batch.forEach((entry) => { form.append("files", entry.file, entry.file.name); bytes += entry.file.size; });
    if (batch[0].label) form.append("label", batch[0].label);
    batch.forEach(row);
    let shown = 0;
    const onProgress = (fraction) => {
      const now = fraction * bytes;
      // A request sends its files in order: each file's bar fills while its own bytes go out.
      let offset = 0;
      batch.forEach((entry) => {
        const size = entry.file.size;
        const done = size ? Math.min(1, Math.max(0, (now - offset) / size)) : 1;
        entry.bar.style.width = Math.round(done * 100) + "%";
        offset += size;
      });
      state.sentBytes += now - shown;
      shown = now;
      redraw();
    };
    let result = await Pinhole.upload(API, form, onProgress);
    if (result.status === 0 || result.status >= 500) result = await Pinhole.upload(API, form, null);
    state.sentBytes += bytes - shown;
    settle(batch, result);
  }

  function settle(batch, result) {
    const body = result.body || {};
    if (!Array.isArray(body.images) && !Array.isArray(body.rejected)) {
      let why = body.detail || body.error || "the server did not answer (" + result.status + ")";
      if (result.status === 413) why = "the request was too large for the server";
      if (result.status === 403) why = "you may not add pictures to this project";
      batch.forEach((entry) => refuse(entry, why));
      redraw();
      return;
    }
    const images = body.images || [];
    // The server names each refused file by its position in the request (names can repeat).
    const refusedAt = new Map((body.rejected || []).map((r) => [r.index, r.error]));
    let i = 0;
    batch.forEach((entry, index) => {
      if (refusedAt.has(index)) {
        refuse(entry, refusedAt.get(index));
        return;
      }
      const image = images[i++];
      if (image && image.duplicate) state.dup += 1;
      else { state.added += 1; countStored(1); if (!entry.label) projectUnlabeled += 1; }
      entry.li.remove();
    });
    redraw();
  }

  async function worker() {
    state.running += 1;
    while (state.queue.length && !state.stopped) {
      const batch = nextBatch().filter((entry) => {
        if (entry.file.size > MAX_IMAGE) {
          refuse(entry, "too large: " + Pinhole.formatBytes(entry.file.size) + "; images can be at most " + Pinhole.formatBytes(MAX_IMAGE));
          state.sentBytes += entry.file.size;
          return false;
        }
        if (entry.file.size === 0) { refuse(entry, "the file is empty"); return false; }
        return true;
      });
      if (batch.length) await send(batch);
    }
    state.running -= 1;
    if (!state.running && !state.zips) finished();
  }

  function start() {
    state.stopped = false;
    $("progress").hidden = false;
    $("done-box").hidden = true;
    $("progress-title").textContent = "Uploading";
    $("cancel-upload").hidden = false;
    $("active-title").hidden = false;
    while (state.running < CONCURRENCY && state.queue.length) worker();
    redraw();
  }

  let frame = 0;
  function redraw() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      const fraction = state.totalBytes ? Math.min(1, state.sentBytes / state.totalBytes) : 1;
      $("overall-bar").style.width = (fraction * 100).toFixed(1) + "%";
      $("n-added").textContent = state.added;
      $("n-dup").textContent = state.dup;
      $("n-bad").textContent = state.bad;
      $("n-left").textContent = state.queue.length;
      $("progress-bytes").textContent = (state.added + state.dup + state.bad) + " of " + state.total + " files";
    });
  }

  function finished() {
    redraw();
    $("cancel-upload").hidden = true;
    $("progress-title").textContent = state.stopped ? "Stopped" : "Done";
    const parts = [state.added + " added"];
    if (state.dup) parts.push(state.dup + " already in the project (not stored twice)");
    if (state.bad) parts.push(state.bad + " refused");
    if (state.stopped && state.queue.length) parts.push(state.queue.length + " not sent");
    $("done-text").textContent = parts.join(", ") + ".";
    // Pictures without a label go to labelling next; when the project has none left, to training.
    const next = $("go-label");
    const toLabel = projectUnlabeled > 0;
    next.textContent = toLabel ? "Label the new pictures" : "Train a model";
    next.href = toLabel ? root.dataset.labelUrl + "?show=unlabeled" : root.dataset.trainUrl;
    $("done-box").hidden = false;
    $("active-title").hidden = true;
  }

  $("cancel-upload").addEventListener("click", () => { state.stopped = true; });

  // --- zip ----------------------------------------------------------------------------------------

  async function importZip(file) {
    newRoundIfIdle();
    $("progress").hidden = false;
    $("done-box").hidden = true;
    $("progress-title").textContent = "Importing " + file.name;
    const entry = { file, label: "" };
    if (file.size > MAX_ZIP) {
      refuse(entry, "the archive is larger than " + Pinhole.formatBytes(MAX_ZIP) + "; split it or upload the folders instead");
      return;
    }
    row(entry);
    state.zips += 1;
    const form = new FormData();
    form.append("archive", file, file.name);
    const result = await Pinhole.upload(ZIP_URL, form, (fraction) => {
      entry.bar.style.width = Math.round(fraction * 100) + "%";
      if (fraction >= 1) $("progress-title").textContent = "Unpacking and checking " + file.name + "…";
    });
    const queued = result.body || {};
    if (!result.ok) {
      state.zips -= 1;
      entry.li.remove();
      refuse(entry, queued.error || "the server did not answer (" + result.status + ")");
      $("progress-title").textContent = "Zip not imported";
      redraw();
      return;
    }
    // Stored and checked: a worker imports the pictures; follow it until it has finished.
    entry.bar.style.width = "0%";
    $("progress-title").textContent = "Importing " + file.name + ": waiting for a worker…";
    Pinhole.watchJob(queued.status_url, (job) => {
      entry.bar.style.width = Math.round(job.progress * 100) + "%";
      if (!job.final) {
        $("progress-title").textContent = "Importing " + file.name + ": " + (job.message || "queued");
        return;
      }
      entry.li.remove();
      zipFinished(file, job);
    });
  }

  function zipFinished(file, job) {
    state.zips -= 1;
    state.added += job.created;
    countStored(job.created);
    projectUnlabeled += job.unlabeled;
    state.dup += job.duplicates;
    (job.rejected || []).forEach((r) => refuse({ file: { name: r.name } }, r.error));
    state.total += job.created + job.duplicates + (job.rejected || []).length;
    $("progress-title").textContent = job.status === "succeeded" ? "Imported " + file.name
      : "Import of " + file.name + " " + job.status + (job.error ? ": " + job.error : "");
    if (!state.running && !state.zips) finished();
    if (job.labels && job.labels.length) {
      $("done-text").textContent += " Labels from the folders: " + job.labels.join(", ") + ".";
    }
  }

  // --- wiring -------------------------------------------------------------------------------------

  $("pick-files").addEventListener("change", (e) => { add(Array.from(e.target.files)); e.target.value = ""; });
  $("pick-folder").addEventListener("change", (e) => { add(Array.from(e.target.files)); e.target.value = ""; });
  $("pick-zip").addEventListener("change", (e) => { Array.from(e.target.files).forEach(importZip); e.target.value = ""; });
  // Files picked before this deferred script listened (a fast click on a slow connection): take them now.
  ["pick-files", "pick-folder", "pick-zip"].forEach((id) => {
    const input = $(id);
    if (!input.files || !input.files.length) return;
    const files = Array.from(input.files);
    if (id === "pick-zip") files.forEach(importZip); else add(files);
    input.value = "";
  });

  const zone = $("dropzone");
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (e) => {
    e.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    add(await fromDrop(e.dataTransfer));
  });
  // A file dropped next to the zone must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  window.addEventListener("beforeunload", (e) => {
    if (state.running) { e.preventDefault(); e.returnValue = ""; }
  });
})();
