"use strict";
// The reference web client: sign in, upload and follow ingestion, ask and read streamed
// answers, see usage, and (admins) manage members. Plain JavaScript, no build.
const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("docuchat.token"),
  tenant: localStorage.getItem("docuchat.tenant"),
  email: localStorage.getItem("docuchat.email"),
  role: null,
  session: null,
};

// Every failure becomes a sentence. Our API answers with a problem body that has one; a
// proxy's HTML page or an empty body is described by its status.
const STATUS_SENTENCES = {
  408: "the server waited too long for the request",
  413: "the file is larger than the server accepts",
  429: "too many requests for now",
  502: "the server could not be reached (bad gateway)",
  503: "the service is unavailable for a moment",
  504: "the server took too long to answer",
};

class ApiError extends Error {
  constructor(message, status, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;  // seconds, when the server said
  }
}

function failure(status, body, retryAfterHeader) {
  const retryAfter = Number.parseInt(retryAfterHeader, 10) || null;
  let sentence = (body && typeof body.detail === "string" && body.detail)
    || STATUS_SENTENCES[status] || `the server answered with status ${status}`;
  if (status === 429 && retryAfter && !/retry in/.test(sentence)) sentence += `; retry in ${retryAfter} s`;
  return new ApiError(sentence, status, retryAfter);
}

function parsed(text) {
  try { return JSON.parse(text); } catch { return null; }
}

async function api(path, options = {}) {
  const headers = { "X-Tenant-ID": state.tenant, ...(options.headers || {}) };
  if (state.token) headers["Authorization"] = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch {
    throw new ApiError("the server cannot be reached; check the connection", 0, null);
  }
  const body = response.status === 204 ? null : parsed(await response.text());
  if (response.ok) return body;
  const error = failure(response.status, body, response.headers.get("Retry-After"));
  if (response.status === 401 && state.token) signOut(error.message);
  throw error;
}

function tell(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// A file name inside English text: isolated, so a Persian name keeps its own direction
// without turning the whole line around.
function named(name, rest) {
  const isolated = document.createElement("bdi");
  isolated.textContent = name;
  const fragment = document.createDocumentFragment();
  fragment.append(isolated, rest);
  return fragment;
}
const json = (data, method = "POST") => ({ method, body: JSON.stringify(data), headers: { "Content-Type": "application/json" } });
const pages = (n) => `${n} ${n === 1 ? "page" : "pages"}`;

async function show() {
  const signedIn = Boolean(state.token);
  $("signed-out").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("who").textContent = signedIn ? `${state.email} · ${state.tenant}` : "";
  if (!signedIn) return;
  try {
    const me = await api("/v1/me");
    state.role = me.role;
  } catch (error) { tell($("documents-status"), error.message, true); return; }
  loadDocuments(); loadUsage(); loadMembers();
}

function signOut(reason) {
  localStorage.removeItem("docuchat.token");
  state.token = null;
  state.role = null;
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
  try {
    const answer = await api("/v1/auth/verify-code", json({ email: state.email, code: $("code").value.trim() }));
    state.token = answer.access_token;
    localStorage.setItem("docuchat.token", state.token);
    localStorage.setItem("docuchat.tenant", state.tenant);
    localStorage.setItem("docuchat.email", state.email);
    tell($("sign-in-status"), "");
    show();
  } catch (error) { tell($("sign-in-status"), error.message, true); }
});

$("sign-out").addEventListener("click", () => signOut());

async function loadDocuments() {
  let page;
  try { page = await api("/v1/files?limit=100"); } catch (error) { tell($("documents-status"), error.message, true); return; }
  tell($("documents-status"), "");
  $("documents").replaceChildren(...page.items.map((doc) => {
    const item = document.createElement("li");
    item.dataset.id = doc.id;
    const skipped = doc.skipped_pages.length ? ` (${pages(doc.skipped_pages.length)} skipped: ${doc.skipped_pages[0].reason})` : "";
    const status = doc.status === "ready" ? pages(doc.pages) + skipped : doc.status + (doc.error ? `: ${doc.error}` : "");
    item.append(named(doc.filename, ` — ${status}`));
    if (doc.status !== "ready") item.append(" ", retryButton(doc));
    return item;
  }));
}

// A failed ingestion can be tried again; one that seems stuck can be started over.
function retryButton(doc) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "quiet";
  button.textContent = doc.status === "failed" ? "Retry" : "Start over";
  button.setAttribute("aria-label", `${button.textContent}: ${doc.filename}`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    const label = document.createElement("div");
    label.className = "muted";
    const say = (text, isError = false) => {
      label.replaceChildren(named(doc.filename, `: ${text}`));
      label.classList.toggle("error", isError);
    };
    $("uploads").append(label);
    try {
      const body = await api(`/v1/files/${doc.id}/retry`, { method: "POST" });
      loadDocuments();
      const job = await follow(body.job, say);
      if (job) say(job.status === "succeeded" ? "ready" : `${job.status}: ${job.error}`, job.status !== "succeeded");
    } catch (error) { say(error.message, true); }
    loadDocuments();
  });
  return button;
}

