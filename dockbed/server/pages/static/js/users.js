// The users page (admins): add, promote, disable, reset and remove accounts.
import { api, clearErrors, confirmAction, escapeHtml, formatTime, me, showError, toast } from "./api.js";

const form = document.getElementById("user-form");
const tbody = document.querySelector("#users-table tbody");
const shown = document.getElementById("password-shown");

function showPassword(name, password) {
  shown.innerHTML = `<div class="alert alert-success mb-0" role="status">
    <div class="fw-semibold mb-1"><i class="bi bi-check-circle-fill"></i> Password for ${escapeHtml(name)}</div>
    <div class="d-flex align-items-center gap-2"><span class="password-reveal user-select-all" id="new-password-value">${escapeHtml(password)}</span></div>
    <div class="small text-body-secondary mt-1">Shown this once: hand it over now. They can change it from their user menu.</div></div>`;
}

async function load() {
  const users = await api("GET", "/users");
  document.getElementById("users-count").textContent = users.length;
  tbody.innerHTML = users.map((user) => {
    const self = user.name === me.name;
    return `<tr data-name="${escapeHtml(user.name)}">
      <td class="ps-3 fw-semibold">${escapeHtml(user.name)}${self ? ` <span class="badge text-bg-light border">you</span>` : ""}</td>
      <td>${user.role === "admin" ? `<span class="badge text-bg-info">admin</span>` : `<span class="badge text-bg-secondary">user</span>`}</td>
      <td>${user.disabled ? `<span class="text-danger"><i class="bi bi-slash-circle"></i> disabled</span>` : `<span class="text-success"><i class="bi bi-check-circle"></i> active</span>`}</td>
      <td class="small text-body-secondary">${formatTime(user.created)}</td>
      <td class="text-end pe-3">
        <div class="btn-group btn-group-sm">
          <button class="btn btn-outline-secondary" data-user-action="role" ${self ? "disabled" : ""}>${user.role === "admin" ? "Make user" : "Make admin"}</button>
          <button class="btn btn-outline-secondary" data-user-action="disable" ${self ? "disabled" : ""}>${user.disabled ? "Enable" : "Disable"}</button>
          <button class="btn btn-outline-secondary" data-user-action="password" title="Reset password"><i class="bi bi-key"></i></button>
          <button class="btn btn-outline-danger" data-user-action="remove" ${self ? "disabled" : ""} title="Remove"><i class="bi bi-trash"></i></button>
        </div>
      </td></tr>`;
  }).join("");
  tbody.dataset.users = JSON.stringify(users);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const body = { name: form.elements.name.value.trim(), role: form.elements.role.value, password: form.elements.password.value || null };
  try {
    const created = await api("POST", "/users", body);
    form.reset();
    if (created.password) showPassword(created.name, created.password);
    else shown.innerHTML = "";
    toast(`User ${created.name} added`);
  } catch (error) { showError(form, error); }
  await load();
});

tbody.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-user-action]");
  if (!button) return;
  const name = button.closest("tr").dataset.name;
  const user = JSON.parse(tbody.dataset.users).find((u) => u.name === name);
  const path = `/users/${encodeURIComponent(name)}`;
  try {
    switch (button.dataset.userAction) {
      case "role":
        await api("PATCH", path, { role: user.role === "admin" ? "user" : "admin" });
        toast(`${name} is now ${user.role === "admin" ? "a user" : "an admin"}`);
        break;
      case "disable":
        await api("PATCH", path, { disabled: !user.disabled });
        toast(`${name} ${user.disabled ? "enabled" : "disabled; their tokens are revoked"}`);
        break;
      case "password": {
        if (!await confirmAction("Reset password?", `Give <strong>${escapeHtml(name)}</strong> a new generated password? Their page sessions end.`, "Reset", "warning")) return;
        const { password } = await api("POST", `${path}/password`);
        showPassword(name, password);
        break;
      }
      case "remove":
        if (!await confirmAction("Remove user?", `Remove <strong>${escapeHtml(name)}</strong> and revoke their tokens? Their containers stay; admins can still manage them.`, "Remove")) return;
        await api("DELETE", path);
        toast(`User ${name} removed`);
        break;
    }
  } catch (error) { toast(error.error?.message ?? String(error), "danger"); }
  await load();
});

load().catch((error) => toast(error.error?.message ?? String(error), "danger"));
