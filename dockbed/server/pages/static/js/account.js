// The user menu's dialogs on every page: my saved ssh keys, my password.
import { api, clearErrors, showError, toast } from "./api.js";

const keysModal = document.getElementById("keys-modal");
const keysForm = document.getElementById("keys-form");
const passwordForm = document.getElementById("password-form");

keysModal?.addEventListener("show.bs.modal", async () => {
  clearErrors(keysForm);
  try {
    const { keys } = await api("GET", "/users/me/keys");
    keysForm.elements.ssh_keys.value = keys.join("\n");
  } catch (error) { showError(keysForm, error); }
});

keysForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const keys = keysForm.elements.ssh_keys.value.split("\n").map((k) => k.trim()).filter(Boolean);
  try {
    const saved = await api("PUT", "/users/me/keys", { keys });
    bootstrap.Modal.getInstance(keysModal)?.hide();
    toast(`${saved.keys.length} key${saved.keys.length === 1 ? "" : "s"} saved`);
    document.dispatchEvent(new CustomEvent("dockbed:keys", { detail: saved.keys }));
  } catch (error) { showError(keysForm, error); }
});

passwordForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    current_password: passwordForm.elements.current_password.value,
    new_password: passwordForm.elements.new_password.value,
  };
  try {
    await api("PUT", "/users/me/password", body);
    passwordForm.reset();
    bootstrap.Modal.getInstance(document.getElementById("password-modal"))?.hide();
    toast("Password changed");
  } catch (error) {
    if (error.error?.field === "password") error.error.field = "new_password";
    showError(passwordForm, error);
  }
});
