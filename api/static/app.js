// The reference web client: sign in, upload and follow ingestion, read what was read on each
// page, ask and read streamed answers, go back to earlier conversations, see usage, and
// (admins) manage members. In Persian or English. Plain JavaScript modules, no build: this one
// starts the page, and each section of the page has its own.
import "./chat.js";
import "./uploads.js";
import { loadSessions } from "./conversations.js";
import { loadDocuments } from "./documents.js";
import { $ } from "./dom.js";
import { switchLanguage } from "./i18n.js";
import { loadMembers } from "./members.js";
import { show } from "./signin.js";
import { state } from "./state.js";
import { loadUsage } from "./usage.js";

$("language").addEventListener("click", () => {
  switchLanguage();
  if (state.token) { loadDocuments(); loadUsage(); loadMembers(); loadSessions(); }
});

show();
