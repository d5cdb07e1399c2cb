/* The results page's threshold slider: what the version would have done on its scored photos at each
   threshold, worked out from the recorded answers as webui/training/thresholds.at works it out. */
(function () {
  "use strict";

  function outcome(rows, bar) {
    const answered = rows.filter((r) => r.confidence >= bar);
    const labels = {};
    rows.forEach((r) => { labels[r.label] = true; labels[r.predicted] = true; });
    const perLabel = {};
    Object.keys(labels).forEach((name) => {
      const support = rows.filter((r) => r.label === name).length;
      const said = answered.filter((r) => r.predicted === name);
      const hits = said.filter((r) => r.label === name).length;
      perLabel[name] = {
        precision: said.length ? hits / said.length : null,
        recall: support ? hits / support : null,
      };
    });
    const right = answered.filter((r) => r.label === r.predicted).length;
    return {
      scored: rows.length,
      answered: answered.length,
      coverage: rows.length ? answered.length / rows.length : null,
      accuracy: answered.length ? right / answered.length : null,
      perLabel,
    };
  }

  function show(node, fraction) {
    const value = Pinhole.percent(fraction);
    node.textContent = value === null ? "—" : value + "%";
  }

  function setup(root) {
    const rows = JSON.parse(document.getElementById(root.dataset.rows).textContent);
    const slider = root.querySelector("input[name=threshold]");
    const said = root.querySelector("[data-threshold-said]");
    function update() {
      const bar = Number(slider.value) / 100;
      said.textContent = bar > 0 ? "only when at least " + slider.value + "% sure" : "always";
      const o = outcome(rows, bar);
      show(root.querySelector("[data-coverage]"), o.coverage);
      show(root.querySelector("[data-accuracy]"), o.accuracy);
      root.querySelector("[data-answered]").textContent = o.answered;
      root.querySelector("[data-unsure]").textContent = o.scored - o.answered;
      root.querySelectorAll("[data-label-precision]").forEach((node) => {
        show(node, (o.perLabel[node.dataset.labelPrecision] || {}).precision ?? null);
      });
      root.querySelectorAll("[data-label-recall]").forEach((node) => {
        show(node, (o.perLabel[node.dataset.labelRecall] || {}).recall ?? null);
      });
    }
    slider.addEventListener("input", update);
    update();
  }

  /* Multi-label versions: a slider per label; each label's precision and recall at its threshold,
     as webui/training/label_thresholds.at works them out. */
  function setupLabels(root) {
    const rows = JSON.parse(document.getElementById(root.dataset.rows).textContent);
    root.querySelectorAll("[data-label-index]").forEach((card) => {
      const j = Number(card.dataset.labelIndex);
      const slider = card.querySelector("input[type=range]");
      function update() {
        const bar = Number(slider.value) / 100;
        card.querySelector("[data-said]").textContent = slider.value + "%";
        const said = rows.filter((r) => r.probabilities[j] >= bar);
        const own = card.dataset.labelName;
        const has = (r) => r.labels.includes(own);
        const support = rows.filter(has).length;
        const hits = said.filter(has).length;
        const figures = { precision: said.length ? hits / said.length : null, recall: support ? hits / support : null };
        show(card.querySelector("[data-precision]"), figures.precision);
        show(card.querySelector("[data-recall]"), figures.recall);
        card.querySelectorAll("[data-fill]").forEach((fill) => {
          fill.style.width = Math.round(100 * (figures[fill.dataset.fill] || 0)) + "%";
        });
      }
      slider.addEventListener("input", update);
    });
  }

  document.querySelectorAll("[data-threshold]").forEach(setup);
  document.querySelectorAll("[data-label-thresholds]").forEach(setupLabels);
})();
