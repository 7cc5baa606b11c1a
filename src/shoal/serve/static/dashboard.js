// The shoal dashboard: one page, hash routes, every number fetched from the /v1 API with the
// user's token (so grants and personal-data masking hold here exactly as for any client).
"use strict";
(function () {
  const C = window.ShoalCharts;
  const KEY = "shoal.token";
  const POLL_MS = Math.max(500, Number(new URLSearchParams(location.search).get("poll")) || 5000);
  const $ = (sel) => document.querySelector(sel);
  let tables = []; // the caller's tables, from /v1/tables
  let signature = ""; // table versions last rendered: a new commit re-renders the page
  let rendering = false;
  let pending = false; // a forced render asked for while another ran

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function api(path, init) {
    init = init || {};
    const headers = Object.assign({ Authorization: "Bearer " + sessionStorage.getItem(KEY) }, init.headers || {});
    const res = await fetch("v1/" + path, Object.assign({}, init, { headers }));
    const body = await res.json().catch(() => ({}));
    if (res.status === 401) { logout("token refused: " + ((body.error || {}).message || "")); throw new ApiError(401, "unauthorized"); }
    if (!res.ok) throw new ApiError(res.status, (body.error || {}).message || res.statusText);
    return body;
  }
  async function sql(query) {
    const out = await api("query", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sql: query, format: "json" }) });
    if (out.error) throw new ApiError(413, out.error);
    return out;
  }
  // rows as objects, numbers parsed (DECIMAL arrives as an exact string)
  function records(result) {
    const names = result.columns.map((c) => c.name);
    const numeric = result.columns.map((c) => /int|float|double|decimal/i.test(c.type));
    return result.rows.map((r) => Object.fromEntries(r.map((v, i) => [names[i], numeric[i] && v !== null ? Number(v) : v])));
  }
  const has = (name) => tables.some((t) => t.name === name);
  function esc(s) { return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }
  function ago(iso) {
    if (!iso) return "";
    const d = (Date.now() - Date.parse(iso)) / 1000;
    const s = Math.abs(d);
    const text = s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`;
    return d < 0 ? `in ${text}` : `${text} ago`; // simulated data may lie in the future
  }
  function table(rows, columns, opts) {
    opts = opts || {};
    if (!rows.length) return '<p class="muted">no rows</p>';
    const head = columns.map((c) => `<th>${esc(c.label || c.key)}</th>`).join("");
    const body = rows.map((r, i) => `<tr${opts.click ? ` class="click" data-row="${i}"` : ""}>` + columns.map((c) => {
      const v = c.fmt ? c.fmt(r[c.key], r) : r[c.key];
      return `<td class="${typeof r[c.key] === "number" ? "num" : ""}">${c.html ? v : esc(typeof v === "number" ? C.fmtNum(v) : v)}</td>`;
    }).join("") + "</tr>").join("");
    return `<div class="scroll"><table class="data"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
  }
  function card(id, title) { return `<div class="card"><h2>${esc(title)}</h2><div id="${id}"></div></div>`; }
  function denied(names) {
    const missing = names.filter((n) => !has(n));
    return missing.length ? `<p class="error denied">No access to ${missing.map(esc).join(", ")} with this token.</p>` : "";
  }
  function showError(where, err) {
    const box = typeof where === "string" ? $(where) : where;
    if (box) box.innerHTML = `<p class="error">${esc(err.message || err)}</p>`;
  }
  const series = (rows, key, x, y) => {
    const by = new Map();
    rows.forEach((r) => { const k = String(r[key]); if (!by.has(k)) by.set(k, []); by.get(k).push([x(r), y(r)]); });
    return [...by.entries()].map(([name, points]) => ({ name, points }));
  };
  const day = (v) => new Date(String(v).length === 10 ? v + "T00:00:00Z" : v);

  // -- pages ----------------------------------------------------------------------------------
  const pages = {};

  pages.overview = async function (root) {
    root.innerHTML = `<h1>Overview</h1>${card("ov-pipelines", "Pipelines")}${card("ov-tables", "Tables (freshness)")}`;
    try {
      const fresh = (await api("tables?freshness=true")).tables;
      $("#ov-tables").innerHTML = table(fresh, [
        { key: "name", label: "table" }, { key: "num_rows", label: "rows" }, { key: "version" },
        { key: "freshness", label: "newest data", fmt: (v) => (v && v.newest_data ? `${v.newest_data.slice(0, 19).replace("T", " ")} (${ago(v.newest_data)})` : "") },
        { key: "last_commit", label: "last commit", fmt: (v) => (v ? `${ago(v)}` : "never") },
      ]);
    } catch (e) { showError("#ov-tables", e); }
    try {
      const pipes = (await api("pipelines")).pipelines;
      $("#ov-pipelines").innerHTML = pipes.length ? table(pipes, [
        { key: "name" }, { key: "table" },
        { key: "lag", fmt: (v, p) => (v === null || v === undefined ? (p.error ? "" : "broker down") : v) },
        { key: "throughput", label: "rows/s (5 min)", fmt: (v) => (v ? v.rows_per_s : "") },
        { key: "dead_letters", label: "dead letters 1 h / total", fmt: (v) => (v ? `${v.last_hour} / ${v.total}` : "") },
        { key: "partitions", label: "partition: committed / high watermark", fmt: (v) => (v ? v.map((p) => `${p.partition}: ${p.committed ?? "–"} / ${p.high_watermark ?? "?"}`).join(", ") : "") },
        { key: "error", label: "problem", fmt: (v, p) => String(v || (p.broker && p.broker.error) || "").slice(0, 90) },
      ]) : '<p class="muted">no pipelines you may see</p>';
    } catch (e) { showError("#ov-pipelines", e); }
  };

  pages.csat = async function (root) {
    root.innerHTML = `<h1>Support: CSAT</h1>${denied(["support.csat_daily"])}
      <div class="controls"><label>By <select id="csat-by"><option value="team">team</option><option value="product">product</option></select></label>
      <span class="muted">percentiles are ticket-weighted means of the daily per-team/product percentiles</span></div>
      <div class="grid">${card("csat-pct", "CSAT % (satisfied of responses) by day")}${card("csat-frt", "First response p50 / p90 (hours)")}
      ${card("csat-res", "Resolution p50 / p90 (hours)")}${card("csat-table", "Latest days")}</div>`;
    if (!has("support.csat_daily")) return;
    const sel = $("#csat-by");
    sel.value = sessionStorage.getItem("shoal.csat.by") || "team";
    sel.onchange = () => { sessionStorage.setItem("shoal.csat.by", sel.value); render(true); };
    const by = sel.value === "product" ? "product" : "team";
    try {
      const rows = records(await sql(`select day, ${by} as grp,
          sum(csat_pct * csat_responses) / nullif(sum(csat_responses), 0) as csat_pct,
          sum(first_response_p50_s * tickets_created) / nullif(sum(tickets_created), 0) / 3600 as frt_p50_h,
          sum(first_response_p90_s * tickets_created) / nullif(sum(tickets_created), 0) / 3600 as frt_p90_h,
          sum(resolution_p50_s * tickets_resolved) / nullif(sum(tickets_resolved), 0) / 3600 as res_p50_h,
          sum(resolution_p90_s * tickets_resolved) / nullif(sum(tickets_resolved), 0) / 3600 as res_p90_h,
          sum(tickets_created) as tickets
        from support.csat_daily group by all order by day, grp`));
      C.line($("#csat-pct"), series(rows, "grp", (r) => day(r.day), (r) => r.csat_pct), { title: "CSAT %" });
      const two = (a, b) => [...series(rows, "grp", (r) => day(r.day), (r) => r[a]).map((s) => ({ name: s.name + " p50", points: s.points })),
        ...series(rows, "grp", (r) => day(r.day), (r) => r[b]).map((s) => ({ name: s.name + " p90", points: s.points }))];
      C.line($("#csat-frt"), two("frt_p50_h", "frt_p90_h"), { title: "first response" });
      C.line($("#csat-res"), two("res_p50_h", "res_p90_h"), { title: "resolution" });
      const latest = records(await sql("select * from support.csat_daily order by day desc, team, product limit 60"));
      $("#csat-table").innerHTML = table(latest, ["day", "team", "product", "tickets_created", "csat_responses", "csat_pct", "first_response_p50_s", "first_response_p90_s", "resolution_p50_s", "resolution_p90_s"].map((k) => ({ key: k })));
    } catch (e) { showError("#csat-pct", e); }
  };

  pages.revenue = async function (root) {
    const need = ["billing.revenue_hourly", "billing.revenue_daily", "billing.run_rate", "billing.storage_run_rate_by_compute_spend"];
    root.innerHTML = `<h1>Revenue</h1>${denied(need)}<div class="grid">${card("rev-hourly", "Hourly revenue by product")}${card("rev-daily", "Daily revenue by product")}
      ${card("rev-runrate", "Annual run rate by product")}${card("rev-storage", "Block-storage run rate by compute spend (month to date)")}</div>`;
    const jobs = [];
    if (has("billing.revenue_hourly")) jobs.push(sql("select billing_hour, product, sum(revenue) as revenue from billing.revenue_hourly group by all order by 1, 2")
      .then((r) => C.line($("#rev-hourly"), series(records(r), "product", (x) => new Date(x.billing_hour), (x) => x.revenue), { title: "hourly revenue" })).catch((e) => showError("#rev-hourly", e)));
    if (has("billing.revenue_daily")) jobs.push(sql("select billing_date, product, sum(revenue) as revenue from billing.revenue_daily group by all order by 1, 2")
      .then((r) => C.line($("#rev-daily"), series(records(r), "product", (x) => day(x.billing_date), (x) => x.revenue), { title: "daily revenue" })).catch((e) => showError("#rev-daily", e)));
    if (has("billing.run_rate")) jobs.push(sql("select product || ' (' || currency || ')' as label, run_rate from billing.run_rate order by run_rate desc")
      .then((r) => C.bars($("#rev-runrate"), records(r).map((x) => ({ label: x.label, value: x.run_rate })), { series: "run_rate" })).catch((e) => showError("#rev-runrate", e)));
    if (has("billing.storage_run_rate_by_compute_spend")) jobs.push(sql("select compute_spend_bucket, storage_run_rate from billing.storage_run_rate_by_compute_spend order by bucket_order")
      .then((r) => C.bars($("#rev-storage"), records(r).map((x) => ({ label: x.compute_spend_bucket, value: x.storage_run_rate })), { series: "storage_run_rate" })).catch((e) => showError("#rev-storage", e)));
    await Promise.all(jobs);
  };

  pages.infra = async function (root) {
    root.innerHTML = `<h1>Infrastructure</h1>${denied(["metrics.samples", "metrics.series", "infra.anomalies"])}
      <div class="controls"><label>Power per <select id="infra-level"><option value="podlet">podlet</option><option value="rack">rack</option></select></label>
      <span class="muted">shaded: anomaly windows of power metrics</span></div>
      <div class="grid">${card("infra-power", "Power (W, hourly mean)")}${card("infra-focus", "Around the selected anomaly")}</div>
      ${card("infra-anomalies", "Anomalies (click one for its series)")}`;
    const sel = $("#infra-level");
    sel.value = sessionStorage.getItem("shoal.infra.level") || "podlet";
    sel.onchange = () => { sessionStorage.setItem("shoal.infra.level", sel.value); render(true); };
    const level = sel.value === "rack" ? "rack" : "podlet";
    let anomalies = [];
    try {
      if (has("infra.anomalies")) {
        anomalies = records(await sql("select entity, level, metric, window_start, window_end, round(score, 2) as score, value, baseline, detector from infra.anomalies order by window_start, entity"));
        $("#infra-anomalies").innerHTML = table(anomalies, ["window_start", "window_end", "level", "entity", "metric", "score", "value", "baseline", "detector"].map((k) => ({ key: k })), { click: true });
        document.querySelectorAll("#infra-anomalies tr.click").forEach((tr) => { tr.onclick = () => focus(anomalies[Number(tr.dataset.row)]); });
      }
      if (has("metrics.samples") && has("metrics.series")) {
        const rows = records(await sql(`select date_trunc('hour', s.ts) as hour, se.labels['${level}'] as grp,
            sum(s.value) / count(distinct s.ts) as watts
          from metrics.samples s join metrics.series se using (series_id)
          where se.metric = 'pdu_outlet_power_watts' group by all order by 1, 2`));
        const power = anomalies.filter((a) => /power|current|imbalance/.test(a.metric))
          .map((a) => [new Date(a.window_start), new Date(a.window_end), `${a.level} ${a.entity} ${a.metric} score ${a.score}`]);
        C.line($("#infra-power"), series(rows, "grp", (r) => new Date(r.hour), (r) => r.watts), { title: "power", bands: power });
      }
    } catch (e) { showError("#infra-power", e); }

    async function focus(a) {
      const box = $("#infra-focus");
      box.innerHTML = '<p class="muted">loading…</p>';
      const from = new Date(Date.parse(a.window_start) - 6 * 3600e3).toISOString();
      const to = new Date(Date.parse(a.window_end) + 6 * 3600e3).toISOString();
      // the anomaly's own series when it is a stored metric, else the power of the rack it belongs to
      const parts = a.entity.split("/");
      const rack = parts[0].split("-").slice(0, 4).join("-");
      const where = a.level === "outlet" ? `se.labels['pdu'] = '${parts[0]}' and se.labels['outlet'] = '${parts[2]}' and se.metric = 'pdu_outlet_power_watts'`
        : a.level === "phase" ? `se.labels['pdu'] = '${parts[0]}' and se.labels['phase'] = '${parts[1]}' and se.metric = 'pdu_phase_current_amperes'`
        : `se.labels['rack'] = '${rack.replace(/'/g, "''")}' and se.metric = 'pdu_outlet_power_watts'`;
      try {
        const rows = records(await sql(`select s.ts, sum(s.value) as value from metrics.samples s join metrics.series se using (series_id)
          where ${where} and s.ts between '${from}' and '${to}' group by 1 order by 1`));
        const label = a.level === "outlet" || a.level === "phase" ? `${a.entity} ${a.metric}` : `rack ${rack} power (W)`;
        C.line(box, [{ name: label, points: rows.map((r) => [new Date(r.ts), r.value]) }],
          { title: "anomaly", bands: [[new Date(a.window_start), new Date(a.window_end), a.metric]] });
      } catch (e) { showError(box, e); }
    }
  };

  pages.catalog = async function (root) {
    root.innerHTML = `<h1>Catalog</h1><div class="grid">${card("cat-list", "Tables")}${card("cat-detail", "Table")}</div>`;
    $("#cat-list").innerHTML = table(tables, [{ key: "name" }, { key: "owner" }, { key: "source" }, { key: "num_rows", label: "rows" }, { key: "last_commit", label: "last commit", fmt: (v) => (v ? `${ago(v)}` : "") }], { click: true });
    document.querySelectorAll("#cat-list tr.click").forEach((tr) => { tr.onclick = () => { location.hash = "#catalog/" + tables[Number(tr.dataset.row)].name; }; });
    const name = decodeURIComponent(location.hash.split("/")[1] || "");
    if (!name) { $("#cat-detail").innerHTML = '<p class="muted">pick a table</p>'; return; }
    try {
      const t = await api("tables/" + encodeURIComponent(name));
      const lin = t.lineage || {};
      const fr = t.freshness || {};
      const cols = (t.schema || t.columns || []).map((c) => (typeof c === "string" ? { name: c } : c));
      $("#cat-detail").innerHTML = `<h2 id="cat-name">${esc(t.name)}</h2><p>${esc(t.description || "")}</p>
        <p>owner <b>${esc(t.owner || "–")}</b> · source <b>${esc(t.source || "–")}</b> · version ${esc(t.version)} · partitioned by ${esc((t.partition_by || []).join(", ") || "–")}</p>
        <p>newest data ${esc(fr.newest_data || "–")} (${esc(ago(fr.newest_data))}) · last commit ${esc(ago(fr.last_commit))}</p>
        <h2>Lineage (${esc(lin.kind || "unknown")})</h2>
        ${(lin.partitions || []).length ? table(lin.partitions, [{ key: "pipeline" }, { key: "topic" }, { key: "partition" }, { key: "next_offset", label: "next offset" }, { key: "commit" }]) : ""}
        ${(lin.inputs || []).length ? table(lin.inputs, [{ key: "table", html: true, fmt: (v) => `<a href="#catalog/${esc(v)}">${esc(v)}</a>` }, { key: "version", label: "input version" }, { key: "commit" }]) : ""}
        <h2>Schema</h2>${table(cols, [{ key: "name" }, { key: "type" }, { key: "name", label: "masked", fmt: (v) => ((t.masked_columns || []).includes(v) ? "masked" : "") }])}`;
    } catch (e) { showError("#cat-detail", e); }
  };

  pages.console = async function (root) {
    const last = sessionStorage.getItem("shoal.console.sql") || "select product, sum(revenue) as revenue from billing.revenue_daily group by 1 order by 2 desc";
    root.innerHTML = `<h1>SQL console</h1><div class="card"><textarea id="sql" spellcheck="false">${esc(last)}</textarea>
      <div class="controls"><button id="run" type="button">Run (Ctrl+Enter)</button><span id="sql-status" class="muted"></span></div></div>
      <div class="grid">${card("sql-chart", "Chart (first column × numeric columns)")}${card("sql-result", "Result")}</div>`;
    const run = async () => {
      const text = $("#sql").value;
      sessionStorage.setItem("shoal.console.sql", text);
      $("#sql-status").textContent = "running…";
      const t0 = performance.now();
      try {
        const res = await sql(text);
        const rows = records(res);
        const cols = res.columns.map((c) => c.name);
        $("#sql-status").textContent = `${res.row_count} rows in ${Math.round(performance.now() - t0)} ms`;
        $("#sql-result").innerHTML = table(rows.slice(0, 1000), cols.map((k) => ({ key: k })));
        const numeric = res.columns.slice(1).filter((c) => /int|float|double|decimal/i.test(c.type)).map((c) => c.name);
        const xType = (res.columns[0] || {}).type || "";
        const xOf = /timestamp|date/i.test(xType) ? (r) => day(r[cols[0]]) : /int|float|double|decimal/i.test(xType) ? (r) => r[cols[0]] : null;
        if (!numeric.length) $("#sql-chart").innerHTML = '<p class="muted">no numeric column to chart</p>';
        else if (xOf) C.line($("#sql-chart"), numeric.map((n) => ({ name: n, points: rows.map((r) => [xOf(r), r[n]]) })), { title: "result" });
        else C.bars($("#sql-chart"), rows.slice(0, 50).map((r) => ({ label: String(r[cols[0]]), value: r[numeric[0]] })), { series: numeric[0] });
      } catch (e) {
        $("#sql-status").textContent = "";
        showError("#sql-result", e);
        $("#sql-chart").innerHTML = "";
      }
    };
    $("#run").onclick = run;
    $("#sql").onkeydown = (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) run(); };
  };

  // -- shell ----------------------------------------------------------------------------------
  function route() { const name = (location.hash.slice(1) || "overview").split("/")[0]; return pages[name] ? name : "overview"; }
  async function render(force) {
    if (rendering) { pending = pending || Boolean(force); return; } // a navigation waits, a poll is dropped
    rendering = true;
    try {
      tables = (await api("tables")).tables;
      const sig = tables.map((t) => `${t.name}@${t.version}`).join(",");
      const name = route();
      // the console keeps its result until the user runs again; other pages follow new commits
      if (force || (sig !== signature && name !== "console") || name === "overview") {
        const root = $("#page");
        document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#" + name));
        const scroll = window.scrollY;
        await pages[name](root);
        window.scrollTo(0, scroll);
        root.dataset.page = name; // set with the count once drawn: tests wait on both
        root.dataset.rendered = String(Number(root.dataset.rendered || 0) + 1);
      }
      signature = sig;
      $("#status").textContent = `updated ${new Date().toLocaleTimeString()} · ${tables.length} tables`;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) $("#status").textContent = "update failed: " + (e.message || e);
    } finally {
      rendering = false;
      if (pending) { pending = false; render(true); }
    }
  }
  let timer = null;
  function start() {
    $("#login").hidden = true; $("#page").hidden = false; $("#logout").hidden = false;
    const id = (sessionStorage.getItem(KEY) || "").split("_")[1] || "";
    $("#who").textContent = id ? `token ${id}` : "";
    render(true);
    if (timer === null) timer = setInterval(() => render(false), POLL_MS);
  }
  function logout(message) {
    sessionStorage.removeItem(KEY);
    if (timer !== null) { clearInterval(timer); timer = null; }
    $("#page").hidden = true; $("#logout").hidden = true; $("#login").hidden = false; $("#who").textContent = "";
    $("#login-error").textContent = message || "";
  }
  $("#login").onsubmit = async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("#token").value.trim());
    $("#token").value = "";
    try { await api("tables"); start(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) logout(String(e.message || e)); }
  };
  $("#logout").onclick = () => logout("");
  window.addEventListener("hashchange", () => { if (sessionStorage.getItem(KEY)) render(true); });
  if (sessionStorage.getItem(KEY)) start(); else logout("");
})();
