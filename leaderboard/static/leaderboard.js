// Leaderboard page behaviour: sortable tables, filters, provenance pop-ups.
// Vanilla JS, no network: data comes from the JSON block embedded in the page, and every
// string from it is inserted as text (textContent), never as HTML.
"use strict";

(function () {
  const provenance = JSON.parse(document.getElementById("provenance-data").textContent || "{}");

  // ---------------------------------------------------------------- sorting
  function sortKey(cell, numeric) {
    const raw = cell ? cell.getAttribute("data-sort") : "";
    if (raw === null || raw === "") return null;
    if (numeric) {
      const value = parseFloat(raw);
      return Number.isFinite(value) ? value : null;
    }
    return raw;
  }

  function sortTable(th) {
    const table = th.closest("table");
    const headers = Array.from(th.parentNode.children);
    const column = headers.indexOf(th);
    const numeric = th.getAttribute("data-numeric") === "1";
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    headers.forEach((h) => {
      h.setAttribute("aria-sort", "none");
      h.querySelector(".sort-state").textContent = "";
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    th.querySelector(".sort-state").textContent = ascending ? " \u25b2" : " \u25bc";
    // each tbody (ranked rows, then reference rows) is sorted on its own: references are
    // shown beside the ranked rows, never mixed with them
    table.querySelectorAll("tbody").forEach((body) => {
      const rows = Array.from(body.querySelectorAll("tr")).filter(
        (r) => !r.classList.contains("group-label"),
      );
      rows.sort((a, b) => {
        const x = sortKey(a.children[column], numeric);
        const y = sortKey(b.children[column], numeric);
        if (x === null && y === null) return 0;
        if (x === null) return 1; // empty cells last, whatever the order
        if (y === null) return -1;
        const order = numeric ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  }

  document.querySelectorAll("table.board th button.sort").forEach((button) => {
    button.addEventListener("click", () => sortTable(button.closest("th")));
  });

  // ---------------------------------------------------------------- filters
  const filters = {
    preset: document.getElementById("filter-preset"),
    tier: document.getElementById("filter-tier"),
    task: document.getElementById("filter-task"),
  };

  function matches(element, key, value) {
    if (!value) return true;
    const own = element.getAttribute("data-" + key);
    return own === null || own === "" || own === value;
  }

  function applyFilters() {
    const preset = filters.preset.value;
    const tier = filters.tier.value;
    const task = filters.task.value;
    document.querySelectorAll("[data-preset]").forEach((el) => {
      const shown =
        matches(el, "preset", preset) &&
        matches(el, "task", task) &&
        (el.tagName === "TR" || matches(el, "tier", tier));
      el.hidden = !shown;
    });
    document.querySelectorAll("tr[data-tier]").forEach((row) => {
      const own = row.getAttribute("data-tier");
      const keep = !tier || own === tier || row.classList.contains("row-baseline");
      row.hidden = !keep;
    });
  }

  Object.values(filters).forEach((select) => select.addEventListener("change", applyFilters));

  // ---------------------------------------------------------------- provenance
  const dialog = document.getElementById("prov-dialog");
  const body = document.getElementById("prov-body");

  function show(value) {
    if (value === null || value === undefined || value === "") return "\u2014";
    if (typeof value === "object") return JSON.stringify(value, null, 1);
    return String(value);
  }

  function addList(title, entries) {
    const heading = document.createElement("h4");
    heading.textContent = title;
    body.appendChild(heading);
    const list = document.createElement("dl");
    Object.entries(entries).forEach(([key, value]) => {
      const term = document.createElement("dt");
      term.textContent = key;
      const detail = document.createElement("dd");
      detail.textContent = show(value);
      list.appendChild(term);
      list.appendChild(detail);
    });
    body.appendChild(list);
  }

  function openProvenance(id) {
    const cell = (provenance.cells || {})[id];
    if (!cell) return;
    body.replaceChildren();
    const { records, ...about } = cell;
    addList(String(cell.cell || "cell"), about);
    (records || []).forEach((rid) => {
      const record = (provenance.records || {})[rid];
      if (record) addList("record " + show(record.record), record);
    });
    dialog.showModal();
  }

  document.querySelectorAll("button.prov").forEach((button) => {
    button.addEventListener("click", () => openProvenance(button.getAttribute("data-prov")));
  });
  document.getElementById("prov-close").addEventListener("click", () => dialog.close());
})();
