// The control page: create one container or a batch, list them, act on them,
// second interfaces and experiment networks. Everything goes through the
// REST API; the table is drawn here from one GET /containers, so 300 rows cost
// one request, and is redrawn after every action instead of reloading.
import {
  api, ApiError, busy, clearErrors, confirmAction, currentNode, escapeHtml, formatTime,
  formValues, ipNumber, me, onNodeChange, showError, toast,
} from "./api.js";

const $ = (selector, root = document) => root.querySelector(selector);
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
// Docker's own networks: listed, never offered for removal.
const PREDEFINED_NETWORKS = new Set(["bridge", "host", "none"]);

const state = {
  node: currentNode(),
  containers: [],
  report: null,
  networks: [],
  sort: { key: "name", dir: 1 },
  selected: new Set(),
  busy: new Set(),
  jobRunning: false,
  loading: null,
};

const createForm = $("#create-form");
const batchForm = $("#batch-form");
const nicForm = $("#nic-form");
const networkForm = $("#network-form");
const keysBox = $("#new-card .card-footer");
const keysInput = $("#shared-keys");
const tbody = $("#containers-body");

// Loading --------------------------------------------------------------------

async function refreshContainers() {
  // One request at a time; a refresh asked for meanwhile waits for it.
  if (state.loading) return state.loading;
  state.loading = (async () => {
    try {
      const query = new URLSearchParams({ all: "true" });
      if (state.node) query.set("node", state.node);
      state.containers = await api("GET", `/containers?${query}`);
      const names = new Set(state.containers.map((c) => c.name));
      for (const name of [...state.selected]) if (!names.has(name)) state.selected.delete(name);
      $("#containers-updated").textContent = `updated ${formatTime(Date.now() / 1000)}`;
      render();
    } catch (error) {
      if (error instanceof ApiError && error.status !== 401) toast(error.error.message, "danger");
    } finally {
      state.loading = null;
    }
  })();
  return state.loading;
}

async function refreshAddresses() {
  if (!state.node) return;
  try {
    state.report = await api("GET", `/nodes/${encodeURIComponent(state.node)}/addresses`);
  } catch (error) {
    $("#node-summary").textContent = error.error?.message ?? "The node does not answer.";
    return;
  }
  const report = state.report;
  $("#node-summary").innerHTML = `Node <strong>${escapeHtml(report.node)}</strong> · lab network
    <code>${escapeHtml(report.network)}</code> ${escapeHtml(report.subnet)} · pool
    <span class="font-monospace">${escapeHtml(report.pool_first)}–${escapeHtml(report.pool_last)}</span>`;
  $("#stat-free").textContent = report.free;

  const select = $("#create-ip");
  const chosen = select.value;
  const options = [`<option value="">Next free${report.next_free ? ` (${report.next_free})` : " — none left"}</option>`];
  for (const address of report.free_addresses) options.push(`<option value="${address}">${address}</option>`);
  select.innerHTML = options.join("");
  if (report.free_addresses.includes(chosen)) select.value = chosen;
  $("#free-addresses").innerHTML = ["auto", ...report.free_addresses].map((a) => `<option value="${a}">`).join("");
  const runs = freeRuns(report.free_addresses);
  const longest = runs.reduce((best, run) => (run.length > best.length ? run : best), []);
  $("#batch-free-hint").textContent = longest.length
    ? `Empty first address: the first free run. Longest free run ${longest[0]}–${longest.at(-1)} (${longest.length} addresses).`
    : "No free address left in the pool.";
}

function freeRuns(addresses) {
  const runs = [];
  for (const address of addresses) {
    const run = runs.at(-1);
    if (run && ipNumber(address) === ipNumber(run.at(-1)) + 1) run.push(address);
    else runs.push([address]);
  }
  return runs;
}

async function refreshImages() {
  if (!state.node) return;
  try {
    const images = await api("GET", `/nodes/${encodeURIComponent(state.node)}/images`);
    for (const select of [$("#create-image"), $("#batch-image")]) {
      const chosen = select.value || select.dataset.default;
      select.innerHTML = images.map((image) => `<option>${escapeHtml(image)}</option>`).join("")
        || `<option value="">no images on this node</option>`;
      if (images.includes(chosen)) select.value = chosen;
    }
  } catch (error) {
    showError(createForm, error);
  }
}

