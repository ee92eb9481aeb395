// Strom's web console: plain JavaScript, no build step. Hash routes, each page a function
// that reads the JSON API under /api/ and renders into <main>. Pages that show live data
// refresh themselves until the route changes.
"use strict";

const main = document.getElementById("main");
let timer = null;
let writeEnabled = false;
// Bumped at every route change: a refresh loop of an older page stops.
let generation = 0;

// Runs `step` every `ms` after the previous run finished (never two at once), while the
// page of `gen` is shown.
function every(ms, gen, step) {
  const next = () => {
    timer = setTimeout(async () => {
      if (gen !== generation) return;
      try { await step(); } catch (e) { failed(e); }
      if (gen === generation) next();
    }, ms);
  };
  next();
}

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

async function api(path, body) {
  const init = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const r = await fetch("/api/" + path, init);
  const v = await r.json();
  if (!r.ok) throw new Error(v.error || r.statusText);
  return v;
}

function num(n) {
  if (n === null || n === undefined) return "-";
  if (typeof n === "number" && !Number.isInteger(n)) return n.toFixed(n < 10 ? 2 : 1);
  return Number(n).toLocaleString("en-US");
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function table(id, headers, rows) {
  const head = headers.map(h => `<th class="${h.num ? "num" : ""}">${esc(h.label ?? h)}</th>`).join("");
  const body = rows.map(r => "<tr>" + r.map((c, i) => `<td class="${headers[i].num ? "num" : ""}">${c}</td>`).join("") + "</tr>").join("");
  return `<table data-testid="${id}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

// A line chart of (t, v) points as SVG: the last hour by default.
function chart(id, title, ts, values, fmt) {
  const pts = ts.map((t, i) => [t, values[i]]).filter(p => p[1] !== null && p[1] !== undefined);
  const w = 400, h = 140, pad = 28;
  let body = `<text x="${pad}" y="${h / 2}">no data yet</text>`;
  if (pts.length > 0) {
    const t0 = Math.min(...pts.map(p => p[0])), t1 = Math.max(...pts.map(p => p[0]));
    const vmax = Math.max(...pts.map(p => p[1]), 1e-9);
    const x = t => pad + (t1 === t0 ? (w - pad) / 2 : (t - t0) / (t1 - t0) * (w - pad - 4));
    const y = v => h - 16 - v / vmax * (h - 28);
    const line = pts.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    const dots = pts.length === 1 ? `<circle cx="${x(pts[0][0])}" cy="${y(pts[0][1])}" r="2.5" fill="#1f6feb"/>` : "";
    body = `<polyline points="${line}"/>${dots}
      <text x="2" y="14">${esc(fmt(vmax))}</text><text x="2" y="${h - 16}">0</text>
      <text x="${pad}" y="${h - 2}">${new Date(t0).toLocaleTimeString()}</text>
      <text x="${w - 60}" y="${h - 2}">${new Date(t1).toLocaleTimeString()}</text>`;
  }
  const last = pts.length ? fmt(pts[pts.length - 1][1]) : "-";
  return `<div class="chart" data-testid="${id}" data-points="${pts.length}" data-last="${esc(pts.length ? pts[pts.length - 1][1] : "")}">
    <div class="title">${esc(title)} <span class="muted">now ${esc(last)}</span></div>
    <svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">${body}</svg></div>`;
}

function failed(e) {
  main.querySelectorAll(".error").forEach(d => d.remove());
  main.insertAdjacentHTML("afterbegin", `<div class="error" data-testid="error">${esc(e.message || e)}</div>`);
}

// A confirmation before a write: `check` (optional) is text the user must type.
function confirmWrite(text, check) {
  const modal = document.getElementById("modal");
  document.getElementById("modal-text").textContent = text;
  const extra = document.getElementById("modal-extra");
  extra.innerHTML = check ? `<label>Type <b>${esc(check)}</b> to confirm: <input id="modal-check" autocomplete="off"></label>` : "";
  modal.hidden = false;
  return new Promise(resolve => {
    const done = ok => { modal.hidden = true; resolve(ok); };
    document.getElementById("modal-cancel").onclick = () => done(false);
    document.getElementById("modal-ok").onclick = () => {
      if (check && document.getElementById("modal-check").value !== check) return;
      done(true);
    };
  });
}

// ---- pages ----

async function overview() {
  const [o, m] = await Promise.all([api("overview"), api("metrics")]);
  writeEnabled = o.write_enabled;
  const q = o.quorum || {};
  main.innerHTML = `<h1>Cluster <span class="muted" data-testid="cluster-id">${esc(o.cluster_id)}</span></h1>
    <div class="cards">
      <div class="card"><div class="k">Brokers</div><div class="v" data-testid="brokers-count">${o.brokers.length}</div></div>
      <div class="card"><div class="k">Controller (quorum leader)</div><div class="v" data-testid="controller">${esc(o.controller ?? "-")}</div></div>
      <div class="card"><div class="k">Topics</div><div class="v" data-testid="topics-count">${o.topics}</div></div>
      <div class="card"><div class="k">Partitions</div><div class="v" data-testid="partitions-count">${o.partitions}</div></div>
      <div class="card"><div class="k">Under-replicated</div><div class="v ${o.under_replicated ? "bad" : "ok"}" data-testid="under-replicated">${o.under_replicated}</div></div>
      <div class="card"><div class="k">Offline</div><div class="v ${o.offline ? "bad" : "ok"}" data-testid="offline">${o.offline}</div></div>
    </div>
    <h2>Brokers</h2>
    ${table("brokers", ["Node", "Host", {label: "Port", num: true}, "Rack", "Status", "HTTP"],
      o.brokers.map(b => [esc(b.id), esc(b.host), esc(b.port), esc(b.rack ?? "-"),
        b.fenced ? '<span class="bad">fenced</span>' : '<span class="ok">running</span>',
        b.http ? `<a href="${esc(b.http)}/">${esc(b.http)}</a>` : "-"]))}
    <h2>Metadata quorum</h2>
    ${table("quorum", ["This node", "State", {label: "Term", num: true}, "Leader", {label: "Log end", num: true}, {label: "Applied", num: true}, "Voters"],
      [[esc(o.node_id), esc(q.state ?? "-"), esc(q.term ?? "-"), esc(q.leader ?? "-"), esc(q.log_end_index ?? "-"), esc(q.applied_index ?? "-"), esc((q.voters || []).join(", "))]])}
    <h2>Traffic (this broker)</h2>
    <div class="charts">
      ${chart("chart-in-bytes", "Bytes in /s", m.t || [], m.in_bytes_per_s || [], bytes)}
      ${chart("chart-out-bytes", "Bytes out /s", m.t || [], m.out_bytes_per_s || [], bytes)}
    </div>`;
}

async function topics() {
  const rows = await api("topics");
  const o = await api("overview");
  writeEnabled = o.write_enabled;
  main.innerHTML = `<h1>Topics</h1>
    ${writeEnabled ? `<div class="toolbar" data-testid="create-topic">
      <input id="new-name" placeholder="topic name"> <input id="new-partitions" type="number" value="1" min="1" style="width:6em"> partitions
      <input id="new-rf" type="number" value="1" min="1" style="width:5em"> replicas <button id="create">Create topic</button></div>` : ""}
    ${table("topics", ["Topic", {label: "Partitions", num: true}, {label: "Replicas", num: true}, {label: "Under-replicated", num: true}, {label: "Size here", num: true}, {label: "Records in /s", num: true}],
      rows.map(t => [`<a href="#/topics/${encodeURIComponent(t.name)}">${esc(t.name)}</a>${t.internal ? ' <span class="muted">internal</span>' : ""}`,
        num(t.partitions), num(t.replication_factor), t.under_replicated ? `<span class="bad">${t.under_replicated}</span>` : "0",
        bytes(t.size_bytes), num(t.records_per_s)]))}`;
  if (writeEnabled) {
    document.getElementById("create").onclick = async () => {
      const name = document.getElementById("new-name").value.trim();
      const partitions = +document.getElementById("new-partitions").value;
      const rf = +document.getElementById("new-rf").value;
      if (!await confirmWrite(`Create topic ${name} with ${partitions} partition(s) and ${rf} replica(s)?`)) return;
      try { await api("topics", {name, partitions, replication_factor: rf}); location.hash = "#/topics/" + encodeURIComponent(name); }
      catch (e) { failed(e); }
    };
  }
}

async function topic(name) {
  const t = await api("topics/" + encodeURIComponent(name));
  const o = await api("overview");
  writeEnabled = o.write_enabled;
  const enc = encodeURIComponent(name);
  main.innerHTML = `<h1>Topic <span data-testid="topic-name">${esc(name)}</span></h1>
    <div class="toolbar"><a href="#/topics/${enc}/tail" data-testid="tail-link">Live tail (all partitions)</a>
      <span class="muted">records in /s: ${num(t.records_per_s)}</span>
      ${writeEnabled ? `<button id="delete" class="danger">Delete topic</button>` : ""}</div>
    <h2>Partitions</h2>
    ${table("partitions", [{label: "Partition", num: true}, {label: "Leader", num: true}, "Replicas", "ISR", {label: "Start offset", num: true}, {label: "End offset", num: true}, {label: "Size here", num: true}],
      t.partitions.map(p => [`<a href="#/topics/${enc}/tail?partition=${p.partition}" data-testid="partition-${p.partition}">${p.partition}</a>`,
        esc(p.leader), esc(p.replicas.join(",")), p.isr.length < p.replicas.length ? `<span class="bad">${esc(p.isr.join(","))}</span>` : esc(p.isr.join(",")),
        num(p.start_offset), num(p.end_offset), bytes(p.size_bytes)]))}
    <h2>Configs</h2>
    ${writeEnabled ? `<div class="toolbar"><input id="cfg-key" placeholder="config name"> <input id="cfg-value" placeholder="value"> <button id="cfg-set">Set</button></div>` : ""}
    ${table("configs", ["Name", "Value", "Source"], t.configs.map(c => [esc(c.name), esc(c.value ?? ""), `<span class="muted">${esc(c.source ?? "")}</span>`]))}`;
  if (writeEnabled) {
    document.getElementById("delete").onclick = async () => {
      if (!await confirmWrite(`Delete topic ${name} and all its records?`, name)) return;
      try { await api(`topics/${enc}/delete`, {}); location.hash = "#/topics"; } catch (e) { failed(e); }
    };
    document.getElementById("cfg-set").onclick = async () => {
      const key = document.getElementById("cfg-key").value.trim(), value = document.getElementById("cfg-value").value;
      if (!await confirmWrite(`Set ${key}=${value} on topic ${name}?`)) return;
      try { await api(`topics/${enc}/configs`, {set: {[key]: value}}); render(); } catch (e) { failed(e); }
    };
  }
}

function shown(v) {
  if (v === null || v === undefined) return '<span class="muted">null</span>';
  const s = v.text !== undefined ? esc(v.text) : `<span class="muted">hex</span> ${esc(v.hex)}`;
  return `<pre>${s}${v.truncated ? ` <span class="muted">(${v.bytes} bytes)</span>` : ""}</pre>`;
}

async function tail(name, params) {
  const partition = params.get("partition");
  const enc = encodeURIComponent(name);
  let positions = null, paused = false, seen = [];
  main.innerHTML = `<h1>Live tail: <a href="#/topics/${enc}">${esc(name)}</a>${partition !== null ? ` partition <span data-testid="tail-partition">${esc(partition)}</span>` : ""}</h1>
    <div class="toolbar"><button id="pause" data-testid="pause">Pause</button>
      <input id="filter" data-testid="filter" placeholder="filter: text in key, value or headers">
      <span class="muted" id="status" data-testid="tail-status">live</span></div>
    <div id="rows"></div>`;
  const draw = () => {
    const f = document.getElementById("filter").value;
    const text = r => [r.key?.text, r.value?.text, ...r.headers.map(h => h.key + "=" + (h.value?.text ?? ""))].join(" ");
    const rows = seen.filter(r => !f || text(r).includes(f));
    document.getElementById("rows").innerHTML = table("records", [{label: "Partition", num: true}, {label: "Offset", num: true}, "Timestamp", "Key", "Value", "Headers"],
      rows.map(r => [esc(r.partition), esc(r.offset), esc(new Date(r.timestamp).toISOString()), shown(r.key), shown(r.value),
        r.headers.map(h => `<pre>${esc(h.key)}: ${h.value?.text !== undefined ? esc(h.value.text) : esc(h.value?.hex ?? "null")}</pre>`).join("")]));
  };
  document.getElementById("filter").oninput = draw;
  document.getElementById("pause").onclick = () => {
    paused = !paused;
    document.getElementById("pause").textContent = paused ? "Resume" : "Pause";
    document.getElementById("status").textContent = paused ? "paused" : "live";
  };
  const poll = async () => {
    if (paused) return;
    const pos = positions ? "&positions=" + encodeURIComponent(Object.entries(positions).map(([p, o]) => p + ":" + o).join(",")) : "";
    const part = partition !== null ? "&partition=" + encodeURIComponent(partition) : "";
    const r = await api(`topics/${enc}/records?limit=100${part}${pos}`);
    positions = r.positions;
    seen = r.records.concat(seen).slice(0, 200);
    seen.sort((a, b) => b.timestamp - a.timestamp || b.offset - a.offset);
    draw();
  };
  await poll();
  every(1000, generation, poll);
}

async function groups() {
  const rows = await api("groups");
  main.innerHTML = `<h1>Consumer groups</h1>
    ${table("groups", ["Group", "State", {label: "Members", num: true}, {label: "Lag (records)", num: true}, {label: "Lag (seconds)", num: true}],
      rows.map(g => [`<a href="#/groups/${encodeURIComponent(g.group)}">${esc(g.group)}</a>`, esc(g.state), num(g.members), num(g.lag), num(g.lag_seconds)]))}`;
}

async function group(name) {
  const g = await api("groups/" + encodeURIComponent(name));
  writeEnabled = g.write_enabled;
  const hist = g.history || [];
  const topics = [...new Set(g.partitions.map(p => p.topic))];
  main.innerHTML = `<h1>Group <span data-testid="group-name">${esc(name)}</span> <span class="muted" data-testid="group-state">${esc(g.state)}</span></h1>
    <h2>Members</h2>
    ${table("members", ["Member", "Client", "Host", "Assignment"], g.members.map(m => [esc(m.member_id), esc(m.client_id), esc(m.host), esc(m.assignment.join(", "))]))}
    <h2>Lag by partition</h2>
    ${table("group-lag", ["Topic", {label: "Partition", num: true}, {label: "Committed", num: true}, {label: "End offset", num: true}, {label: "Lag", num: true}, {label: "Lag (s)", num: true}, "Member"],
      g.partitions.map(p => [esc(p.topic), esc(p.partition), esc(p.committed), num(p.end_offset), num(p.lag), num(p.lag_seconds), esc(p.member ?? "-")]))}
    <h2>Lag over the last hour</h2>
    <div class="charts">
      ${chart("chart-lag", "Lag (records)", hist.map(h => h.t), hist.map(h => h.lag), num)}
      ${chart("chart-lag-seconds", "Lag (seconds)", hist.map(h => h.t), hist.map(h => h.lag_seconds), num)}
    </div>
    ${writeEnabled && topics.length ? `<h2>Reset offsets</h2><div class="toolbar" data-testid="reset">
      <select id="reset-topic">${topics.map(t => `<option>${esc(t)}</option>`).join("")}</select>
      <select id="reset-to"><option>earliest</option><option>latest</option></select>
      <button id="reset">Reset</button></div>` : ""}`;
  if (writeEnabled && topics.length) {
    document.getElementById("reset").onclick = async () => {
      const topic = document.getElementById("reset-topic").value, to = document.getElementById("reset-to").value;
      if (!await confirmWrite(`Reset group ${name}'s offsets on ${topic} to ${to}?`)) return;
      try { await api(`groups/${encodeURIComponent(name)}/reset`, {topic, to}); render(); } catch (e) { failed(e); }
    };
  }
}

async function metrics() {
  const m = await api("metrics");
  const t = m.t || [];
  const ms = v => v === null || v === undefined ? "-" : num(v) + " ms";
  main.innerHTML = `<h1>Metrics <span class="muted">(this broker, last hour)</span></h1>
    <div class="charts">
      ${chart("chart-in-records", "Records in /s", t, m.in_records_per_s || [], num)}
      ${chart("chart-out-records", "Records out /s", t, m.out_records_per_s || [], num)}
      ${chart("chart-in-bytes", "Bytes in /s", t, m.in_bytes_per_s || [], bytes)}
      ${chart("chart-out-bytes", "Bytes out /s", t, m.out_bytes_per_s || [], bytes)}
      ${chart("chart-produce-p99", "Produce p99 latency", t, m.produce_p99_ms || [], ms)}
      ${chart("chart-fetch-p99", "Fetch p99 latency", t, m.fetch_p99_ms || [], ms)}
      ${chart("chart-connections", "Connections", t, m.connections || [], num)}
      ${chart("chart-under-replicated", "Under-replicated partitions", t, m.under_replicated || [], num)}
    </div>
    <p class="muted">Prometheus scrapes <a href="/metrics">/metrics</a>.</p>`;
}

async function requests() {
  const rows = await api("requests");
  const phases = ["request_queue", "local", "remote", "response_queue", "response_send"];
  main.innerHTML = `<h1>Slowest requests <span class="muted">(last 10 minutes; a fetch ranks by its time less its wait for data)</span></h1>
    ${table("slowest", ["API", "When", {label: "Total ms", num: true}, ...phases.map(p => ({label: p + " ms", num: true}))],
      rows.map(r => [esc(r.api), esc(new Date(r.at).toLocaleTimeString()), num(r.total_ms), ...phases.map(p => num(r.phases_ms[p]))]))}`;
}

// ---- routing ----

const refreshing = {overview: 5000, groups: 5000, group: 5000, metrics: 10000, requests: 5000};

async function render() {
  clearTimeout(timer);
  timer = null;
  const gen = ++generation;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  let page, run;
  if (parts.length === 0) { page = "overview"; run = overview; }
  else if (parts[0] === "topics" && parts.length === 1) { page = "topics"; run = topics; }
  else if (parts[0] === "topics" && parts[2] === "tail") { page = "tail"; run = () => tail(parts[1], params); }
  else if (parts[0] === "topics") { page = "topic"; run = () => topic(parts[1]); }
  else if (parts[0] === "groups" && parts.length === 1) { page = "groups"; run = groups; }
  else if (parts[0] === "groups") { page = "group"; run = () => group(parts[1]); }
  else if (parts[0] === "metrics") { page = "metrics"; run = metrics; }
  else if (parts[0] === "requests") { page = "requests"; run = requests; }
  else { main.innerHTML = "<h1>Not found</h1>"; return; }
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", page.startsWith(a.dataset.nav)));
  document.body.dataset.page = page;
  try { await run(); } catch (e) { main.innerHTML = ""; failed(e); }
  document.getElementById("mode").textContent = writeEnabled ? "writes enabled" : "read-only";
  document.body.dataset.loaded = location.hash;
  if (refreshing[page] && gen === generation) {
    every(refreshing[page], gen, async () => { if (document.getElementById("modal").hidden) await run(); });
  }
}

window.addEventListener("hashchange", render);
render();
