// The monitor page: live stats straight from the broker over Web STOMP.
//
// The server hands this page its user's own broker login and the binding keys
// to subscribe with (GET /api/v1/monitor/subscription); the broker's topic
// permissions keep a non-admin to their own containers' keys. Each agent sends
// one sample per running container per tick, an event when a container
// starts or stops, and (to admins) its node's totals. A row lives while its
// samples keep coming: it goes at once on a stop/die/destroy event, or after
// 2.5 ticks without a sample. Rows are kept element by element and updated in
// place, so a tick never rebuilds the table under the pointer.
//
// Subscribe once, never twice: subscriptions belong to the STOMP connection
// they were made on. When the WebSocket closes they are dropped with it; on
// each (re)connect `subscribeAll` first unsubscribes whatever this connection
// still holds, then subscribes each binding once under a fixed id, and only
// the newest generation of handlers acts on a message.
import { api, ApiError, escapeHtml, formatTime, toast } from "./api.js";

const $ = (selector, root = document) => root.querySelector(selector);
const root = $("#monitor");
const tbody = $("#monitor-body");
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

const STALE_TICKS = 2.5;
const WINDOW_SECONDS = 300;
const RENDER_EVERY_MS = 250;
const GONE_ACTIONS = new Set(["stop", "die", "destroy"]);
const PALETTE = ["#0d6efd", "#20c997", "#fd7e14", "#6f42c1", "#d63384", "#198754", "#0dcaf0", "#ffc107"];

const state = {
  interval: Number(root.dataset.interval) || 3,
  nodes: new Map(), // node -> { lastTick, deltas, memoryTotal, colour }
  rows: new Map(), // "node/id" -> { key, sample, receivedAt, element, busy }
  gone: new Map(), // "node/id" -> the timestamp of the event that ended it
  series: new Map(), // node -> [{ t, cpu, memory }], one point per tick
  summaries: false, // whether the agents' node totals arrive (admins only)
  clockOffset: 0, // the agents' clock minus this browser's, in seconds
  connected: false,
  everConnected: false,
  sort: { key: "name", dir: 1 },
  renderTimer: null,
};

const live = { client: null, credentials: null, generation: 0, subscriptions: new Map() };

// What the page has done, for the browser tests and a curious console.
const debug = {
  connects: 0, disconnects: 0, subscribeCalls: 0, received: 0, duplicates: 0,
  states: [], activeSubscriptions: () => live.subscriptions.size,
};
window.dockbedMonitor = debug;

// Units ----------------------------------------------------------------------

function bytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let amount = value;
  let unit = 0;
  while (Math.abs(amount) >= 1024 && unit < units.length - 1) { amount /= 1024; unit += 1; }
  const digits = unit === 0 ? 0 : amount < 10 ? 2 : amount < 100 ? 1 : 0;
  return `${amount.toFixed(digits)} ${units[unit]}`;
}

const rate = (value) => (value === null || value === undefined ? "—" : `${bytes(value)}/s`);
const percent = (value) => (value === null || value === undefined ? "—" : `${value.toFixed(value < 10 ? 2 : 1)} %`);
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const rowKey = (node, id) => `${node}/${id}`;

// Ticks ----------------------------------------------------------------------

function nodeInfo(node) {
  let info = state.nodes.get(node);
  if (!info) {
    info = { lastTick: null, deltas: [], memoryTotal: null, colour: PALETTE[state.nodes.size % PALETTE.length] };
    state.nodes.set(node, info);
    addNodeOption(node);
  }
  return info;
}

/** Learn a node's tick from its samples' timestamps: all of one tick share one. */
function noteTick(node, timestamp) {
  const info = nodeInfo(node);
  if (info.lastTick !== null && timestamp > info.lastTick) {
    info.deltas = [...info.deltas, timestamp - info.lastTick].slice(-5);
  }
  if (info.lastTick === null || timestamp > info.lastTick) info.lastTick = timestamp;
}

/** Seconds between two of the node's ticks: the median seen, else the configured one. */
function tickOf(node) {
  const deltas = [...(state.nodes.get(node)?.deltas ?? [])].sort((a, b) => a - b);
  const median = deltas.length ? deltas[Math.floor(deltas.length / 2)] : null;
  return median && median > 0.1 && median < 120 ? median : state.interval;
}