async function refreshNetworks() {
  const notice = $("#networks-unavailable");
  const body = $("#networks-table tbody");
  try {
    const query = state.node ? `?node=${encodeURIComponent(state.node)}` : "";
    state.networks = await api("GET", `/networks${query}`);
    notice.classList.add("d-none");
    networkForm.querySelectorAll("input, select, button").forEach((el) => { el.disabled = false; });
    syncParentInput();
  } catch (error) {
    state.networks = [];
    notice.textContent = error.status === 404 || error.status === 405
      ? "This server does not offer experiment networks yet."
      : error.error?.message ?? "Networks could not be listed.";
    notice.classList.remove("d-none");
    body.innerHTML = "";
    networkForm.querySelectorAll("input, select, button").forEach((el) => { el.disabled = true; });
    fillNetworkChoices();
    return;
  }
  body.innerHTML = state.networks.length
    ? state.networks.map((net) => `<tr data-network="${escapeHtml(net.name)}">
        <td class="fw-semibold">${escapeHtml(net.name)}${net.is_lab ? ` <span class="badge text-bg-info">lab</span>` : ""}
          ${Array.isArray(net.containers) ? `<div class="small text-body-secondary fw-normal">${net.containers.length} container${net.containers.length === 1 ? "" : "s"}</div>` : ""}</td>
        <td>${escapeHtml(net.driver ?? "")}${net.parent ? ` <span class="text-body-secondary">on ${escapeHtml(net.parent)}</span>` : ""}</td>
        <td class="font-monospace">${escapeHtml(net.subnet ?? "")}</td>
        <td class="font-monospace">${escapeHtml(net.gateway ?? "")}</td>
        <td class="text-end">${net.is_lab || PREDEFINED_NETWORKS.has(net.name) ? "" : `<button class="btn btn-sm btn-link text-danger p-0" type="button" data-remove-network="${escapeHtml(net.name)}"
            title="Remove network ${escapeHtml(net.name)}"><i class="bi bi-trash"></i></button>`}</td></tr>`).join("")
    : `<tr><td colspan="5" class="text-body-tertiary">No experiment networks on this node.</td></tr>`;
  fillNetworkChoices();
}

function fillNetworkChoices() {
  const names = new Set(state.networks.map((net) => net.name));
  if (state.report) names.add(state.report.network);
  $("#network-names").innerHTML = [...names].map((name) => `<option value="${escapeHtml(name)}">`).join("");
}

async function loadSavedKeys() {
  try {
    const { keys } = await api("GET", "/users/me/keys");
    if (!keysInput.value.trim()) keysInput.value = keys.join("\n");
  } catch { /* the textarea stays empty: the server uses the saved keys anyway */ }
}

// The table ------------------------------------------------------------------

function sortValue(container, key) {
  switch (key) {
    case "address": return ipNumber(Object.values(container.addresses)[0]);
    case "created": return container.created;
    case "state": return container.state;
    default: return container[key] ?? "";
  }
}

function visibleContainers() {
  const text = $("#filter-text").value.trim().toLowerCase();
  const wanted = $("#filter-state").value;
  const batch = $("#filter-batch").value;
  const { key, dir } = state.sort;
  return state.containers
    .filter((c) => !wanted || (wanted === "running") === (c.state === "running"))
    .filter((c) => !batch || c.batch === batch)
    .filter((c) => !text || [c.name, c.state, c.batch, c.owner, c.image, ...Object.values(c.addresses), ...Object.keys(c.addresses)]
      .some((value) => value && String(value).toLowerCase().includes(text)))
    .sort((a, b) => {
      const left = sortValue(a, key);
      const right = sortValue(b, key);
      const order = typeof left === "number" && typeof right === "number" ? left - right : collator.compare(String(left), String(right));
      return (order || collator.compare(a.name, b.name)) * dir;
    });
}

function stateBadge(container) {
  const colour = container.state === "running" ? "success" : container.state === "exited" ? "warning" : "secondary";
  const label = container.state === "exited" ? "stopped" : container.state;
  return `<span class="badge rounded-pill bg-${colour}-subtle text-${colour}-emphasis border border-${colour}-subtle" title="${escapeHtml(container.status)}">
    <span class="state-dot bg-${colour}"></span>${escapeHtml(label)}</span>`;
}

