/* "Run on this device" on share pages: the visitor's browser answers with the version's own network
   (onnxruntime-web, served by this app), so the photo never leaves the device.

   The photo is prepared exactly as the server prepares it (classifier/pixels.py): upright by its EXIF
   orientation, resized with Pillow's own filter computed on the crop's box (ported below: the same
   coefficients, the same 8-bit rounding between the two passes), normalised in float32. Two steps
   are approximated: a JPEG at least twice the network's size on its short side is decoded by the
   server at 1/2, 1/4 or 1/8 scale inside the JPEG decoder, here by averaging blocks of that size;
   and the browser's JPEG decoder may round a few pixels differently from Pillow's.

   try.js calls PinholeOnDevice.prepare(root) when the visitor ticks the box, and
   PinholeOnDevice.answer(root, file) for each photo; the answer has the server's shape. */
(function () {
  "use strict";

  // --- Pillow's resampling (libImaging/Resample.c), for 8-bit RGB ----------------------------------

  const PRECISION_BITS = 32 - 8 - 2;
  const ONE = 2 ** PRECISION_BITS;

  function sinc(x) {
    if (x === 0) return 1;
    x *= Math.PI;
    return Math.sin(x) / x;
  }

  const FILTERS = {
    box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
    bilinear: { support: 1, f: (x) => { x = Math.abs(x); return x < 1 ? 1 - x : 0; } },
    hamming: {
      support: 1,
      f: (x) => {
        x = Math.abs(x);
        if (x === 0) return 1;
        if (x >= 1) return 0;
        x *= Math.PI;
        return (Math.sin(x) / x) * (0.54 + 0.46 * Math.cos(x));
      },
    },
    bicubic: {
      support: 2,
      f: (x) => {
        const a = -0.5;
        x = Math.abs(x);
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
      },
    },
    lanczos: { support: 3, f: (x) => (x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
  };

  /* Which source pixels feed each output pixel, and with what fixed-point weight. */
  function coefficients(inSize, in0, in1, outSize, filter) {
    const scale = (in1 - in0) / outSize;
    const filterscale = scale < 1 ? 1 : scale;
    const support = filter.support * filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    const bounds = new Int32Array(outSize * 2);
    const kk = new Float64Array(outSize * ksize);
    for (let xx = 0; xx < outSize; xx++) {
      const center = in0 + (xx + 0.5) * scale;
      const ss = 1 / filterscale;
      let xmin = Math.trunc(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      let xmax = Math.trunc(center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      let ww = 0;
      for (let x = 0; x < xmax; x++) {
        const w = filter.f((x + xmin - center + 0.5) * ss);
        kk[xx * ksize + x] = w;
        ww += w;
      }
      for (let x = 0; x < xmax; x++) {
        if (ww !== 0) kk[xx * ksize + x] /= ww;
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    const fixed = new Float64Array(kk.length);
    for (let i = 0; i < kk.length; i++) {
      fixed[i] = kk[i] < 0 ? Math.trunc(-0.5 + kk[i] * ONE) : Math.trunc(0.5 + kk[i] * ONE);
    }
    return { ksize, bounds, kk: fixed };
  }

  function clip8(ss) {
    if (ss >= ONE * 256) return 255;
    if (ss <= 0) return 0;
    return Math.floor(ss / ONE);
  }

  /* rgb: Uint8Array of width*height*3. Returns the outW x outH image of the box, as Pillow's
     Image.resize((outW, outH), filter, box=box) does (without its reducing_gap step). */
  function resample(rgb, width, height, box, outW, outH, filter) {
    const h = coefficients(width, box[0], box[2], outW, filter);
    const v = coefficients(height, box[1], box[3], outH, filter);
    const first = v.bounds[0];
    const last = v.bounds[outH * 2 - 2] + v.bounds[outH * 2 - 1];
    const rows = last - first;
    const temp = new Uint8Array(outW * rows * 3);
    for (let yy = 0; yy < rows; yy++) {
      const src = (yy + first) * width * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = h.bounds[xx * 2];
        const xmax = h.bounds[xx * 2 + 1];
        const k = xx * h.ksize;
        let s0 = ONE / 2, s1 = ONE / 2, s2 = ONE / 2;
        for (let x = 0; x < xmax; x++) {
          const p = src + (x + xmin) * 3;
          const w = h.kk[k + x];
          s0 += rgb[p] * w;
          s1 += rgb[p + 1] * w;
          s2 += rgb[p + 2] * w;
        }
        const o = (yy * outW + xx) * 3;
        temp[o] = clip8(s0);
        temp[o + 1] = clip8(s1);
        temp[o + 2] = clip8(s2);
      }
    }
    const out = new Uint8Array(outW * outH * 3);
    for (let yy = 0; yy < outH; yy++) {
      const ymin = v.bounds[yy * 2] - first;
      const ymax = v.bounds[yy * 2 + 1];
      const k = yy * v.ksize;
      for (let xx = 0; xx < outW; xx++) {
        let s0 = ONE / 2, s1 = ONE / 2, s2 = ONE / 2;
        for (let y = 0; y < ymax; y++) {
          const p = ((y + ymin) * outW + xx) * 3;
          const w = v.kk[k + y];
          s0 += temp[p] * w;
          s1 += temp[p + 1] * w;
          s2 += temp[p + 2] * w;
        }
        const o = (yy * outW + xx) * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      }
    }
    return out;
  }

  // --- classifier/pixels.py, in the browser ---------------------------------------------------------

  function frameBox(width, height, p) {
    if (p.framing === "full") return [0, 0, width, height];
    const short = Math.min(width, height);
    const long = Math.max(width, height);
    const newShort = p.resize;
    const newLong = Math.trunc((p.resize * long) / short);
    const newW = width <= height ? newShort : newLong;
    const newH = width <= height ? newLong : newShort;
    const left = roundHalfEven((newW - p.crop) / 2);
    const top = roundHalfEven((newH - p.crop) / 2);
    const sx = width / newW;
    const sy = height / newH;
    return [left * sx, top * sy, (left + p.crop) * sx, (top + p.crop) * sy];
  }

  function roundHalfEven(x) {  // Python's round()
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  /* The JPEG decoder's reduced scale on the server (Pillow's draft), as block averages. */
  function draftScale(file, width, height, resize) {
    if (!/jpe?g$/i.test(file.type || "")) return 1;
    const scale = Math.min(Math.floor(width / resize), Math.floor(height / resize));
    return scale >= 8 ? 8 : scale >= 4 ? 4 : scale >= 2 ? 2 : 1;
  }

  function blockAverage(rgb, width, height, scale) {
    const w = Math.ceil(width / scale);
    const h = Math.ceil(height / scale);
    const out = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const sums = [0, 0, 0];
        let n = 0;
        for (let dy = 0; dy < scale && y * scale + dy < height; dy++) {
          for (let dx = 0; dx < scale && x * scale + dx < width; dx++) {
            const p = ((y * scale + dy) * width + x * scale + dx) * 3;
            sums[0] += rgb[p]; sums[1] += rgb[p + 1]; sums[2] += rgb[p + 2];
            n++;
          }
        }
        const o = (y * w + x) * 3;
        for (let c = 0; c < 3; c++) out[o + c] = Math.round(sums[c] / n);
      }
    }
    return { rgb: out, width: w, height: h };
  }

  async function uprightRgb(file) {
    // The browser turns the photo upright from its EXIF orientation; no colour-profile conversion
    // (Pillow applies none either); transparency goes on white, as on the server.
    const bitmap = await createImageBitmap(file, {
      imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none",
    });
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
    const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      const a = rgba[i + 3];
      for (let c = 0; c < 3; c++) {
        rgb[j + c] = a === 255 ? rgba[i + c] : Math.round((rgba[i + c] * a + 255 * (255 - a)) / 255);
      }
    }
    const size = { rgb, width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return size;
  }

  async function tensorOf(file, p) {
    let image = await uprightRgb(file);
    const scale = draftScale(file, image.width, image.height, p.resize);
    if (scale > 1) image = blockAverage(image.rgb, image.width, image.height, scale);
    const box = frameBox(image.width, image.height, p);
    const filter = FILTERS[p.interpolation || "bilinear"] || FILTERS.bilinear;
    const pixels = resample(image.rgb, image.width, image.height, box, p.crop, p.crop, filter);
    // (x / 255 - mean) / std as one float32 multiply-add per channel, as numpy computes it.
    const f = Math.fround;
    const plane = p.crop * p.crop;
    const data = new Float32Array(3 * plane);
    for (let c = 0; c < 3; c++) {
      const std = f(p.std[c]);
      const mul = f(1 / f(255 * std));
      const add = f(f(-f(p.mean[c])) / std);
      for (let i = 0; i < plane; i++) data[c * plane + i] = f(f(pixels[i * 3 + c] * mul) + add);
    }
    return data;
  }

  // --- the model ----------------------------------------------------------------------------------

  const loaded = new WeakMap();  // root -> Promise of {ort, session, config}

  async function load(root, status) {
    const reply = await fetch(root.dataset.deviceUrl, { credentials: "same-origin" });
    const config = await reply.json();
    if (!reply.ok) throw new Error(config.detail || "The model cannot be loaded (" + reply.status + ").");
    status("Loading the model (once; it is kept for the next photos)…");
    const ort = await import(root.dataset.ortUrl);
    ort.env.wasm.wasmPaths = root.dataset.ortDir;
    ort.env.wasm.numThreads = 1;  // threads need a cross-origin-isolated page; one is plenty here
    const model = await fetch(config.model_url, { credentials: "same-origin" });
    if (!model.ok) {
      let detail = "";
      try { detail = (await model.json()).detail; } catch (e) { /* not JSON */ }
      throw new Error(detail || "The model cannot be loaded (" + model.status + ").");
    }
    const bytes = new Uint8Array(await model.arrayBuffer());
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    return { ort, session, config };
  }

  function prepare(root, status) {
    if (!loaded.has(root)) {
      const promise = load(root, status);
      promise.catch(() => loaded.delete(root));  // a failed load may be tried again
      loaded.set(root, promise);
    }
    return loaded.get(root);
  }

  function answerOf(config, probabilities, unknown) {
    const labels = config.labels;
    const order = labels.map((_, i) => i).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    const top = order.slice(0, 5).map((i) => ({ label: labels[i], probability: probabilities[i] }));
    const body = {
      mode: "device",
      label: top[0].label,
      probability: top[0].probability,
      top,
      unknown,
      threshold: config.threshold,
      device_version: config.model_version,
    };
    if (config.task_type === "multi_label") {
      const cut = config.thresholds || {};
      body.labels = labels.map((name, i) => ({
        label: name, probability: probabilities[i], present: probabilities[i] >= (cut[name] ?? 0.5),
      }));
      body.sure = body.labels.every((row) => Math.abs(row.probability - (cut[row.label] ?? 0.5)) >= config.unsure_margin);
      body.threshold = null;
    } else {
      body.sure = config.threshold === null || body.probability >= config.threshold;
    }
    return body;
  }

  async function answer(root, file, status) {
    const { ort, session, config } = await prepare(root, status);
    const data = await tensorOf(file, config.preprocessing);
    const crop = config.preprocessing.crop;
    const outputs = await session.run({ images: new ort.Tensor("float32", data, [1, 3, crop, crop]) });
    const probabilities = Array.from(outputs.probabilities.data);
    const unknown = outputs.unknown ? outputs.unknown.data[0] > 0.5 : false;
    return answerOf(config, probabilities, unknown);
  }

  window.PinholeOnDevice = { prepare, answer, tensorOf };
})();