// Messages -------------------------------------------------------------------

function onMessage(message) {
  debug.received += 1;
  let body;
  try { body = JSON.parse(message.body); } catch { return; }
  if (body.kind === "stats") onSample(body);
  else if (body.kind === "event") onEvent(body);
  else if (body.kind === "node") onSummary(body);
  scheduleRender();
}

function onSample(sample) {
  const key = rowKey(sample.node, sample.id);
  // A sample taken before the event that stopped its container, come late.
  if ((state.gone.get(key) ?? -Infinity) >= sample.timestamp) return;
  const row = state.rows.get(key);
  if (row && row.sample.timestamp === sample.timestamp) { debug.duplicates += 1; return; }
  noteTick(sample.node, sample.timestamp);
  state.clockOffset = sample.timestamp - Date.now() / 1000;
  if (row) {
    row.sample = sample;
    row.receivedAt = performance.now();
  } else {
    state.rows.set(key, { key, sample, receivedAt: performance.now(), element: null, busy: false });
  }
  if (!state.summaries) addToSeries(sample);
}

function onEvent(event) {
  if (!GONE_ACTIONS.has(event.action)) return;
  forget(rowKey(event.node, event.id), event.timestamp);
}

function onSummary(summary) {
  state.summaries = true;
  const info = nodeInfo(summary.node);
  info.memoryTotal = summary.memory_total_bytes;
  pushPoint(summary.node, { t: summary.timestamp, cpu: summary.cpu_percent, memory: summary.memory_bytes });
}

/** Without the agents' totals (a non-admin), sum one's own samples per tick. */
function addToSeries(sample) {
  const points = state.series.get(sample.node) ?? [];
  if (points.at(-1)?.synthetic) points.pop();
  const last = points.at(-1);
  if (last && last.t === sample.timestamp) {
    last.cpu += sample.cpu_percent ?? 0;
    last.memory += sample.memory_bytes ?? 0;
  } else {
    pushPoint(sample.node, { t: sample.timestamp, cpu: sample.cpu_percent ?? 0, memory: sample.memory_bytes ?? 0 });
  }
}

function pushPoint(node, point) {
  const points = state.series.get(node) ?? [];
  points.push(point);
  while (points.length && points[0].t < point.t - WINDOW_SECONDS) points.shift();
  state.series.set(node, points);
}

/** Drop a container's row; samples up to `until` (its last, or its stop event) are ignored. */
function forget(key, until) {
  state.gone.set(key, Math.max(state.gone.get(key) ?? -Infinity, until));
  const row = state.rows.get(key);
  if (row) {
    row.element?.remove();
    state.rows.delete(key);
    const node = row.sample.node;
    // Without the agents' totals, a node's sum drops to nothing with its last row.
    const points = state.series.get(node);
    if (!state.summaries && points?.length && ![...state.rows.values()].some((r) => r.sample.node === node)) {
      pushPoint(node, { t: points.at(-1).t + tickOf(node), cpu: 0, memory: 0, synthetic: true });
    }
  }
  scheduleRender();
}

function dropStaleRows() {
  // While disconnected nothing can arrive: keep the last values on show.
  if (!state.connected) return;
  const now = performance.now();
  for (const row of [...state.rows.values()]) {
    if (now - row.receivedAt > STALE_TICKS * tickOf(row.sample.node) * 1000) forget(row.key, row.sample.timestamp);
  }
  const oldest = Date.now() / 1000 - 2 * WINDOW_SECONDS;
  for (const [key, timestamp] of state.gone) if (timestamp < oldest) state.gone.delete(key);
  scheduleRender(); // the charts' window slides on
}

// The connection -------------------------------------------------------------

function setConnection(kind, label, detail = "") {
  const badge = $("#connection");
  const colours = { live: "success", connecting: "secondary", reconnecting: "warning", error: "danger" };
  badge.className = `badge rounded-pill connection-badge text-bg-${colours[kind] ?? "secondary"}`;
  badge.dataset.state = kind;
  badge.querySelector(".connection-label").textContent = label;
  const banner = $("#disconnected");
  banner.classList.toggle("d-none", kind === "live" || (kind === "connecting" && !state.everConnected));
  root.classList.toggle("stale", state.everConnected && kind !== "live");
  if (detail) $("#disconnected-detail").textContent = detail;
  debug.states.push(kind);
}