function rowHtml(c) {
  const running = c.state === "running";
  const addresses = Object.entries(c.addresses).sort(([a], [b]) => (a === state.report?.network ? -1 : b === state.report?.network ? 1 : collator.compare(a, b)))
    .map(([net, ip]) => `<div><span class="net">${escapeHtml(net)}</span> ${escapeHtml(ip)}</div>`).join("") || `<span class="text-body-tertiary">—</span>`;
  const isBusy = state.busy.has(c.name);
  return `<tr data-name="${escapeHtml(c.name)}" class="${isBusy ? "busy" : ""}">
    <td class="ps-3"><input class="form-check-input row-select" type="checkbox" aria-label="Select ${escapeHtml(c.name)}" ${state.selected.has(c.name) ? "checked" : ""}></td>
    <td class="fw-semibold container-name text-truncate" title="${escapeHtml(c.name)}">${escapeHtml(c.name)}</td>
    <td class="container-state">${isBusy ? `<span class="spinner-border spinner-border-sm text-secondary"></span>` : stateBadge(c)}</td>
    <td class="address">${addresses}</td>
    <td>${c.batch ? `<span class="badge text-bg-light border batch-link" data-batch="${escapeHtml(c.batch)}" title="Show only this batch">${escapeHtml(c.batch)}</span>` : ""}</td>
    <td>${escapeHtml(c.owner ?? "")}</td>
    <td class="small text-body-secondary text-truncate image-cell" title="${escapeHtml(c.image)}">${escapeHtml(c.image)}</td>
    <td class="small text-body-secondary" title="${new Date(c.created * 1000).toLocaleString()}">${formatTime(c.created)}</td>
    <td class="text-end pe-3">
      <div class="btn-group btn-group-sm" role="group" aria-label="Actions on ${escapeHtml(c.name)}">
        ${running
          ? `<button class="btn btn-outline-warning" type="button" data-action="stop" title="Stop"><i class="bi bi-stop-fill"></i></button>`
          : `<button class="btn btn-outline-success" type="button" data-action="start" title="Start"><i class="bi bi-play-fill"></i></button>`}
        <button class="btn btn-outline-secondary" type="button" data-action="interfaces" title="Interfaces"><i class="bi bi-ethernet"></i></button>
        <button class="btn btn-outline-danger" type="button" data-action="remove" title="Remove"><i class="bi bi-trash"></i></button>
      </div>
    </td></tr>`;
}

function render() {
  const rows = visibleContainers();
  tbody.innerHTML = rows.length
    ? rows.map(rowHtml).join("")
    : `<tr><td colspan="9" class="text-center text-body-tertiary py-5">${state.containers.length
      ? "No container matches the filter."
      : "No containers yet. Create one, or a batch, on the left."}</td></tr>`;

  const running = state.containers.filter((c) => c.state === "running").length;
  $("#stat-running").textContent = running;
  $("#stat-stopped").textContent = state.containers.length - running;
  const batches = [...new Set(state.containers.map((c) => c.batch).filter(Boolean))].sort(collator.compare);
  $("#stat-batches").textContent = batches.length;
  $("#containers-count").textContent = rows.length === state.containers.length ? rows.length : `${rows.length} of ${state.containers.length}`;

  const batchSelect = $("#filter-batch");
  const chosen = batchSelect.value;
  batchSelect.innerHTML = `<option value="">All batches</option>` + batches.map((b) => `<option value="${escapeHtml(b)}">${escapeHtml(b)}</option>`).join("");
  batchSelect.value = batches.includes(chosen) ? chosen : "";
  $("#batch-actions").classList.toggle("d-none", !batchSelect.value);
  $("#batch-actions-name").textContent = batchSelect.value;

  $("#selection-actions").classList.toggle("d-none", state.selected.size === 0);
  $("#selection-count").textContent = state.selected.size;
  const shown = rows.map((c) => c.name);
  const allBox = $("#select-all");
  allBox.checked = shown.length > 0 && shown.every((n) => state.selected.has(n));
  allBox.indeterminate = !allBox.checked && shown.some((n) => state.selected.has(n));

  document.querySelectorAll("th.sortable").forEach((th) => {
    th.classList.toggle("sorted-asc", th.dataset.sort === state.sort.key && state.sort.dir === 1);
    th.classList.toggle("sorted-desc", th.dataset.sort === state.sort.key && state.sort.dir === -1);
  });
  $("#container-names").innerHTML = state.containers.map((c) => `<option value="${escapeHtml(c.name)}">`).join("");
  describeNic();
}

// Acting on containers -------------------------------------------------------

