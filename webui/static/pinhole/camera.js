/* Webcam capture on the label page: choose a label, then hold the button (or Space on it) to record
   frames into that label, about four a second. Frames are JPEGs drawn from the video, uploaded in small
   batches through the same API as any upload (so they are checked, deduplicated and stored alike). */
(function () {
  "use strict";

  const root = document.getElementById("camera");
  if (!root) return;
  const open = document.getElementById("camera-open");
  const video = root.querySelector("video");
  const hold = root.querySelector("[data-hold]");
  const stop = root.querySelector("[data-stop]");
  const choice = root.querySelector("select[name=camera-label]");
  const status = root.querySelector("[data-camera-status]");
  const api = root.dataset.api;
  const EVERY_MS = 250, BATCH = 8, LONGEST_SIDE = 640;
  let stream = null, timer = null, queue = [], sending = false;
  let captured = 0, stored = 0, refused = 0;

  function say(text) { status.textContent = text; }
  function tally() {
    say(captured + " frame" + (captured === 1 ? "" : "s") + " captured, " + stored + " stored" +
      (refused ? ", " + refused + " refused" : "") + (queue.length || sending ? " (sending…)" : "") + ".");
  }

  async function start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      root.hidden = false;
      say("This browser cannot use a camera here (it needs a secure address: https, or localhost).");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (error) {
      root.hidden = false;
      say("The camera could not be opened: " + (error && error.message ? error.message : error) + ".");
      return;
    }
    video.srcObject = stream;
    root.hidden = false;
    open.hidden = true;
    hold.disabled = false;
    say("Choose a label, then hold the button while you move the camera around the thing.");
  }

  function close() {
    release();
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
    root.hidden = true;
    open.hidden = false;
  }

  function frame() {
    if (!video.videoWidth) return;
    const scale = Math.min(1, LONGEST_SIDE / Math.max(video.videoWidth, video.videoHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const label = choice.value;
    canvas.toBlob((blob) => {
      if (!blob) return;
      captured += 1;
      queue.push({ label, file: new File([blob], "camera-" + Date.now() + "-" + captured + ".jpg", { type: "image/jpeg" }) });
      tally();
      pump();
    }, "image/jpeg", 0.9);
  }

  async function pump() {
    if (sending || !queue.length) return;
    sending = true;
    while (queue.length) {
      const label = queue[0].label;
      const batch = [];
      while (queue.length && batch.length < BATCH && queue[0].label === label) batch.push(queue.shift());
      const form = new FormData();
      batch.forEach((entry) => form.append("files", entry.file, entry.file.name));
      form.append("label", label);
      const reply = await Pinhole.upload(api, form, null);
      if (reply.ok || reply.status === 400) {
        stored += (reply.body && reply.body.images ? reply.body.images.length : 0);
        refused += (reply.body && reply.body.rejected ? reply.body.rejected.length : 0);
      } else {
        refused += batch.length;
        say("Frames could not be stored (" + (reply.body && reply.body.detail || reply.status) + ").");
      }
      tally();
    }
    sending = false;
    tally();
  }

  function press(event) {
    if (event) event.preventDefault();
    if (timer || !stream) return;
    if (!choice.value) { say("Choose a label first."); return; }
    hold.classList.add("recording");
    hold.setAttribute("aria-pressed", "true");
    frame();
    timer = setInterval(frame, EVERY_MS);
  }

  function release() {
    if (!timer) return;
    clearInterval(timer);
    timer = null;
    hold.classList.remove("recording");
    hold.setAttribute("aria-pressed", "false");
  }

  open.addEventListener("click", start);
  stop.addEventListener("click", close);
  hold.addEventListener("pointerdown", press);
  ["pointerup", "pointerleave", "pointercancel", "blur"].forEach((name) => hold.addEventListener(name, release));
  hold.addEventListener("keydown", (event) => {
    if ((event.key === " " || event.key === "Enter") && !event.repeat) press(event);
  });
  hold.addEventListener("keyup", (event) => { if (event.key === " " || event.key === "Enter") release(); });
  hold.addEventListener("contextmenu", (event) => event.preventDefault());  // a long touch is a hold
})();