async function fetchCredentials(client) {
  let delay = 1000;
  for (;;) {
    try {
      return await api("GET", "/monitor/subscription");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) throw error;
      const why = error.error?.message ?? String(error);
      setConnection(state.everConnected ? "reconnecting" : "error",
        state.everConnected ? "disconnected — reconnecting" : "broker unavailable", `${why} Trying again…`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 30_000);
      if (!client.active) throw error;
    }
  }
}

function subscribeAll() {
  // Whatever this connection still holds would be doubled: unsubscribe it
  // first. (Subscriptions of an earlier connection died with it: see dropped.)
  for (const subscription of live.subscriptions.values()) subscription.unsubscribe();
  live.subscriptions.clear();
  live.generation += 1;
  const generation = live.generation;
  live.credentials.bindings.forEach((binding, index) => {
    const destination = `/topic/${binding}`;
    const handler = (message) => { if (generation === live.generation) onMessage(message); };
    live.subscriptions.set(destination, live.client.subscribe(destination, handler, { id: `dockbed-${index}` }));
    debug.subscribeCalls += 1;
  });
}

function connected() {
  debug.connects += 1;
  state.connected = true;
  state.everConnected = true;
  // The rows on show waited out the outage; give each a full grace period.
  const now = performance.now();
  for (const row of state.rows.values()) row.receivedAt = now;
  subscribeAll();
  setConnection("live", "live");
  scheduleRender();
}

function dropped() {
  live.subscriptions.clear();
  if (state.connected) debug.disconnects += 1;
  state.connected = false;
  if (live.client?.active) {
    setConnection(state.everConnected ? "reconnecting" : "connecting",
      state.everConnected ? "disconnected — reconnecting" : "connecting…",
      "The values below are the last ones received.");
  }
  scheduleRender();
}

function connect() {
  const client = new StompJs.Client({
    reconnectDelay: 2500,
    reconnectTimeMode: StompJs.ReconnectionTimeMode.EXPONENTIAL,
    maxReconnectDelay: 20_000,
    connectionTimeout: 8000,
    heartbeatIncoming: 10_000,
    heartbeatOutgoing: 10_000,
    // Asked again before every attempt, so a reconnect follows a changed
    // broker address or password.
    beforeConnect: async (self) => {
      live.credentials = await fetchCredentials(self);
      const { credentials } = live;
      self.brokerURL = credentials.web_stomp_url;
      self.connectHeaders = { login: credentials.username, passcode: credentials.password, host: credentials.vhost };
      state.interval = credentials.interval || state.interval;
    },
    onConnect: connected,
    onWebSocketClose: dropped,
    onStompError: (frame) => {
      const why = frame.headers.message ?? "the broker refused";
      setConnection("error", "refused", `The broker says: ${why}`);
    },
  });
  live.client = client;
  client.activate();
  window.addEventListener("pagehide", () => client.deactivate());
}

// Stopping -------------------------------------------------------------------

tbody.addEventListener("click", async (event) => {
  const button = event.target.closest('[data-action="stop"]');
  const row = button && state.rows.get(button.closest("tr").dataset.key);
  if (!row || row.busy) return;
  const { name, node, timestamp } = row.sample;
  // Rows move as others come and go: the name asked for is the one stopped.
  if (!window.confirm(`Stop ${name} on ${node}?`)) return;
  row.busy = true;
  showBusy(row);
  try {
    const result = await api("POST", `/containers/${encodeURIComponent(name)}/stop?node=${encodeURIComponent(node)}`);
    const why = result?.failed?.[name];
    if (why) throw new Error(why);
    toast(`Stopped ${name}.`);
    forget(row.key, timestamp);
  } catch (error) {
    row.busy = false;
    showBusy(row);
    toast(`${name} was not stopped: ${error.error?.message ?? error.message}`, "danger");
  }
});