async function act(action, selection, label) {
  if (action === "remove") {
    const what = selection.batch ? `every container of batch <strong>${escapeHtml(selection.batch)}</strong>`
      : selection.names.length === 1 ? `<strong>${escapeHtml(selection.names[0])}</strong>`
        : `<strong>${selection.names.length}</strong> containers`;
    const ok = await confirmAction("Remove containers?", `This removes ${what} and frees ${selection.batch || selection.names.length > 1 ? "their addresses" : "its address"}. It cannot be undone.`, "Remove");
    if (!ok) return;
  }
  const names = selection.batch ? state.containers.filter((c) => c.batch === selection.batch).map((c) => c.name) : selection.names;
  names.forEach((name) => state.busy.add(name));
  render();
  try {
    const result = await api("POST", `/actions/${action}`, { ...selection, node: state.node });
    const failed = Object.entries(result.failed);
    if (result.done.length) toast(`${label}: ${result.done.length === 1 ? result.done[0] : `${result.done.length} containers`}`);
    for (const [name, why] of failed) toast(`${name}: ${why}`, "danger");
    if (action === "remove") result.done.forEach((name) => state.selected.delete(name));
  } catch (error) {
    toast(error.error?.message ?? String(error), "danger");
  } finally {
    names.forEach((name) => state.busy.delete(name));
    await Promise.all([refreshContainers(), refreshAddresses()]);
  }
}

const pastTense = { start: "Started", stop: "Stopped", remove: "Removed" };

tbody.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-name]");
  if (!row) return;
  const name = row.dataset.name;
  const batchLink = event.target.closest("[data-batch]");
  if (batchLink) {
    $("#filter-batch").value = batchLink.dataset.batch;
    render();
    return;
  }
  const button = event.target.closest("[data-action]");
  if (!button || state.busy.has(name)) return;
  const action = button.dataset.action;
  if (action === "interfaces") {
    nicForm.elements.name.value = name;
    bootstrap.Tab.getOrCreateInstance($("#nic-tab")).show();
    describeNic();
    $("#networks-card").scrollIntoView({ behavior: "smooth", block: "center" });
    nicForm.elements.network.focus();
    return;
  }
  act(action, { names: [name] }, pastTense[action]);
});

tbody.addEventListener("change", (event) => {
  if (!event.target.classList.contains("row-select")) return;
  const name = event.target.closest("tr").dataset.name;
  if (event.target.checked) state.selected.add(name); else state.selected.delete(name);
  render();
});

$("#select-all").addEventListener("change", (event) => {
  for (const c of visibleContainers()) {
    if (event.target.checked) state.selected.add(c.name); else state.selected.delete(c.name);
  }
  render();
});

document.querySelectorAll("[data-selection-action]").forEach((button) => button.addEventListener("click", () => {
  const action = button.dataset.selectionAction;
  act(action, { names: [...state.selected] }, pastTense[action]);
}));
$("#selection-clear").addEventListener("click", () => { state.selected.clear(); render(); });

document.querySelectorAll("[data-batch-action]").forEach((button) => button.addEventListener("click", () => {
  const action = button.dataset.batchAction;
  const batch = $("#filter-batch").value;
  act(action, { batch }, `${pastTense[action]} batch ${batch}`);
}));

document.querySelectorAll("th.sortable").forEach((th) => th.addEventListener("click", () => {
  const key = th.dataset.sort;
  state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
  render();
}));

let filterTimer;
$("#filter-text").addEventListener("input", () => { clearTimeout(filterTimer); filterTimer = setTimeout(render, 120); });
$("#filter-state").addEventListener("change", render);
$("#filter-batch").addEventListener("change", render);
$("#refresh").addEventListener("click", () => Promise.all([refreshContainers(), refreshAddresses(), refreshNetworks()]));

// Creating -------------------------------------------------------------------

function keys() {
  return keysInput.value.split("\n").map((k) => k.trim()).filter(Boolean);
}

function limitsOf(values) {
  return {
    cpus: values.cpus === null ? null : Number(values.cpus),
    memory: values.memory,
    pids: values.pids === null ? null : Number(values.pids),
  };
}

async function saveKeysIfAsked() {
  if (!$("#save-keys").checked) return;
  await api("PUT", "/users/me/keys", { keys: keys() });
  $("#save-keys").checked = false;
}

createForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const button = $("#create-submit");
  busy(button, async () => {
    clearErrors(createForm, keysBox);
    const values = formValues(createForm);
    const body = { name: values.name ?? "", image: values.image, ip: values.ip, ...limitsOf(values), ssh_keys: keys(), node: state.node };
    try {
      await saveKeysIfAsked();
      const created = await api("POST", "/containers", body);
      toast(`${created.name} runs at ${Object.values(created.addresses)[0] ?? "no address"}`);
      createForm.elements.name.value = "";
      createForm.elements.ip.value = "";
    } catch (error) {
      showError(createForm, error, [keysBox]);
    }
    await Promise.all([refreshContainers(), refreshAddresses()]);
  });
});

