/* Try it: drop, paste, pick or photograph an image; show the model's top labels as bars.
   Used by the signed-in "Try it" page, the public share page and its embeddable variant. */
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;  // never innerHTML: labels come from users
    return node;
  }

  function pct(p) {
    var v = p * 100;
    return (v >= 10 || v === 0 ? Math.round(v) : v.toFixed(1)) + "%";
  }

  function bars(top, muted) {
    var list = el("ol", "answer-bars" + (muted ? " muted-bars" : ""));
    top.forEach(function (row, i) {
      var item = el("li", "answer-bar" + (i === 0 && !muted ? " best" : ""));
      item.appendChild(el("span", "answer-name", row.label));
      var track = el("span", "answer-track");
      var fill = el("span", "answer-fill");
      fill.style.width = Math.max(1, Math.round(row.probability * 100)) + "%";
      track.appendChild(fill);
      item.appendChild(track);
      item.appendChild(el("span", "answer-pct", pct(row.probability)));
      list.appendChild(item);
    });
    return list;
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
    if (body.unknown) {
      box.appendChild(el("p", "answer-kicker", "Not sure"));
      box.appendChild(el("p", "answer-title unknown", "This looks like none of these"));
      box.appendChild(el("p", "muted small",
        "The photo is unlike anything the model learned from, so any label would be a guess. Its closest guesses:"));
      box.appendChild(bars(body.top, true));
    } else {
      box.appendChild(el("p", "answer-kicker", "Looks like"));
      var title = el("p", "answer-title", body.label);
      // Say what the number is: a bare "79 %" beside the label read as anything.
      title.appendChild(el("span", "answer-title-pct", " " + pct(body.probability) + " sure"));
      box.appendChild(title);
      box.appendChild(bars(body.top, false));
    }
    if (body.heatmap) {
      var figure = el("figure", "answer-heatmap");
      var image = el("img");
      image.src = body.heatmap;  // a data: URL the server made
      image.alt = "The photo as the model saw it, warmer where it found " + body.heatmap_label;
      figure.appendChild(image);
      figure.appendChild(el("figcaption", "muted small",
        "Where it found \u201c" + body.heatmap_label + "\u201d: the brighter and warmer a part of the photo, " +
        "the more it counted. Darkest: parts the model does not look at."));
      box.appendChild(figure);
    }
    if (body.model_version) box.appendChild(el("p", "muted small", "Answered by v" + body.model_version + "."));
  }

  function setup(root) {
    var url = root.dataset.predictUrl;
    var zone = root.querySelector(".dropzone");
    var preview = root.querySelector(".try-preview");
    var hint = root.querySelector(".drop-hint");
    var answer = root.querySelector(".try-answer");
    var pretrained = root.querySelector("input[name=pretrained]");
    var heatmap = root.querySelector("input[name=heatmap]");
    var objectUrl = null;
    var busy = 0;
    var last = null;  // the photo shown, asked again when a toggle changes what to show

    function send(file) {
      if (!file) return;
      last = file;
      if (file.type && file.type.indexOf("image/") !== 0) {
        answer.replaceChildren(el("p", "callout callout-bad", "That is not an image file."));
        return;
      }
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(file);
      preview.src = objectUrl;
      preview.hidden = false;
      hint.hidden = true;
      zone.classList.add("has-image");
      answer.replaceChildren(el("p", "answer-loading", "Looking…"));
      var form = new FormData();
      form.append("file", file, file.name || "pasted.png");
      if (pretrained && pretrained.checked) form.append("mode", "pretrained");
      if (heatmap && heatmap.checked) form.append("heatmap", "1");
      var headers = {};
      if (root.dataset.csrf) headers["X-CSRFToken"] = root.dataset.csrf;
      var ticket = ++busy;
      fetch(url, { method: "POST", body: form, headers: headers, credentials: "same-origin" })
        .then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            return { ok: response.ok, status: response.status, body: body };
          });
        })
        .then(function (r) {
          if (ticket !== busy) return;  // a newer photo was chosen meanwhile
          if (r.ok) render(answer, r.body);
          else answer.replaceChildren(el("p", "callout callout-bad", r.body.detail || "Something went wrong (" + r.status + ")."));
        })
        .catch(function () {
          if (ticket === busy) answer.replaceChildren(el("p", "callout callout-bad", "Could not reach the server. Check your connection."));
        });
    }

    root.querySelectorAll("input[type=file]").forEach(function (input) {
      input.addEventListener("change", function () {
        send(input.files && input.files[0]);
        input.value = "";
      });
    });
    [pretrained, heatmap].forEach(function (toggle) {
      if (toggle) toggle.addEventListener("change", function () { if (last) send(last); });
    });
    zone.addEventListener("click", function () { root.querySelector("input[type=file]").click(); });
    zone.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        root.querySelector("input[type=file]").click();
      }
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      send(event.dataTransfer.files && event.dataTransfer.files[0]);
    });
    document.addEventListener("paste", function (event) {
      var items = (event.clipboardData && event.clipboardData.items) || [];
      for (var i = 0; i < items.length; i++) {
        if (items[i].kind === "file" && items[i].type.indexOf("image/") === 0) {
          event.preventDefault();
          send(items[i].getAsFile());
          return;
        }
      }
    });
  }

  document.querySelectorAll(".tryit").forEach(function (root) {
    setup(root);
    root.dataset.ready = "true"; // the deferred script has bound its handlers: a file chosen now is sent
  });
})();