function showBusy(row) {
  const button = row.element?.querySelector('[data-action="stop"]');
  if (!button) return;
  button.disabled = row.busy || !row.sample.owner;
  button.querySelector(".spinner-border").classList.toggle("d-none", !row.busy);
  row.element.classList.toggle("busy", row.busy);
}

// The table ------------------------------------------------------------------

function visibleRows() {
  const node = $("#filter-node").value;
  const text = $("#filter-text").value.trim().toLowerCase();
  return [...state.rows.values()]
    .filter((row) => !node || row.sample.node === node)
    .filter((row) => !text || [row.sample.name, row.sample.batch, row.sample.owner, row.sample.id.slice(0, 12)]
      .some((value) => value && value.toLowerCase().includes(text)));
}

function networkTotal(sample) {
  return Object.values(sample.interfaces).reduce((sum, i) => sum + (i.rx_bps ?? 0) + (i.tx_bps ?? 0), 0);
}

function sortRows(rows) {
  const { key, dir } = state.sort;
  const value = (row) => {
    const s = row.sample;
    if (key === "cpu") return s.cpu_percent ?? -1;
    if (key === "memory") return s.memory_bytes ?? -1;
    if (key === "network") return networkTotal(s);
    if (key === "node") return s.node;
    return s.name;
  };
  return rows.sort((a, b) => {
    const left = value(a);
    const right = value(b);
    const order = typeof left === "number" ? left - right : collator.compare(left, right);
    return (order || collator.compare(a.sample.name, b.sample.name)) * dir;
  });
}

function newRowElement(row) {
  const element = document.createElement("tr");
  element.dataset.key = row.key;
  element.dataset.name = row.sample.name;
  element.dataset.node = row.sample.node;
  element.innerHTML = `
    <td class="ps-3"><div class="fw-semibold container-name"></div><div class="small text-body-secondary container-meta"></div></td>
    <td class="font-monospace small container-id"></td>
    <td class="container-node"></td>
    <td class="text-end cpu"><div class="cpu-value"></div>
      <div class="progress cpu-bar" role="progressbar" aria-label="CPU"><div class="progress-bar"></div></div></td>
    <td class="memory"><div class="d-flex justify-content-between gap-2 small">
        <span class="memory-used fw-semibold"></span><span class="memory-limit text-body-secondary"></span></div>
      <div class="progress memory-bar" role="progressbar" aria-label="Memory"><div class="progress-bar"></div></div></td>
    <td class="network small"></td>
    <td class="text-end pe-3"><button class="btn btn-sm btn-outline-danger" type="button" data-action="stop">
      <span class="spinner-border spinner-border-sm d-none" aria-hidden="true"></span><i class="bi bi-stop-fill"></i> Stop</button></td>`;
  row.element = element;
  return element;
}

function setBar(bar, fraction, title) {
  const share = Math.max(0, Math.min(1, fraction || 0));
  const fill = bar.firstElementChild;
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  fill.className = `progress-bar ${share > 0.9 ? "bg-danger" : share > 0.75 ? "bg-warning" : ""}`;
  bar.setAttribute("aria-valuenow", String(Math.round(share * 100)));
  bar.title = title;
}