function batchBody() {
  const values = formValues(batchForm);
  return {
    prefix: values.prefix ?? "",
    count: values.count === null ? 0 : Number(values.count),
    base_ip: values.base_ip ?? "auto",
    image: values.image,
    ...limitsOf(values),
    node: state.node,
  };
}

let previewTimer;
let previewSequence = 0;

function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(preview, 300);
}

async function preview() {
  const body = batchBody();
  const list = $("#batch-preview-list");
  const label = $("#batch-preview-state");
  if (!body.prefix) {
    clearErrors(batchForm);
    list.innerHTML = `<span class="text-body-tertiary small">Type a prefix to see the names and addresses.</span>`;
    label.textContent = "";
    return;
  }
  const sequence = ++previewSequence;
  label.innerHTML = `<span class="spinner-border spinner-border-sm"></span>`;
  try {
    const plan = await api("POST", "/batches/preview", body);
    if (sequence !== previewSequence) return;
    clearErrors(batchForm);
    list.innerHTML = plan.containers.map((item) =>
      `<span class="preview-item" data-name="${escapeHtml(item.name)}"><span>${escapeHtml(item.name)}</span><span class="ip">${escapeHtml(item.ip)}</span></span>`).join("");
    const first = plan.containers[0];
    const last = plan.containers.at(-1);
    label.textContent = `${plan.containers.length} on ${plan.node}, ${first.ip}${plan.containers.length > 1 ? `–${last.ip}` : ""}`;
  } catch (error) {
    if (sequence !== previewSequence) return;
    showError(batchForm, error);
    list.innerHTML = `<span class="text-danger small"><i class="bi bi-x-circle"></i> Nothing would be created: fix the field marked above.</span>`;
    label.textContent = "";
  }
}

["input", "change"].forEach((type) => batchForm.addEventListener(type, (event) => {
  if (["prefix", "count", "base_ip", "image", "cpus", "memory", "pids"].includes(event.target.name)) schedulePreview();
}));

batchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.jobRunning) return;
  const button = $("#batch-submit");
  clearTimeout(previewTimer);
  busy(button, async () => {
    clearErrors(batchForm, keysBox);
    const body = { ...batchBody(), ssh_keys: keys() };
    let job;
    try {
      await saveKeysIfAsked();
      job = await api("POST", "/batches", body);
    } catch (error) {
      showError(batchForm, error, [keysBox]);
      $("#batch-preview-list").innerHTML = `<span class="text-danger small"><i class="bi bi-x-circle"></i> Nothing was created: fix what is marked above.</span>`;
      $("#batch-preview-state").textContent = "";
      refreshLists();
      return;
    }
    state.jobRunning = true;
    try { await follow(job); } finally { state.jobRunning = false; }
  });
});

function refreshLists() { refreshContainers(); refreshAddresses(); }

/** Show a batch's progress until its job ends; the table fills in meanwhile. */
async function follow(job) {
  const panel = $("#batch-progress");
  const bar = $(".progress-bar", panel);
  panel.classList.remove("d-none");
  bar.className = "progress-bar progress-bar-striped progress-bar-animated";
  $("#batch-progress-label").textContent = `Creating batch ${job.containers[0]?.batch ?? batchBody().prefix}…`;
  let lastRefresh = 0;
  while (true) {
    const percent = job.total ? Math.round((100 * job.done) / job.total) : 100;
    bar.style.width = `${percent}%`;
    bar.parentElement.setAttribute("aria-valuenow", String(percent));
    $("#batch-progress-count").textContent = `${job.done} of ${job.total}`;
    if (job.state !== "running") break;
    if (Date.now() - lastRefresh > 1500) { lastRefresh = Date.now(); refreshContainers(); }
    await new Promise((resolve) => setTimeout(resolve, 400));
    try {
      job = await api("GET", `/jobs/${job.id}`);
    } catch (error) {
      showError(batchForm, error);
      break;
    }
  }
  bar.classList.remove("progress-bar-animated", "progress-bar-striped");
  if (job.state === "succeeded") {
    bar.classList.add("bg-success");
    $("#batch-progress-label").textContent = "Batch created";
    toast(`Batch ${batchBody().prefix}: ${job.done} containers running`);
    batchForm.elements.prefix.value = "";
    batchForm.elements.base_ip.value = "";
    preview();
    setTimeout(() => panel.classList.add("d-none"), 2500);
  } else if (job.state === "failed") {
    bar.classList.add("bg-danger");
    $("#batch-progress-label").textContent = "Batch failed and was rolled back";
    showError(batchForm, new ApiError(409, job.error));
  }
  await Promise.all([refreshContainers(), refreshAddresses()]);
}

