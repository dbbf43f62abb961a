// Asking: the question sent, the answer followed as it streams in.
import { api, json } from "./api.js";
import { loadSessions, remember } from "./conversations.js";
import { $ } from "./dom.js";
import { state } from "./state.js";
import { newTurn } from "./turns.js";
import { loadUsage } from "./usage.js";

// Ask, then follow the answer's job-scoped stream. EventSource reconnects by itself with
// Last-Event-ID; we close it once the answer has ended.
$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const turn = newTurn(question);
  $("question").value = "";
  let started;
  try {
    started = await api("/v1/chat", json({ message: question, ...(state.session ? { session_id: state.session } : {}) }));
  } catch (error) { turn.answer.textContent = error.message; turn.answer.classList.add("error"); return; }
  const fresh = started.session_id !== state.session;
  remember(started.session_id);
  if (fresh) loadSessions();
  const stream = new EventSource(started.stream_url);
  stream.addEventListener("citations", (e) => turn.setCitations(JSON.parse(e.data)));
  stream.addEventListener("delta", (e) => turn.addText(JSON.parse(e.data).text));
  stream.addEventListener("restart", () => turn.setText(""));
  stream.addEventListener("end", () => { stream.close(); loadUsage(); loadSessions(); });
  stream.addEventListener("error", (e) => {
    if (e.data) {
      stream.close();
      turn.fail(JSON.parse(e.data).message);
    }
    // No data: the connection dropped; EventSource reconnects by itself.
  });
});