function updateRowElement(row) {
  const element = row.element ?? newRowElement(row);
  const s = row.sample;
  $(".container-name", element).textContent = s.name;
  const meta = [s.owner ? `owner ${s.owner}` : "not a dockbed container", s.batch ? `batch ${s.batch}` : null].filter(Boolean);
  $(".container-meta", element).textContent = meta.join(" · ");
  const id = $(".container-id", element);
  id.textContent = s.id.slice(0, 12);
  id.title = s.id;
  $(".container-node", element).textContent = s.node;

  const cpus = s.online_cpus || 1;
  $(".cpu-value", element).textContent = percent(s.cpu_percent);
  $(".cpu-value", element).title = s.cpu_percent === null ? "first sample: no rate yet" : "";
  setBar($(".cpu-bar", element), (s.cpu_percent ?? 0) / (100 * cpus), `of ${cpus} CPU${cpus === 1 ? "" : "s"}`);

  $(".memory-used", element).textContent = bytes(s.memory_bytes);
  $(".memory-limit", element).textContent = `of ${bytes(s.memory_limit_bytes)}`;
  const share = s.memory_limit_bytes ? (s.memory_bytes ?? 0) / s.memory_limit_bytes : 0;
  setBar($(".memory-bar", element), share, `${(share * 100).toFixed(1)} % of the limit`);

  const interfaces = Object.entries(s.interfaces).sort(([a], [b]) => collator.compare(a, b));
  $(".network", element).innerHTML = interfaces.length
    ? interfaces.map(([name, i]) => `<div class="interface" data-interface="${escapeHtml(name)}">
        <span class="interface-name">${escapeHtml(name)}</span>
        <span class="rx" title="received; ${escapeHtml(bytes(i.rx_bytes))} in all"><i class="bi bi-arrow-down-short"></i>${escapeHtml(rate(i.rx_bps))}</span>
        <span class="tx" title="sent; ${escapeHtml(bytes(i.tx_bytes))} in all"><i class="bi bi-arrow-up-short"></i>${escapeHtml(rate(i.tx_bps))}</span></div>`).join("")
    : `<span class="text-body-tertiary">no interfaces</span>`;
  const button = $('[data-action="stop"]', element);
  button.title = s.owner ? `Stop ${s.name}` : "Not a dockbed container: stop it with docker on its node";
  showBusy(row);
  return element;
}

function renderTable() {
  const rows = sortRows(visibleRows());
  rows.forEach((row, index) => {
    const element = updateRowElement(row);
    if (tbody.children[index] !== element) tbody.insertBefore(element, tbody.children[index] ?? null);
  });
  const shown = new Set(rows.map((row) => row.element));
  for (const element of [...tbody.children]) if (!shown.has(element)) element.remove();

  const node = $("#filter-node").value;
  $("#monitor-empty").classList.toggle("d-none", rows.length > 0);
  $("#monitor-empty-text").textContent = !state.connected && !state.everConnected
    ? "Connecting to the broker…"
    : state.rows.size && !rows.length ? "No running container matches the filter."
      : `No running containers${node ? ` on ${node}` : ""}${state.connected ? "" : " (disconnected)"}.`;
  $("#rows-shown").textContent = `${rows.length} of ${state.rows.size} shown`;
  const ticks = [...new Set(rows.map((row) => Number(tickOf(row.sample.node).toFixed(1))))].sort((a, b) => a - b);
  if (ticks.length) $("#tick-seconds").textContent = ticks.length === 1 ? `${ticks[0]}` : `${ticks[0]}–${ticks.at(-1)}`;

  const sum = (pick) => rows.reduce((total, row) => total + (pick(row.sample) ?? 0), 0);
  const interfaceSum = (field) => sum((s) => Object.values(s.interfaces).reduce((t, i) => t + (i[field] ?? 0), 0));
  $("#stat-containers").textContent = rows.length;
  $("#stat-cpu").textContent = rows.length ? percent(sum((s) => s.cpu_percent)) : "–";
  $("#stat-memory").textContent = rows.length ? bytes(sum((s) => s.memory_bytes)) : "–";
  $("#stat-rx").textContent = rows.length ? rate(interfaceSum("rx_bps")) : "–";
  $("#stat-tx").textContent = rows.length ? rate(interfaceSum("tx_bps")) : "–";
  const latest = Math.max(...rows.map((row) => row.sample.timestamp));
  $("#updated").textContent = rows.length ? `Last sample ${formatTime(latest)}.` : "";
  document.querySelectorAll("#monitor-table th.sortable").forEach((th) => {
    th.classList.toggle("sorted-asc", th.dataset.sort === state.sort.key && state.sort.dir === 1);
    th.classList.toggle("sorted-desc", th.dataset.sort === state.sort.key && state.sort.dir === -1);
  });
}

// The charts -----------------------------------------------------------------

function lineChart(canvas, format) {
  return new Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      elements: { point: { radius: 0, hitRadius: 8 }, line: { borderWidth: 2, tension: 0.2 } },
      scales: {
        x: { type: "linear", ticks: { callback: (value) => clock(value), maxTicksLimit: 6, maxRotation: 0 }, grid: { display: false } },
        y: { beginAtZero: true, ticks: { callback: (value) => format(value), maxTicksLimit: 7 } },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
        tooltip: { callbacks: { title: (items) => clock(items[0].parsed.x), label: (item) => ` ${item.dataset.label}: ${format(item.parsed.y)}` } },
      },
    },
  });
}