async function loadUsage() {
  try {
    const usage = await api("/v1/usage");
    const line = (name, window) => `${name}: ${window.total_tokens.toLocaleString()} tokens in ${window.requests} requests`;
    tell($("usage"), `${line("Last 24 hours", usage.last_24h)} · ${line("last 7 days", usage.last_7d)}`);
  } catch (error) { tell($("usage"), error.message, true); }
}

// Upload with a progress bar (XMLHttpRequest reports upload progress; fetch does not), then
// follow the ingestion job until the document is ready.
$("files").addEventListener("change", () => {
  for (const file of $("files").files) upload(file);
  $("files").value = "";
});

function upload(file) {
  const row = document.createElement("div");
  const label = document.createElement("div");
  label.className = "muted";
  const say = (text, isError = false) => {
    label.replaceChildren(named(file.name, `: ${text}`));
    label.classList.toggle("error", isError);
  };
  say("uploading");
  const bar = document.createElement("progress");
  bar.max = 100; bar.value = 0;
  row.append(label, bar);
  $("uploads").append(row);
  const request = new XMLHttpRequest();
  request.open("POST", "/v1/files");
  request.setRequestHeader("Authorization", `Bearer ${state.token}`);
  request.setRequestHeader("X-Tenant-ID", state.tenant);
  request.upload.onprogress = (event) => { if (event.lengthComputable) bar.value = (100 * event.loaded) / event.total; };
  request.onload = async () => {
    const body = parsed(request.responseText);
    if (request.status >= 400) {
      say(failure(request.status, body, request.getResponseHeader("Retry-After")).message, true);
      bar.remove();
      return;
    }
    bar.value = 100;
    const job = body.job && await follow(body.job, say);
    if (job) say(job.status === "succeeded" ? "ready" : `${job.status}: ${job.error}`, job.status !== "succeeded");
    loadDocuments();
  };
  request.onerror = () => { say("the upload failed: the server cannot be reached", true); bar.remove(); };
  const form = new FormData();
  form.append("file", file);
  request.send(form);
}

// Follow a job by its events (GET /v1/jobs/{id}/events): progress as it happens, then its end.
// Nothing polls. EventSource reconnects by itself (with Last-Event-ID) after a dropped
// connection; when the server closes the stream for good, the job is read once to say why.
const FINISHED = ["succeeded", "failed", "cancelled"];
function progressText(progress, status) {
  const counted = progress.pages_total ? ` ${progress.pages_done ?? 0}/${pages(progress.pages_total)}` : "";
  return `${progress.stage || status}${counted}`;
}
function follow(job, say) {
  return new Promise((resolve) => {
    if (FINISHED.includes(job.status)) { resolve(job); return; }
    say(progressText(job.progress || {}, job.status));
    const source = new EventSource(job.events_url);
    source.addEventListener("progress", (e) => {
      const progress = JSON.parse(e.data);
      say(progressText(progress, progress.status));
    });
    source.addEventListener("end", (e) => {
      source.close();
      const end = JSON.parse(e.data);
      resolve({ ...job, status: end.status, error: end.error });
    });
    source.onerror = async () => {
      if (source.readyState !== EventSource.CLOSED) { say("the connection was lost; reconnecting…", true); return; }
      try {
        const now = await api(`/v1/jobs/${job.id}`);
        if (FINISHED.includes(now.status)) { resolve(now); return; }
        say("the progress stream closed; reload the page to follow this document", true);
      } catch (error) { say(error.message, true); }
      resolve(null);
    };
  });
}

// ---- members (admins) -------------------------------------------------------------------------

async function loadMembers() {
  const panel = $("members-panel");
  panel.hidden = state.role !== "admin";
  if (panel.hidden) return;
  let page;
  try { page = await api("/v1/members?limit=100"); } catch (error) { tell($("members-status"), error.message, true); return; }
  $("members").replaceChildren(...page.items.map(memberRow));
}

