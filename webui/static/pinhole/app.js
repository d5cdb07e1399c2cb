/* Pinhole: small helpers shared by every page (loaded by base.html as window.Pinhole). */
(function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (field) return field.value;
    const holder = document.querySelector("[data-csrf]");
    return holder ? holder.dataset.csrf : "";
  }

  /* POST form data (FormData or a plain object) and get JSON back: {status, ok, body}. */
  async function post(url, data) {
    let body = data;
    if (!(data instanceof FormData)) {
      body = new FormData();
      Object.entries(data || {}).forEach(([k, v]) => {
        (Array.isArray(v) ? v : [v]).forEach((item) => body.append(k, item));
      });
    }
    const response = await fetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
    let parsed = null;
    try { parsed = await response.json(); } catch (e) { parsed = null; }
    return { status: response.status, ok: response.ok, body: parsed };
  }

  /* Like post(), through XMLHttpRequest so upload progress can be reported: onProgress(0..1). */
  function upload(url, formData, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.withCredentials = true;
      if (onProgress) {
        xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      }
      xhr.onload = () => {
        let parsed = null;
        try { parsed = JSON.parse(xhr.responseText); } catch (e) { parsed = null; }
        resolve({ status: xhr.status, ok: xhr.status >= 200 && xhr.status < 300, body: parsed });
      };
      xhr.onerror = () => resolve({ status: 0, ok: false, body: null });
      xhr.send(formData);
    });
  }

  /* A short-lived note at the bottom of the screen. kind: "ok" | "bad" | "" */
  function toast(text, kind) {
    let box = document.getElementById("toast");
    if (!box) {
      box = document.createElement("div");
      box.id = "toast";
      box.setAttribute("role", "status");
      document.body.appendChild(box);
    }
    box.textContent = text;
    // Above a sticky action bar (the label page), never over the buttons the person is using.
    const bar = document.getElementById("actionbar");
    const barTop = bar ? bar.getBoundingClientRect().top : window.innerHeight;
    box.style.bottom = Math.max(20, window.innerHeight - barTop + 12) + "px";
    box.className = "toast show " + (kind || "");
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.className = "toast " + (kind || ""); }, 2600);
  }

  function formatBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  /* Ask a background job's status URL every `every` ms until the job has ended; onStatus(status) gets
     each answer ({status, progress, message, error, final, ...}). Network hiccups are retried. */
  function watchJob(url, onStatus, every) {
    const wait = every || 1500;
    async function look() {
      let status = null;
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) status = await response.json();
      } catch (e) { status = null; }
      if (status) onStatus(status);
      if (!status || !status.final) setTimeout(look, wait);
    }
    look();
  }

  /* Any element with data-job-url shows its job's message in [data-job-message] and, once the job
     has succeeded, reveals [data-job-done] (failed: [data-job-failed] with the error). */
  document.querySelectorAll("[data-job-url]").forEach((box) => {
    const message = box.querySelector("[data-job-message]");
    watchJob(box.dataset.jobUrl, (job) => {
      if (message && job.message) message.textContent = job.message;
      if (!job.final) return;
      const done = box.querySelector(job.status === "succeeded" ? "[data-job-done]" : "[data-job-failed]");
      if (done) {
        if (job.error) done.textContent += " " + job.error;
        done.hidden = false;
      }
    });
  });

  /* The one way to confirm a destructive form: <form data-confirm="Delete …?"> asks before it is sent
     (no inline handlers, so the pages keep working under a strict content security policy). */
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      e.preventDefault();
    }
  }, true);

  /* Values that are data (bar widths, label colours, confusion-cell shades) come as data-width,
     data-colour and data-shade and are applied here through the CSSOM: the content security policy
     allows no style attributes in the page. htmx:load runs it again on whatever htmx swaps in. */
  function applyDataStyles(root) {
    const nodes = Array.from(root.querySelectorAll("[data-width], [data-colour], [data-shade]"));
    if (root.matches && root.matches("[data-width], [data-colour], [data-shade]")) nodes.push(root);
    nodes.forEach((node) => {
      if (node.dataset.width !== undefined) node.style.width = node.dataset.width + "%";
      if (node.dataset.colour) node.style.background = node.dataset.colour;
      if (node.dataset.shade !== undefined) node.style.setProperty("--shade", node.dataset.shade);
    });
  }
  applyDataStyles(document);
  document.addEventListener("htmx:load", (e) => applyDataStyles(e.detail.elt));

  /* A region htmx fills in on request (a confusion cell's photos) comes into view once filled. */
  document.addEventListener("htmx:afterSwap", (e) => {
    const target = e.detail && e.detail.target;
    if (target && target.hasAttribute("data-scroll-after-swap")) {
      target.scrollIntoView({ behavior: "smooth", block: "nearest" });
    }
  });

  /* Tabs wider than the screen scroll sideways: show the current one, and fade the side with more. */
  document.querySelectorAll(".tabs").forEach((tabs) => {
    const hint = () => {
      tabs.classList.toggle("more-left", tabs.scrollLeft > 2);
      tabs.classList.toggle("more-right", tabs.scrollLeft + tabs.clientWidth < tabs.scrollWidth - 2);
    };
    const current = tabs.querySelector("[aria-current=page], .active");
    if (current && tabs.scrollWidth > tabs.clientWidth) {
      tabs.scrollLeft = current.offsetLeft - (tabs.clientWidth - current.offsetWidth) / 2;
    }
    hint();
    tabs.addEventListener("scroll", hint, { passive: true });
    window.addEventListener("resize", hint);
  });

  /* A fraction as whole percent, rounded as webui/lib/numbers.percent rounds (half to even), so a
     figure worked out in the browser reads as the same figure worked out on the server. */
  function percent(fraction) {
    if (fraction === null || fraction === undefined) return null;
    const v = fraction * 100;
    const r = Math.round(v);
    return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  window.Pinhole = { csrfToken, post, upload, toast, formatBytes, watchJob, applyDataStyles, percent };
})();
