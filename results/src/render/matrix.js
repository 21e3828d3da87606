"use strict";
const D = JSON.parse(document.getElementById("hm-data").textContent);
const NS = "http://www.w3.org/2000/svg";
function el(tag, attrs, parent, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f", "#bab0ac", "#e15759"];
const colours = {};
function colour(name) {
  if (!(name in colours)) colours[name] = PALETTE[Object.keys(colours).length % PALETTE.length];
  return colours[name];
}
function stepName(s, j) { return s.a === "teardown" ? "teardown" : (j + 1) + " " + s.a; }

// Per cell: every trial's value per step as dots, then the failed handshakes of each step
// stacked by why the browser opened them and by how they failed.
function distribution(box, c) {
  const trials = c.trials.filter(t => t.steps.length);
  if (!trials.length) return;
  const steps = trials[0].steps;
  let max = 1;
  for (const t of trials) for (const s of t.steps) max = Math.max(max, s.f, s.r == null ? 0 : s.r);
  const colW = 110, left = 24, top = 10, bottom = 28, H = 130, W = left + colW * steps.length;
  el("h4", {}, box, "Distribution over " + trials.length + " trial(s): ○ failed handshakes of the step (all of them), ● retries (failed handshakes before the page; for a page over an earlier connection, all of the step) of the steps in the headline");
  const svg = el("svg:svg", { class: "dist", width: W, height: H }, box);
  const y = v => top + (H - top - bottom) * (1 - v / max);
  el("svg:line", { class: "tick", x1: left, x2: W, y1: y(0), y2: y(0) }, svg);
  el("svg:text", { x: 2, y: y(max) + 4 }, svg, String(max));
  el("svg:text", { x: 2, y: y(0) + 4 }, svg, "0");
  steps.forEach((s, j) => {
    const cx = left + j * colW + colW / 2;
    el("svg:text", { x: cx, y: H - 14, "text-anchor": "middle" }, svg, stepName(s, j));
    el("svg:text", { x: cx, y: H - 3, "text-anchor": "middle" }, svg, c.headline.includes(j) ? "headline" : "");
    const n = trials.length, spread = Math.min(5, 36 / n);
    trials.forEach((t, k) => {
      const st = t.steps[j];
      if (!st) return;
      const dx = (k - (n - 1) / 2) * spread;
      const f = el("svg:circle", { class: "dot-failed", cx: cx - 18 + dx, cy: y(st.f), r: 3 }, svg);
      el("svg:title", {}, f, "trial " + t.i + ": " + st.f + " failed handshake(s)");
      if (c.headline.includes(j) && st.p && st.r != null) {
        const r = el("svg:circle", { class: "dot-retries", cx: cx + 18 + dx, cy: y(st.r), r: 3 }, svg);
        el("svg:title", {}, r, "trial " + t.i + ": " + st.r + " retries" + (st.reused ? " (page over an earlier connection: every failed handshake of the step)" : ""));
      }
    });
  });
  const stacks = el("div", { class: "stacks" }, box);
  steps.forEach((s, j) => {
    const why = {}, how = {};
    let total = 0, withLog = 0;
    for (const t of trials) {
      for (const x of t.conns) {
        if (x.s !== j || !x.f) continue;
        total++;
        if (x.why != null) { withLog++; why[x.why] = (why[x.why] || 0) + 1; }
        how[x.tok] = (how[x.tok] || 0) + 1;
      }
    }
    if (!total) return;
    el("div", {}, stacks, stepName(s, j) + ": " + total + " failed handshake(s) in " + trials.length + " trial(s)");
    stack(stacks, how, total, "how they failed (server record)");
    if (withLog) stack(stacks, why, withLog, "why the browser opened them (its log; " + withLog + " of " + total + ")");
  });
}
function stack(box, counts, total, title) {
  const row = el("div", { class: "stackrow" }, box);
  const bar = el("div", { class: "stack", title: title }, row);
  const names = Object.keys(counts).sort((a, b) => counts[b] - counts[a]);
  for (const name of names) {
    el("span", { style: "width:" + (100 * counts[name] / total) + "%;background:" + colour(name), title: counts[name] + " " + name }, bar);
  }
  const key = el("small", {}, row, title + ":");
  for (const name of names) {
    el("span", { class: "sw", style: "background:" + colour(name) }, key);
    key.appendChild(document.createTextNode(counts[name] + " " + name));
  }
}

// One trial: its steps as bands on a time axis, every connection as a bar from accept to close.
function timeline(box, c, t) {
  const d = el("div", { class: "trial", "data-trial": t.i }, box);
  const failed = t.conns.filter(x => x.f).length;
  let head = "trial " + t.i + (t.conf ? " (confirmation)" : "") + ": " + t.conns.length + " connection(s), " + failed + " failed handshake(s), " + t.ms + " ms";
  if (t.err) head += " — error: " + t.err;
  if (t.logp) head += " — browser log: " + t.logp;
  el("h4", {}, d, head);
  const end = Math.max(1, ...t.steps.map(s => s.t1), ...t.conns.map(x => x.c));
  const W = 960, left = 4, rowH = 16, top = 34, H = top + rowH * t.conns.length + 18;
  const sc = (W - 170) / end;
  const svg = el("svg:svg", { class: "timeline", width: W, height: H }, d);
  t.steps.forEach((s, j) => {
    const x = left + s.t0 * sc, w = Math.max(1, (s.t1 - s.t0) * sc);
    el("svg:rect", { class: "band band" + (j % 2), x: x, y: 0, width: w, height: H - 16 }, svg);
    el("svg:text", { x: x + 3, y: 12 }, svg, stepName(s, j) + (s.capped ? " ⏱" : ""));
    el("svg:text", { x: x + 3, y: 24 }, svg, "→ " + s.sh);
  });
  const detail = el("pre", { class: "record", hidden: "" }, null);
  const conns = t.conns.slice().sort((a, b) => a.a - b.a || a.id - b.id);
  conns.forEach((x, k) => {
    const y = top + k * rowH, x0 = left + x.a * sc, w = Math.max(2, (x.c - x.a) * sc);
    const text = "record " + x.id + " — accepted at +" + x.a + " ms, closed at +" + x.c + " ms\n" + x.d.map(i => D.lines[i]).join("\n");
    const cls = "bar o-" + x.o + (x.k ? " c-" + x.k : "");
    const bar = el("svg:rect", { class: cls, "data-outcome": x.o, "data-record": x.id, x: x0, y: y, width: w, height: rowH - 4, tabindex: 0 }, svg);
    el("svg:title", {}, bar, text);
    const label = (x.why ? x.why + " · " : "") + x.tok;
    el("svg:text", { x: x0 + w + 3, y: y + rowH - 6 }, svg, label);
    const show = () => { detail.hidden = false; detail.textContent = text; };
    bar.addEventListener("click", show);
    bar.addEventListener("keydown", e => { if (e.key === "Enter") show(); });
  });
  el("svg:text", { x: left, y: H - 3 }, svg, "0 ms");
  el("svg:text", { x: left + end * sc, y: H - 3, "text-anchor": "end" }, svg, Math.round(end) + " ms");
  d.appendChild(detail);
  const files = el("small", {}, d, "logs: " + t.dir + (t.log ? " · browser log: " + t.log : ""));
  files.className = "files";
  if (t.cap) {
    files.appendChild(document.createTextNode(" · "));
    el("a", { href: t.cap }, files, "capture.pcapng");
  }
}
function outcomesLegend(box, c) {
  const seen = {};
  for (const t of c.trials) for (const x of t.conns) seen[x.o + (x.k ? " c-" + x.k : "")] = [x.o, x.k];
  const p = el("p", { class: "outcomes" }, box, "Bars: ");
  for (const key of Object.keys(seen).sort()) {
    const [o, k] = seen[key];
    const svg = el("svg:svg", { width: 12, height: 10 }, p);
    el("svg:rect", { class: "o-" + o + (k ? " c-" + k : ""), width: 12, height: 10 }, svg);
    p.appendChild(document.createTextNode(" " + o + (k ? " (" + k + ")" : "") + "  "));
  }
  p.appendChild(document.createTextNode(" — label: why the browser opened it (its log, when it says) · the server's outcome token. Hover or click a bar for its record."));
}
function openCell(i) {
  const td = document.getElementById("c" + i);
  const was = document.querySelector("tr.detail");
  document.querySelectorAll("tr.detail").forEach(r => r.remove());
  document.querySelectorAll("td.open").forEach(t => t.classList.remove("open"));
  if (was && was.dataset.cell === String(i)) return;
  td.classList.add("open");
  const tr = td.parentNode;
  const row = el("tr", { class: "detail", "data-cell": i });
  tr.after(row);
  const box = el("td", { colspan: tr.children.length }, row);
  const c = D.cells[i];
  el("h3", {}, box, c.key);
  if (c.reason) el("p", {}, box, c.reason);
  distribution(box, c);
  outcomesLegend(box, c);
  for (const t of c.trials) timeline(box, c, t);
}
const matrix = document.getElementById("matrix");
matrix.addEventListener("click", e => {
  if (e.target.closest("tr.detail")) return;
  const td = e.target.closest("td[data-cell]");
  if (td) openCell(td.dataset.cell);
});
matrix.addEventListener("keydown", e => {
  const td = e.target.closest && e.target.closest("td[data-cell]");
  if (td && e.key === "Enter") openCell(td.dataset.cell);
});
document.querySelectorAll("li.finding").forEach(li => li.addEventListener("click", () => {
  document.querySelectorAll("td.hl").forEach(t => t.classList.remove("hl"));
  for (const id of li.dataset.cells.split(" ")) { const td = document.getElementById(id); if (td) td.classList.add("hl"); }
}));
// A link to a cell (`matrix.html#c12`, the findings' links) opens it.
function openFromHash() {
  const m = /^#c(\d+)$/.exec(location.hash);
  if (m && D.cells[m[1]] && !document.querySelector('tr.detail[data-cell="' + m[1] + '"]')) openCell(m[1]);
}
window.addEventListener("hashchange", openFromHash);
openFromHash();