function memberRow(member) {
  const row = document.createElement("tr");
  row.dataset.email = member.email;
  const email = document.createElement("td");
  email.append(named(member.email, ""));
  const role = document.createElement("td");
  const select = document.createElement("select");
  select.setAttribute("aria-label", `Role of ${member.email}`);
  for (const name of ["member", "admin"]) select.append(new Option(name, name, false, name === member.role));
  select.addEventListener("change", async () => {
    try {
      await api(`/v1/members/${member.id}`, json({ role: select.value }, "PATCH"));
      tell($("members-status"), `${member.email} is now ${select.value === "admin" ? "an admin" : "a member"}`);
      if (member.email === state.email) { await show(); return; }
    } catch (error) { tell($("members-status"), error.message, true); }
    loadMembers();
  });
  role.append(select);
  const status = document.createElement("td");
  status.textContent = member.status;
  const seen = document.createElement("td");
  seen.textContent = member.last_sign_in ? new Date(member.last_sign_in).toLocaleString() : "never";
  const actions = document.createElement("td");
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "quiet";
  remove.textContent = "Remove";
  remove.setAttribute("aria-label", `Remove ${member.email}`);
  remove.addEventListener("click", async () => {
    try {
      await api(`/v1/members/${member.id}`, { method: "DELETE" });
      tell($("members-status"), `${member.email} is removed; their documents stay`);
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
    tell($("members-status"), `${member.email} is invited as ${member.role}; an invitation was mailed`);
    $("invite-email").value = "";
  } catch (error) { tell($("members-status"), error.message, true); }
  loadMembers();
});

// ---- questions --------------------------------------------------------------------------------

// Ask, then follow the answer's job-scoped stream. EventSource reconnects by itself with
// Last-Event-ID; we close it once the answer has ended.
$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const turn = document.createElement("div");
  const asked = document.createElement("div");
  asked.className = "question"; asked.dir = "auto"; asked.textContent = question;
  const answer = document.createElement("div");
  answer.className = "answer"; answer.dir = "auto";
  const sources = document.createElement("ol");
  sources.className = "citations";
  const viewer = document.createElement("div");
  viewer.className = "page-text";
  viewer.hidden = true;
  turn.append(asked, answer, sources, viewer);
  $("conversation").prepend(turn);
  $("question").value = "";
  let started;
  try {
    started = await api("/v1/chat", json({ message: question, ...(state.session ? { session_id: state.session } : {}) }));
  } catch (error) { answer.textContent = error.message; answer.classList.add("error"); return; }
  state.session = started.session_id;
  let text = "";
  const render = () => {
    // [n] markers become links to their source; `code` stays as it is, brackets and all.
    answer.replaceChildren(...text.split(/(`[^`\n]*`|\[\d+\])/).map((part) => {
      if (part.length > 1 && part.startsWith("`") && part.endsWith("`")) {
        const code = document.createElement("code");
        code.textContent = part.slice(1, -1);
        return code;
      }
      const marker = part.match(/^\[(\d+)\]$/);
      if (!marker) return document.createTextNode(part);
      const link = document.createElement("a");
      link.textContent = part;
      link.tabIndex = 0;
      link.addEventListener("click", () => light(sources, marker[1]));
      return link;
    }));
  };
  const stream = new EventSource(started.stream_url);
  stream.addEventListener("citations", (e) => {
    sources.replaceChildren(...JSON.parse(e.data).map((c) => {
      const item = document.createElement("li");
      item.value = c.n;
      item.dataset.n = c.n;
      const link = document.createElement("a");
      link.tabIndex = 0;
      const where = `page ${c.page_start}${c.page_end !== c.page_start ? "–" + c.page_end : ""}`;
      link.append(named(c.filename, c.section ? `, section “${c.section}”, ${where}` : `, ${where}`));
      link.title = "Show the text DocuChat read on this page";
      link.addEventListener("click", () => { light(sources, String(c.n)); showPage(viewer, c); });
      link.addEventListener("keydown", (e) => { if (e.key === "Enter") link.click(); });
      item.append(link);
      return item;
    }));
  });
  stream.addEventListener("delta", (e) => { text += JSON.parse(e.data).text; render(); });
  stream.addEventListener("restart", () => { text = ""; render(); });
  stream.addEventListener("end", () => { stream.close(); loadUsage(); });
  stream.addEventListener("error", (e) => {
    if (e.data) {
      stream.close();
      const problem = document.createElement("span");
      problem.className = "error";
      problem.textContent = JSON.parse(e.data).message;
      answer.append(" ", problem);
    }
    // No data: the connection dropped; EventSource reconnects by itself.
  });
});

// What DocuChat read on a cited page, and how: so a person can check the source.
const HOW_READ = {
  text_layer: "from the PDF's text",
  ocr: "read by OCR",
  section: "from the document's text",
  skipped: "skipped",
};

async function showPage(viewer, citation) {
  viewer.hidden = false;
  viewer.replaceChildren("Loading the page…");
  let page;
  try {
    page = await api(`/v1/files/${citation.document_id}/pages/${citation.page_start}`);
  } catch (error) {
    const problem = document.createElement("p");
    problem.className = "error";
    problem.textContent = error.message;
    viewer.replaceChildren(problem);
    return;
  }
  const title = document.createElement("h3");
  title.append(named(page.filename, `, page ${page.number} (${HOW_READ[page.source] || page.source})`));
  const parts = [title];
  if (page.flagged || page.source === "skipped") {
    const warning = document.createElement("p");
    warning.className = "error";
    warning.textContent = page.note;
    parts.push(warning);
  }
  const text = document.createElement("pre");
  text.dir = "auto";
  text.textContent = page.text;
  parts.push(text);
  viewer.replaceChildren(...parts);
}

function light(list, n) {
  for (const item of list.children) item.classList.toggle("lit", item.dataset.n === n);
  list.querySelector(`[data-n="${n}"]`)?.scrollIntoView({ block: "nearest" });
}

show();
