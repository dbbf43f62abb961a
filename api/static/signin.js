// Signing in with the e-mailed code, signing out, and showing the page for who is signed in.
import { api, json } from "./api.js";
import { loadSessions, openSession } from "./conversations.js";
import { loadDocuments } from "./documents.js";
import { $, tell } from "./dom.js";
import { applyLanguage } from "./i18n.js";
import { loadMembers } from "./members.js";
import { state } from "./state.js";
import { loadUsage } from "./usage.js";

export async function show() {
  applyLanguage();
  const signedIn = Boolean(state.token);
  $("signed-out").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("who").textContent = signedIn ? `${state.email} · ${state.tenant}` : "";
  if (!signedIn) return;
  try {
    const me = await api("/v1/me");
    state.role = me.role;
    state.userId = me.user_id;
  } catch (error) { tell($("documents-status"), error.message, true); return; }
  loadDocuments(); loadUsage(); loadMembers(); loadSessions();
  if (state.session) openSession(state.session);
}

export function signOut(reason) {
  localStorage.removeItem("docuchat.token");
  localStorage.removeItem("docuchat.session");
  state.token = null;
  state.role = null;
  state.session = null;
  $("conversation").replaceChildren();
  if (reason) tell($("sign-in-status"), reason, true);
  show();
}

$("request-code").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.tenant = $("tenant").value.trim();
  state.email = $("email").value.trim();
  try {
    const answer = await api("/v1/auth/request-code", json({ email: state.email }));
    tell($("sign-in-status"), answer.detail);
    $("verify-code").hidden = false;
    $("code").focus();
  } catch (error) { tell($("sign-in-status"), error.message, true); }
});

$("verify-code").addEventListener("submit", async (event) => {
  event.preventDefault();
  // Persian or Arabic-Indic digits typed on a Persian keyboard count as the same digits.
  const code = $("code").value.trim().replace(/[۰-۹٠-٩]/g, (d) => String(d.charCodeAt(0) & 0xf));
  try {
    const answer = await api("/v1/auth/verify-code", json({ email: state.email, code }));
    state.token = answer.access_token;
    localStorage.setItem("docuchat.token", state.token);
    localStorage.setItem("docuchat.tenant", state.tenant);
    localStorage.setItem("docuchat.email", state.email);
    tell($("sign-in-status"), "");
    show();
  } catch (error) { tell($("sign-in-status"), error.message, true); }
});


$("sign-out").addEventListener("click", () => signOut());