const charts = {
  cpu: lineChart($("#cpu-chart"), (value) => `${Number(value).toFixed(value < 10 ? 1 : 0)} %`),
  memory: lineChart($("#memory-chart"), (value) => bytes(value).replace(/\.0+ /, " ")),
};

/** A step for a bytes axis up to `highest` that reads well: 1, 2 or 5 of a binary unit. */
function binaryStep(highest) {
  if (!highest) return undefined;
  const unit = 1024 ** Math.min(4, Math.max(0, Math.floor(Math.log(highest) / Math.log(1024))));
  const rough = highest / unit / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const nice = [1, 2, 5, 10].find((factor) => factor * magnitude >= rough) * magnitude;
  return nice * unit;
}

function renderCharts() {
  const selected = $("#filter-node").value;
  const scope = state.summaries ? "node total" : "your containers";
  $("#cpu-chart-scope").textContent = `· ${scope}${selected ? ` on ${selected}` : ""}`;
  $("#memory-chart-scope").textContent = `· ${scope}${selected ? ` on ${selected}` : ""}`;
  const total = selected ? state.nodes.get(selected)?.memoryTotal : null;
  $("#memory-chart-total").textContent = total ? `of ${bytes(total)} · last 5 minutes` : "in use without file cache · last 5 minutes";

  // The window grows to five minutes from the first point, at least one wide.
  let latest = 0;
  let earliest = Infinity;
  for (const points of state.series.values()) {
    latest = Math.max(latest, points.at(-1)?.t ?? 0);
    earliest = Math.min(earliest, points[0]?.t ?? Infinity);
  }
  if (latest && state.connected) latest = Math.max(latest, Date.now() / 1000 + state.clockOffset);
  const span = Math.min(WINDOW_SECONDS, Math.max(60, latest - earliest));
  for (const [name, chart] of Object.entries(charts)) {
    chart.data.datasets = [...state.series.entries()]
      .filter(([node]) => !selected || node === selected)
      .map(([node, points]) => {
        const colour = nodeInfo(node).colour;
        return {
          label: node, borderColor: colour, backgroundColor: `${colour}22`, fill: "origin",
          data: points.map((point) => ({ x: point.t * 1000, y: point[name] })),
        };
      });
    if (latest) {
      chart.options.scales.x.min = (latest - span) * 1000;
      chart.options.scales.x.max = latest * 1000;
    }
    if (name === "memory") {
      const highest = Math.max(0, ...chart.data.datasets.flatMap((set) => set.data.map((point) => point.y)));
      chart.options.scales.y.ticks.stepSize = binaryStep(highest);
    }
    chart.update("none");
  }
}

// Rendering and filters ------------------------------------------------------

function scheduleRender() {
  if (state.renderTimer !== null) return;
  state.renderTimer = setTimeout(() => {
    state.renderTimer = null;
    renderTable();
    renderCharts();
  }, RENDER_EVERY_MS);
}

function addNodeOption(node) {
  const select = $("#filter-node");
  if ([...select.options].some((option) => option.value === node)) return;
  select.append(new Option(node, node));
}

function restoreFilter() {
  const select = $("#filter-node");
  const saved = localStorage.getItem("dockbed.monitor.node");
  if (saved !== null) {
    addNodeOption(saved || "");
    select.value = saved;
  }
  select.addEventListener("change", () => { localStorage.setItem("dockbed.monitor.node", select.value); scheduleRender(); });
  $("#filter-text").addEventListener("input", scheduleRender);
}

document.querySelectorAll("#monitor-table th.sortable").forEach((th) => th.addEventListener("click", () => {
  const key = th.dataset.sort;
  const numeric = ["cpu", "memory", "network"].includes(key);
  state.sort = state.sort.key === key ? { key, dir: -state.sort.dir } : { key, dir: numeric ? -1 : 1 };
  scheduleRender();
}));

restoreFilter();
setInterval(dropStaleRows, 1000);
renderTable();
connect();
