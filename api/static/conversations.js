// Conversations: the earlier ones listed, one reopened with its answers, a new one started.
import { api } from "./api.js";
import { $, element, named, tell } from "./dom.js";
import { t, when } from "./i18n.js";
import { state } from "./state.js";
import { newTurn } from "./turns.js";

export async function loadSessions() {
  let page;
  try { page = await api("/v1/sessions?limit=50"); } catch (error) { tell($("sessions-status"), error.message, true); return; }
  tell($("sessions-status"), page.items.length ? "" : t("noSessions"));
  $("sessions").replaceChildren(...page.items.map((session) => {
    const item = element("li");
    item.dataset.id = session.id;
    item.classList.toggle("current", session.id === state.session);
    const open = element("button", "quiet");
    open.type = "button";
    open.dir = "auto";
    open.append(named(session.title || t("untitled"), ""));
    open.addEventListener("click", () => openSession(session.id));
    item.append(open, " ", element("span", "muted", when(session.updated_at)));
    return item;
  }));
}

export function remember(session) {
  state.session = session;
  if (session) localStorage.setItem("docuchat.session", session);
  else localStorage.removeItem("docuchat.session");
  for (const item of $("sessions").children) item.classList.toggle("current", item.dataset.id === session);
}

// An earlier conversation: its questions and answers, with their citations, newest on top.
export async function openSession(id) {
  let body;
  try { body = await api(`/v1/sessions/${id}/messages`); } catch (error) {
    if (error.status === 404) { remember(null); return; }
    tell($("sessions-status"), error.message, true);
    return;
  }
  remember(id);
  $("conversation").replaceChildren();
  let question = null;
  for (const message of body.messages) {
    if (message.role === "user") { question = message.content; continue; }
    const turn = newTurn(question || "");
    turn.setText(message.content);
    turn.setCitations(message.citations || []);
    question = null;
  }
  if (question !== null) newTurn(question);  // asked, not answered (yet)
}

$("new-conversation").addEventListener("click", () => {
  remember(null);
  $("conversation").replaceChildren();
  $("question").focus();
});
