// The audit log page (admins): newest first, filters, live updates, paging back.
import { api, escapeHtml, formatTime, toast } from "./api.js";

const filter = document.getElementById("audit-filter");
const tbody = document.querySelector("#audit-table tbody");
const more = document.getElementById("audit-more");
const PAGE = 100;
let entries = [];

const outcomeBadge = {
  ok: "bg-success-subtle text-success-emphasis border-success-subtle",
  refused: "bg-warning-subtle text-warning-emphasis border-warning-subtle",
  failed: "bg-danger-subtle text-danger-emphasis border-danger-subtle",
};

function query(before) {
  const params = new URLSearchParams({ limit: String(PAGE) });
  for (const [key, value] of new FormData(filter)) if (String(value).trim()) params.set(key, String(value).trim());
  if (before) params.set("before", String(before));
  return `/audit?${params}`;
}

function rowHtml(entry) {
  const details = entry.details ?? {};
  const error = details.error?.message;
  return `<tr data-id="${entry.id}">
    <td class="ps-3 small text-nowrap" title="${escapeHtml(new Date(entry.at).toLocaleString())}">${formatTime(entry.at)}</td>
    <td class="fw-semibold">${escapeHtml(entry.actor)}</td>
    <td><code>${escapeHtml(entry.action)}</code><div class="small text-body-secondary font-monospace">${escapeHtml(details.request ?? "")}</div></td>
    <td class="small">${escapeHtml(entry.target ?? "")}</td>
    <td><span class="badge border ${outcomeBadge[entry.outcome] ?? ""}">${escapeHtml(entry.outcome)}</span> <span class="small text-body-secondary">${entry.status}</span>
      ${error ? `<div class="small text-body-secondary text-truncate" style="max-width: 18rem" title="${escapeHtml(error)}">${escapeHtml(error)}</div>` : ""}</td>
    <td class="audit-details small"><details><summary class="text-body-secondary">JSON</summary><pre>${escapeHtml(JSON.stringify(details, null, 2))}</pre></details></td>
  </tr>`;
}

function render() {
  tbody.innerHTML = entries.length ? entries.map(rowHtml).join("")
    : `<tr><td colspan="6" class="text-center text-body-tertiary py-4">No entries match.</td></tr>`;
}

async function reload() {
  try {
    entries = await api("GET", query());
    more.disabled = entries.length < PAGE;
    render();
  } catch (error) { toast(error.error?.message ?? String(error), "danger"); }
}

more.addEventListener("click", async () => {
  const older = await api("GET", query(entries.at(-1)?.id));
  entries = entries.concat(older);
  more.disabled = older.length < PAGE;
  render();
});

let timer;
filter.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(reload, 250); });
filter.addEventListener("submit", (event) => { event.preventDefault(); reload(); });
setInterval(() => {
  // Live: only the first page is redrawn, and not while a row is opened.
  if (document.getElementById("audit-live").checked && !document.hidden && !tbody.querySelector("details[open]") && entries.length <= PAGE) reload();
}, 5000);
reload();
