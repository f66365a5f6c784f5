// dockbed's pages talk to the REST API through this module: one fetch wrapper
// that sends the session's CSRF token, turns error bodies into ApiError, and
// helpers that show an error next to the field it names.

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const userMeta = document.querySelector('meta[name="dockbed-user"]');

export const me = {
  name: userMeta?.content ?? null,
  isAdmin: userMeta?.dataset.admin === "true",
};

/** An error answer of the API: `error` is its body's {code, message, hint, field, details}. */
export class ApiError extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;
    this.error = error;
  }
}

/** Call `/api/v1${path}`; the decoded answer, or an ApiError thrown. */
export async function api(method, path, body = undefined) {
  const headers = { Accept: "application/json", "X-CSRF-Token": csrfToken };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (cause) {
    throw new ApiError(0, { code: "unreachable", message: "The dockbed server does not answer.", hint: "Check that it runs, then try again." });
  }
  if (response.status === 401) {
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, { code: "authentication_required", message: "Your session has ended." });
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const error = data?.error ?? {
      code: `http_${response.status}`,
      message: data?.detail ? `${response.status}: ${data.detail}` : `The server answered ${response.status}.`,
    };
    throw new ApiError(response.status, error);
  }
  return data;
}

export function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** Forget the errors shown in `scopes` (forms or other elements). */
export function clearErrors(...scopes) {
  for (const scope of scopes) {
    scope.querySelectorAll(".is-invalid").forEach((el) => el.classList.remove("is-invalid"));
    scope.querySelectorAll("[data-feedback-for]").forEach((el) => { el.textContent = ""; el.classList.remove("d-block"); });
    const alert = scope.querySelector(":scope > .form-alert");
    if (alert) alert.innerHTML = "";
  }
}

/**
 * Show an API error under the input it names (`error.field`), looked up in
 * `form` and then in `extra` elements; an error without a field, or whose
 * field has no input here, goes into the form's `.form-alert`.
 */
export function showError(form, failure, extra = []) {
  const error = failure instanceof ApiError ? failure.error : { message: String(failure?.message ?? failure) };
  clearErrors(form, ...extra);
  for (const scope of [form, ...extra]) {
    const field = error.field && scope.querySelector(`[name="${CSS.escape(error.field)}"]`);
    const feedback = error.field && scope.querySelector(`[data-feedback-for="${CSS.escape(error.field)}"]`);
    if (field && feedback) {
      field.classList.add("is-invalid");
      feedback.innerHTML = messageHtml(error);
      feedback.classList.add("d-block");
      return;
    }
  }
  const alert = form.querySelector(":scope > .form-alert");
  const html = `<div class="alert alert-danger py-2 small d-flex gap-2" role="alert">
      <i class="bi bi-exclamation-triangle-fill mt-1"></i><div>${messageHtml(error)}</div></div>`;
  if (alert) alert.innerHTML = html;
  else toast(error.message, "danger");
}

function messageHtml(error) {
  let html = escapeHtml(error.message);
  const failed = error.details?.failed;
  if (failed && typeof failed === "object") {
    html += "<ul class='mb-0 ps-3'>" + Object.entries(failed).map(([name, why]) => `<li><strong>${escapeHtml(name)}</strong>: ${escapeHtml(why)}</li>`).join("") + "</ul>";
  }
  if (error.hint) html += `<div class="text-body-secondary mt-1">${escapeHtml(error.hint)}</div>`;
  return html;
}

/** A short notice in the corner; `kind` is a Bootstrap colour. */
export function toast(message, kind = "success") {
  const icons = { success: "check-circle-fill", danger: "x-octagon-fill", warning: "exclamation-triangle-fill", info: "info-circle-fill" };
  const element = document.createElement("div");
  element.className = `toast align-items-center text-bg-${kind} border-0`;
  element.setAttribute("role", kind === "danger" ? "alert" : "status");
  element.innerHTML = `<div class="d-flex"><div class="toast-body"><i class="bi bi-${icons[kind] ?? icons.info} me-1"></i>${escapeHtml(message)}</div>
    <button type="button" class="btn-close btn-close-white me-2 m-auto" data-bs-dismiss="toast" aria-label="Close"></button></div>`;
  document.getElementById("toasts").append(element);
  const notice = new bootstrap.Toast(element, { delay: kind === "danger" ? 9000 : 4000 });
  element.addEventListener("hidden.bs.toast", () => element.remove());
  notice.show();
}

/** Ask before something that cannot be undone; resolves to true if confirmed. */
export function confirmAction(title, bodyHtml, confirmLabel = "Confirm", kind = "danger") {
  const element = document.getElementById("confirm-modal");
  const modal = bootstrap.Modal.getOrCreateInstance(element);
  element.querySelector("#confirm-title").textContent = title;
  element.querySelector("#confirm-body").innerHTML = bodyHtml;
  const ok = element.querySelector("#confirm-ok");
  ok.className = `btn btn-${kind}`;
  ok.textContent = confirmLabel;
  return new Promise((resolve) => {
    let confirmed = false;
    const onOk = () => { confirmed = true; modal.hide(); };
    ok.addEventListener("click", onOk, { once: true });
    element.addEventListener("hidden.bs.modal", () => { ok.removeEventListener("click", onOk); resolve(confirmed); }, { once: true });
    modal.show();
  });
}

/** Put a button in its busy state (spinner, disabled) while `work` runs. */
export async function busy(button, work) {
  const spinner = button.querySelector(".spinner-border");
  button.disabled = true;
  spinner?.classList.remove("d-none");
  try { return await work(); } finally { button.disabled = false; spinner?.classList.add("d-none"); }
}

/** The node chosen in the navbar, remembered across visits. */
export function currentNode() {
  const select = document.getElementById("node-select");
  return select?.value || select?.dataset.default || null;
}

export function onNodeChange(callback) {
  const select = document.getElementById("node-select");
  if (!select) return;
  const saved = localStorage.getItem("dockbed.node");
  if (saved && [...select.options].some((o) => o.value === saved)) select.value = saved;
  else if (select.dataset.default) select.value = select.dataset.default;
  select.addEventListener("change", () => { localStorage.setItem("dockbed.node", select.value); callback(select.value); });
}

export function formatTime(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** Numeric order for dotted IPv4 addresses; empty ones last. */
export function ipNumber(address) {
  if (!address) return Number.MAX_SAFE_INTEGER;
  return address.split(".").reduce((sum, part) => sum * 256 + Number(part), 0);
}

/** Values of a form's named inputs; empty strings become null, disabled ones are left out. */
export function formValues(form) {
  const values = {};
  for (const element of form.elements) {
    if (!element.name || element.disabled || element.type === "submit" || element.type === "button") continue;
    const value = element.value.trim();
    values[element.name] = value === "" ? null : value;
  }
  return values;
}