// Second interfaces ----------------------------------------------------------

function describeNic() {
  const name = nicForm.elements.name.value.trim();
  const container = state.containers.find((c) => c.name === name);
  $("#nic-current").innerHTML = container
    ? "Now: " + Object.entries(container.addresses).map(([net, ip]) => `<code>${escapeHtml(net)}</code> ${escapeHtml(ip)}`).join(", ")
    : "";
}

nicForm.elements.name.addEventListener("input", describeNic);

async function nicAction(kind) {
  clearErrors(nicForm);
  const values = formValues(nicForm);
  if (!values.name) return showError(nicForm, new ApiError(422, { message: "Name the container.", field: "name" }));
  if (!values.network) return showError(nicForm, new ApiError(422, { message: "Name the network.", field: "network" }));
  const query = state.node ? `?node=${encodeURIComponent(state.node)}` : "";
  const base = `/containers/${encodeURIComponent(values.name)}/networks`;
  const item = `${base}/${encodeURIComponent(values.network)}${query}`;
  try {
    if (kind === "add") {
      await api("POST", `${base}${query}`, { network: values.network, ip: values.ip });
      toast(`${values.name} is on ${values.network}`);
    } else if (kind === "readdress") {
      if (!values.ip) return showError(nicForm, new ApiError(422, { message: "Give the new address.", field: "ip" }));
      await api("PUT", item, { ip: values.ip });
      toast(`${values.name} is at ${values.ip} on ${values.network}`);
    } else {
      await api("DELETE", item);
      toast(`${values.name} left ${values.network}`);
    }
    nicForm.elements.ip.value = "";
  } catch (error) {
    showError(nicForm, error);
  }
  await Promise.all([refreshContainers(), refreshAddresses()]);
}

nicForm.addEventListener("submit", (event) => { event.preventDefault(); nicAction("add"); });
nicForm.querySelectorAll("button[type=button][data-nic]").forEach((button) => button.addEventListener("click", () => nicAction(button.dataset.nic)));

// Experiment networks --------------------------------------------------------

function syncParentInput() {
  const macvlan = networkForm.elements.driver.value === "macvlan";
  networkForm.elements.parent.disabled = !macvlan;
  if (!macvlan) networkForm.elements.parent.value = "";
}
networkForm.elements.driver.addEventListener("change", syncParentInput);

networkForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(networkForm);
  const values = formValues(networkForm);
  const body = { name: values.name ?? "", subnet: values.subnet ?? "", driver: values.driver, parent: values.parent ?? null, gateway: values.gateway, node: state.node };
  try {
    await api("POST", "/networks", body);
    toast(`Network ${body.name} created`);
    networkForm.reset();
    syncParentInput();
  } catch (error) {
    showError(networkForm, error);
  }
  await refreshNetworks();
});

$("#networks-table").addEventListener("click", async (event) => {
  const button = event.target.closest("[data-remove-network]");
  if (!button) return;
  const name = button.dataset.removeNetwork;
  if (!await confirmAction("Remove network?", `Remove the network <strong>${escapeHtml(name)}</strong>? Containers must have left it first.`, "Remove")) return;
  try {
    await api("DELETE", `/networks/${encodeURIComponent(name)}${state.node ? `?node=${encodeURIComponent(state.node)}` : ""}`);
    toast(`Network ${name} removed`);
  } catch (error) {
    showError(networkForm, error);
  }
  await refreshNetworks();
});

// Start ----------------------------------------------------------------------

document.addEventListener("dockbed:keys", (event) => { keysInput.value = event.detail.join("\n"); });

onNodeChange((node) => {
  state.node = node;
  state.selected.clear();
  refreshAll();
  schedulePreview();
});

function refreshAll() {
  return Promise.all([refreshContainers(), refreshAddresses(), refreshImages(), refreshNetworks()]);
}

state.node = currentNode();
refreshAll();
loadSavedKeys();
// Others act too (the CLI, other pages): keep the table fresh while visible.
setInterval(() => { if (!document.hidden && !state.jobRunning) refreshContainers(); }, 10000);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshLists(); });
window.dockbedControl = { state, render, refresh: refreshAll, me };
