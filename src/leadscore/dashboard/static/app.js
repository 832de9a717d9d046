// leadscore dashboard: progressive enhancement only; every page works without it.
"use strict";
(function () {
  const prefix = "/dashboard";

  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  document.querySelectorAll("select[data-autonav]").forEach((select) => {
    select.addEventListener("change", () => {
      window.location.href = select.form.dataset.navigate + encodeURIComponent(select.value);
    });
  });

  // Sparklines load after the table is painted: they replay each lead's events.
  const table = document.querySelector("table.leads");
  if (table) {
    const cells = Array.from(table.querySelectorAll("td.spark-cell[data-lead]"));
    if (cells.length) {
      const ids = cells.map((c) => c.dataset.lead);
      const url = prefix + "/sparklines?model=" + encodeURIComponent(table.dataset.model) +
        "&ids=" + ids.map(encodeURIComponent).join(",");
      fetch(url, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : {}))
        .then((svgs) => {
          cells.forEach((cell) => {
            if (svgs[cell.dataset.lead]) cell.innerHTML = svgs[cell.dataset.lead];
          });
          table.dataset.sparklines = "loaded";
        })
        .catch(() => { table.dataset.sparklines = "failed"; });
    }
  }

  // The MQL threshold what-if: leads that would be handed off, and their conversion.
  const whatif = document.getElementById("whatif");
  const slider = document.getElementById("threshold");
  if (whatif && slider) {
    const data = JSON.parse(whatif.dataset.whatif);
    const eligible = data.eligible;            // [[point, leads], ...]
    const outcomes = data.outcomes;            // [[point, [leads, converted]], ...] or null
    const all = eligible.reduce((s, [, n]) => s + n, 0);
    const fmt = new Intl.NumberFormat();
    const update = () => {
      const t = Number(slider.value);
      document.getElementById("threshold-value").textContent = t;
      const n = eligible.filter(([p]) => p >= t).reduce((s, [, k]) => s + k, 0);
      document.getElementById("handed-off").textContent = fmt.format(n);
      document.getElementById("handed-share").textContent =
        all ? "(" + (100 * n / all).toFixed(1) + " % of the leads that qualify)" : "";
      if (outcomes) {
        let leads = 0, won = 0, allLeads = 0, allWon = 0;
        outcomes.forEach(([p, [k, c]]) => {
          allLeads += k; allWon += c;
          if (p >= t) { leads += k; won += c; }
        });
        const base = allLeads ? (100 * allWon / allLeads).toFixed(1) : "–";
        document.getElementById("conversion").textContent = leads
          ? "Expected conversion above the threshold: " + (100 * won / leads).toFixed(1) +
            " % (" + won + " of " + leads + " in the backtest; " + base + " % for everyone)"
          : "No lead of the backtest scored that high.";
      }
      whatif.dataset.count = String(n);
    };
    slider.addEventListener("input", update);
    update();
  }

  const running = document.getElementById("running");
  if (running) setTimeout(() => window.location.reload(), 1000 * Number(running.dataset.refresh));
})();
