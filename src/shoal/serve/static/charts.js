// Small SVG charts for the shoal dashboard (ADR 0022): line and bar charts drawn from rows the
// page fetched from /v1/query. Every data point is an SVG element carrying data-series, data-x and
// data-y, so tests (and curious users) can read exactly what was plotted.
"use strict";
(function (global) {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569", "#ea580c"];
  // A series keeps its colour in every chart of the page (vm is the same colour hourly and daily):
  // colours are handed out by name, in the order names are first drawn.
  const assigned = new Map();
  function colorFor(name) {
    if (!assigned.has(name)) assigned.set(name, COLORS[assigned.size % COLORS.length]);
    return assigned.get(name);
  }
  const W = 640, H = 260, L = 64, R = 12, T = 12, B = 28;

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }
  function fmtNum(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    return Number(v.toPrecision(3)).toString();
  }
  function ticks(lo, hi, n) {
    if (hi === lo) { hi = lo + 1; }
    const step0 = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }
  function legend(container, names) {
    const box = document.createElement("div");
    box.className = "legend";
    names.forEach((name) => {
      const item = document.createElement("span");
      item.innerHTML = `<i style="background:${colorFor(name)}"></i>`;
      item.appendChild(document.createTextNode(name));
      box.appendChild(item);
    });
    container.appendChild(box);
  }
  // series: [{name, points: [[x, y], ...]}]; x numbers or Date; opts: {title, bands: [[x0, x1, label]], yLabel}
  function line(container, series, opts) {
    opts = opts || {};
    container.innerHTML = "";
    const isTime = series.some((s) => s.points.some((p) => p[0] instanceof Date));
    const xs = [], ys = [];
    series.forEach((s) => s.points.forEach(([x, y]) => { if (y !== null && isFinite(y)) { xs.push(+x); ys.push(y); } }));
    (opts.bands || []).forEach(([a, b]) => { xs.push(+a, +b); });
    if (!xs.length) { container.innerHTML = '<p class="muted empty">no data</p>'; return null; }
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(0, ...ys), y1 = Math.max(...ys);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) y1 = y0 + 1;
    const sx = (x) => L + ((+x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.title || "chart" });
    (opts.bands || []).forEach(([a, b, label]) => {
      const band = el("rect", { class: "band", x: sx(a), y: T, width: Math.max(2, sx(b) - sx(a)), height: H - T - B, "data-x0": new Date(+a).toISOString(), "data-x1": new Date(+b).toISOString() }, svg);
      el("title", {}, band).textContent = label || "";
    });
    ticks(y0, y1, 4).forEach((v) => {
      el("line", { class: "axis", x1: L, x2: W - R, y1: sy(v), y2: sy(v) }, svg);
      el("text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end" }, svg).textContent = fmtNum(v);
    });
    const nx = 5;
    for (let i = 0; i <= nx; i++) {
      const v = x0 + ((x1 - x0) * i) / nx;
      const iso = isTime ? new Date(v).toISOString() : "";
      const label = !isTime ? fmtNum(v) : x1 - x0 >= 4 * 86400e3 ? iso.slice(5, 10) : iso.slice(5, 16).replace("T", " ");
      el("text", { x: sx(v), y: H - 8, "text-anchor": i === 0 ? "start" : i === nx ? "end" : "middle" }, svg).textContent = label;
    }
    series.forEach((s) => {
      const color = colorFor(s.name);
      const pts = s.points.filter(([, y]) => y !== null && isFinite(y)).sort((a, b) => +a[0] - +b[0]);
      if (pts.length > 1) el("polyline", { fill: "none", stroke: color, "stroke-width": 1.6, points: pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ") }, svg);
      const g = el("g", { class: "points", "data-series": s.name }, svg);
      pts.forEach(([x, y]) => {
        const c = el("circle", { class: "pt", cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: pts.length > 80 ? 1.2 : 2.5, fill: color, "data-series": s.name, "data-x": x instanceof Date ? x.toISOString() : x, "data-y": y }, g);
        el("title", {}, c).textContent = `${s.name} ${x instanceof Date ? x.toISOString() : x}: ${y}`;
      });
    });
    container.appendChild(svg);
    legend(container, series.map((s) => s.name));
    return svg;
  }
  // bars: [{label, value}] (one series) drawn horizontally
  function bars(container, items, opts) {
    opts = opts || {};
    container.innerHTML = "";
    if (!items.length) { container.innerHTML = '<p class="muted empty">no data</p>'; return null; }
    const rowH = 24, h = T + items.length * rowH + B, left = 170;
    const max = Math.max(0, ...items.map((d) => d.value)) || 1;
    const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${h}`, role: "img", "aria-label": opts.title || "chart" });
    items.forEach((d, i) => {
      const y = T + i * rowH, w = (Math.max(0, d.value) / max) * (W - left - 80);
      el("text", { x: left - 6, y: y + 15, "text-anchor": "end" }, svg).textContent = d.label;
      const r = el("rect", { class: "pt bar", x: left, y: y + 3, width: w.toFixed(1), height: rowH - 8, fill: COLORS[0], "data-series": opts.series || "value", "data-x": d.label, "data-y": d.value }, svg);
      el("title", {}, r).textContent = `${d.label}: ${d.value}`;
      el("text", { x: left + w + 6, y: y + 15 }, svg).textContent = fmtNum(d.value);
    });
    container.appendChild(svg);
    return svg;
  }
  global.ShoalCharts = { line, bars, fmtNum, COLORS, colorFor };
})(window);
