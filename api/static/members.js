// Members (admins only): invite, change a role, remove.
import { api, json } from "./api.js";
import { $, element, named, tell } from "./dom.js";
import { t, when } from "./i18n.js";
import { show } from "./signin.js";
import { state } from "./state.js";

export async function loadMembers() {
  const panel = $("members-panel");
  panel.hidden = state.role !== "admin";
  if (panel.hidden) return;
  let page;
  try { page = await api("/v1/members?limit=100"); } catch (error) { tell($("members-status"), error.message, true); return; }
  $("members").replaceChildren(...page.items.map(memberRow));
}

function memberRow(member) {
  const row = element("tr");
  row.dataset.email = member.email;
  const email = element("td");
  email.append(named(member.email, ""));
  const role = element("td");
  const select = element("select");
  select.setAttribute("aria-label", t("roleOf", member.email));
  for (const name of ["member", "admin"]) select.append(new Option(t(`role_${name}`), name, false, name === member.role));
  select.addEventListener("change", async () => {
    try {
      await api(`/v1/members/${member.id}`, json({ role: select.value }, "PATCH"));
      tell($("members-status"), t("memberNow", member.email, select.value));
      if (member.email === state.email) { await show(); return; }
    } catch (error) { tell($("members-status"), error.message, true); }
    loadMembers();
  });
  role.append(select);
  const status = element("td", null, t(`member_${member.status}`));
  const seen = element("td", null, member.last_sign_in ? when(member.last_sign_in) : t("never"));
  const actions = element("td");
  const remove = element("button", "quiet", t("remove"));
  remove.type = "button";
  remove.setAttribute("aria-label", t("removeWho", member.email));
  remove.addEventListener("click", async () => {
    try {
      await api(`/v1/members/${member.id}`, { method: "DELETE" });
      tell($("members-status"), t("memberRemoved", member.email));
    } catch (error) { tell($("members-status"), error.message, true); }
    loadMembers();
  });
  actions.append(remove);
  row.append(email, role, status, seen, actions);
  return row;
}

$("invite").addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = $("invite-email").value.trim();
  try {
    const member = await api("/v1/members", json({ email, role: $("invite-role").value }));
    tell($("members-status"), t("memberInvited", member.email, member.role));
    $("invite-email").value = "";
  } catch (error) { tell($("members-status"), error.message, true); }
  loadMembers();
});
