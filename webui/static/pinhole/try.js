/* Try it: drop, paste, pick or photograph an image; show the model's top labels as bars and, when
   asked, where in the photo the answer came from. Used by the signed-in "Try it" page, the public
   share page and its embeddable variant (app.js's Pinhole.post sends it). */
(function () {
  "use strict";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;  // never innerHTML: labels come from users
    return node;
  }

  function pct(p) {
    const v = p * 100;
    return (v >= 10 || v === 0 ? Math.round(v) : v.toFixed(1)) + "%";
  }

  function bars(top, muted) {
    const list = el("ol", "answer-bars" + (muted ? " muted-bars" : ""));
    top.forEach((row, i) => {
      // A multi-label answer's rows say whether each label is there; one answer's best is its first.
      const best = row.present === undefined ? i === 0 : row.present;
      const item = el("li", "answer-bar" + (best && !muted ? " best" : ""));
      item.appendChild(el("span", "answer-name", row.label));
      const track = el("span", "answer-track");
      const fill = el("span", "answer-fill");
      fill.style.width = Math.max(1, Math.round(row.probability * 100)) + "%";
      track.appendChild(fill);
      item.appendChild(track);
      item.appendChild(el("span", "answer-pct", pct(row.probability)));
      list.appendChild(item);
    });
    return list;
  }

  function heatmapFigure(body) {
    const figure = el("figure", "answer-heatmap");
    const image = el("img");
    image.src = body.heatmap;  // a data: URL the server made
    image.alt = "The photo, lit where the model found " + body.heatmap_label;
    figure.appendChild(image);
    figure.appendChild(el("figcaption", "muted small",
      "Where it found \u201c" + body.heatmap_label + "\u201d: the brighter and warmer a part of the photo, " +
      "the more it counted. Darkest: parts the model does not look at."));
    return figure;
  }

  function render(box, body) {
    box.replaceChildren();
    if (body.mode === "pretrained") {
      box.appendChild(el("p", "answer-kicker", "The pretrained network sees"));
      box.appendChild(el("p", "answer-title", body.top.length ? body.top[0].label : "nothing it knows"));
      box.appendChild(bars(body.top, false));
      box.appendChild(el("p", "muted small",
        "These are everyday ImageNet categories, not your labels. Train a model to get answers in your own words."));
      return;
    }
    if (body.labels) {
      renderLabels(box, body);
    } else if (body.unknown) {
      box.appendChild(el("p", "answer-kicker", "Not sure"));
      box.appendChild(el("p", "answer-title unknown", "This looks like none of these"));
      box.appendChild(el("p", "muted small",
        "The photo is unlike anything the model learned from, so any label would be a guess. Its closest guesses:"));
      box.appendChild(bars(body.top, true));
    } else if (body.sure === false) {
      box.appendChild(el("p", "answer-kicker", "Not sure"));
      const title = el("p", "answer-title unknown", "Perhaps " + body.label);
      title.appendChild(el("span", "answer-title-pct", " " + pct(body.probability) + " sure"));
      box.appendChild(title);
      box.appendChild(el("p", "muted small",
        "This model answers only when it is at least " + pct(body.threshold) +
        " sure, so take this as a guess. Its guesses:"));
      box.appendChild(bars(body.top, true));
    } else {
      box.appendChild(el("p", "answer-kicker", "Looks like"));
      const title = el("p", "answer-title", body.label);
      // Say what the number is: a bare "79 %" beside the label read as anything.
      title.appendChild(el("span", "answer-title-pct", " " + pct(body.probability) + " sure"));
      box.appendChild(title);
      box.appendChild(bars(body.top, false));
    }
    if (body.heatmap) box.appendChild(heatmapFigure(body));
    if (body.device_version) {
      box.appendChild(el("p", "muted small answered-where",
        "Answered on this device by v" + body.device_version + ": the photo did not leave it."));
    } else if (body.model_version) {
      box.appendChild(el("p", "muted small answered-where",
        "Answered by v" + body.model_version + (body.where ? " " + body.where : "") + "."));
    } else if (body.where) {
      box.appendChild(el("p", "muted small answered-where", "Answered " + body.where + "."));
    }
  }

  /* A multi-label answer: which of the labels are in the photo, each with its own probability. */
  function renderLabels(box, body) {
    const rows = body.labels.slice().sort((a, b) => b.probability - a.probability);
    const present = rows.filter((r) => r.present).map((r) => r.label);
    if (body.unknown) {
      box.appendChild(el("p", "answer-kicker", "Not sure"));
      box.appendChild(el("p", "answer-title unknown", "This looks like none of these"));
      box.appendChild(el("p", "muted small",
        "The photo is unlike anything the model learned from, so what it says about each label is a guess:"));
      box.appendChild(bars(rows, true));
      return;
    }
    box.appendChild(el("p", "answer-kicker", body.sure === false ? "In this photo, it thinks (not sure of every label)" : "In this photo"));
    box.appendChild(el("p", "answer-title" + (present.length ? "" : " unknown"), present.length ? present.join(", ") : "None of the labels"));
    box.appendChild(bars(rows, false));
    box.appendChild(el("p", "muted small",
      "Each label is its own question: highlighted labels are at or above their threshold." +
      (body.sure === false ? " At least one is close to its threshold, so take it as a guess." : "")));
  }

  /* "Not right? Pick the right one" (share pages): the visitor sends the photo again with the label it
     shows; it waits for the project's members to review. */
  function correction(root, body, photo) {
    const url = root.dataset.feedbackUrl;
    const labels = JSON.parse(root.dataset.labels || "[]");
    if (!url || !body.feedback || !labels.length || body.labels) return null;
    const box = el("div", "try-correct");
    box.appendChild(el("p", "small", "Not right? Pick the right one:"));
    const row = el("div", "row");
    const said = el("p", "small muted", "Your photo is sent to the project's owners with your answer; nothing changes until they look at it.");
    labels.filter((name) => name !== body.label).forEach((name) => {
      const button = el("button", "btn btn-sm", name);
      button.type = "button";
      button.addEventListener("click", async () => {
        row.querySelectorAll("button").forEach((b) => { b.disabled = true; });
        const form = new FormData();
        form.append("feedback", body.feedback);
        form.append("label", name);
        form.append("file", photo, photo.name || "photo.png");
        const reply = await Pinhole.post(url, form);
        said.textContent = reply.ok ? (reply.body && reply.body.detail) || "Thank you."
          : (reply.body && reply.body.detail) || "It could not be sent (" + reply.status + ").";
        said.className = reply.ok ? "small callout" : "small callout callout-bad";
        if (!reply.ok) row.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      });
      row.appendChild(button);
    });
    box.appendChild(row);
    box.appendChild(said);
    return box;
  }

  function setup(root) {
    const url = root.dataset.predictUrl;
    const zone = root.querySelector(".dropzone");
    const preview = root.querySelector(".try-preview");
    const hint = root.querySelector(".drop-hint");
    const answer = root.querySelector(".try-answer");
    const pretrained = root.querySelector("input[name=pretrained]");
    const heatmap = root.querySelector("input[name=heatmap]");
    const device = root.querySelector("input[name=ondevice]");
    const deviceStatus = root.querySelector(".device-status");
    const problem = (text) => answer.replaceChildren(el("p", "callout callout-bad", text));
    let objectUrl = null;
    let ticket = 0;
    let last = null;  // the photo shown, asked again when a toggle changes what to show

    async function send(file) {
      if (!file) return;
      if (file.type && file.type.indexOf("image/") !== 0) {
        problem("That is not an image file.");
        return;
      }
      last = file;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(file);
      preview.src = objectUrl;
      preview.hidden = false;
      hint.hidden = true;
      zone.classList.add("has-image");
      answer.replaceChildren(el("p", "answer-loading", "Looking…"));
      const mine = ++ticket;
      if (device && device.checked && window.PinholeOnDevice) {
        try {
          const body = await PinholeOnDevice.answer(root, file, say);
          if (mine !== ticket) return;
          render(answer, body);
        } catch (error) {
          if (mine === ticket) problem("It could not answer on this device: " + error.message);
        }
        return;
      }
      const form = new FormData();
      form.append("file", file, file.name || "pasted.png");
      if (pretrained && pretrained.checked) form.append("mode", "pretrained");
      if (heatmap && heatmap.checked) form.append("heatmap", "1");
      const reply = await Pinhole.post(url, form);
      if (mine !== ticket) return;  // a newer photo was chosen meanwhile
      if (reply.ok) {
        render(answer, Object.assign({ where: device ? "on the server" : "" }, reply.body || {}));
        const fix = correction(root, reply.body || {}, file);
        if (fix) answer.appendChild(fix);
      }
      else if (reply.status === 0) problem("Could not reach the server. Check your connection.");
      else problem((reply.body && reply.body.detail) || "Something went wrong (" + reply.status + ").");
    }

    root.querySelectorAll("input[type=file]").forEach((input) => {
      input.addEventListener("change", () => {
        send(input.files && input.files[0]);
        input.value = "";
      });
      // Picked before this deferred script listened: send it now.
      if (input.files && input.files.length) {
        send(input.files[0]);
        input.value = "";
      }
    });
    function say(text) {
      if (!deviceStatus) return;
      deviceStatus.hidden = !text;
      deviceStatus.textContent = text;
    }

    /* "Run on this device": load the model once, then answer here; the heatmap needs the server. */
    if (device) {
      device.addEventListener("change", async () => {
        if (heatmap) {
          heatmap.disabled = device.checked;
          if (device.checked) heatmap.checked = false;
        }
        if (!device.checked) {
          say("Answers come from the server.");
          if (last) send(last);
          return;
        }
        say("Getting the model…");
        try {
          await PinholeOnDevice.prepare(root, say);
          say("Ready: photos are answered on this device and never leave it.");
          root.dataset.deviceReady = "true";
          if (last) send(last);
        } catch (error) {
          device.checked = false;
          if (heatmap) heatmap.disabled = false;
          say("The model could not be loaded here (" + error.message + "); answers come from the server.");
        }
      });
    }
    [pretrained, heatmap].forEach((toggle) => {
      if (toggle) toggle.addEventListener("change", () => { if (last) send(last); });
    });
    const pick = () => root.querySelector("input[type=file]").click();
    zone.addEventListener("click", pick);
    zone.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        pick();
      }
    });
    ["dragenter", "dragover"].forEach((name) => {
      zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach((name) => {
      zone.addEventListener(name, () => zone.classList.remove("dragging"));
    });
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      send(event.dataTransfer.files && event.dataTransfer.files[0]);
    });
    document.addEventListener("paste", (event) => {
      const items = (event.clipboardData && event.clipboardData.items) || [];
      for (const item of items) {
        if (item.kind === "file" && item.type.indexOf("image/") === 0) {
          event.preventDefault();
          send(item.getAsFile());
          return;
        }
      }
    });
  }

  document.querySelectorAll(".tryit").forEach((root) => {
    setup(root);
    root.dataset.ready = "true"; // the deferred script has bound its handlers: a file chosen now is sent
  });
})();
