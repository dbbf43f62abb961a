"use strict";
// The reference web client: sign in, upload and follow ingestion, read what was read on each
// page, ask and read streamed answers, go back to earlier conversations, see usage, and
// (admins) manage members. In Persian or English. Plain JavaScript, no build.
const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("docuchat.token"),
  tenant: localStorage.getItem("docuchat.tenant"),
  email: localStorage.getItem("docuchat.email"),
  session: localStorage.getItem("docuchat.session"),
  role: null,
  userId: null,
};

// ---- language ---------------------------------------------------------------------------------

// Every label in both languages. The API's own sentences (errors, reasons) come as it words them.
const TEXT = {
  en: {
    signOut: "Sign out", signIn: "Sign in", workspace: "Workspace", email: "E-mail",
    sendCode: "Send me a code", codeLabel: "The six-digit code we e-mailed you", signInButton: "Sign in",
    documents: "Documents", uploadLabel: "Upload documents (PDF, Word, HTML, Markdown, text)",
    conversations: "Conversations", newConversation: "New conversation", usage: "Usage", ask: "Ask",
    yourQuestion: "Your question", questionPlaceholder: "Ask about your documents…", askButton: "Ask",
    members: "Members", inviteByEmail: "Invite by e-mail", role: "Role", role_member: "member",
    role_admin: "admin", invite: "Invite", status: "Status", lastSignIn: "Last sign-in", remove: "Remove",
    pages: (n) => `${num(n)} ${n === 1 ? "page" : "pages"}`,
    skipped: (n, why) => `${TEXT.en.pages(n)} skipped: ${why}`,
    status_queued: "queued", status_processing: "processing", status_ready: "ready", status_failed: "failed",
    stage_queued: "queued", stage_running: "running", stage_extracting: "reading pages", stage_embedding: "embedding",
    stage_storing: "storing", stage_done: "done", stage_succeeded: "ready", stage_cancelled: "cancelled",
    uploading: "uploading", ready: "ready", retry: "Retry", startOver: "Start over", delete: "Delete",
    confirmDelete: (name) => `Delete ${name}, its pages and its chunks? This cannot be undone.`,
    deleted: (name) => `${name} is deleted`,
    pageReport: "How its pages were read",
    fromText: (n) => `${TEXT.en.pages(n)} from the PDF's text`,
    fromSections: (n) => `${num(n)} ${n === 1 ? "section" : "sections"}`,
    byOcr: (n) => `${TEXT.en.pages(n)} read by OCR`,
    flagged: (n) => `${TEXT.en.pages(n)} flagged`,
    skippedCount: (n) => `${TEXT.en.pages(n)} skipped`,
    pageN: (n) => `page ${num(n)}`,
    pagesNM: (a, b) => `pages ${num(a)}–${num(b)}`,
    section: (name) => `section “${name}”`,
    noReport: "no page report: it was ingested before DocuChat kept one",
    lost: "the connection was lost; reconnecting…",
    streamClosed: "the progress stream closed; reload the page to follow this document",
    unreachable: "the server cannot be reached; check the connection",
    uploadUnreachable: "the upload failed: the server cannot be reached",
    usageLine: (name, w) => `${name}: ${num(w.total_tokens)} tokens in ${num(w.requests)} requests`,
    last24h: "Last 24 hours", last7d: "last 7 days", wholeTenant: "The whole workspace",
    loadingPage: "Loading the page…", showPage: "Show the text DocuChat read on this page",
    how_text_layer: "from the PDF's text", how_ocr: "read by OCR", how_section: "from the document's text",
    how_skipped: "skipped",
    noSessions: "No conversations yet: ask a question.", untitled: "(untitled)",
    memberNow: (email, role) => `${email} is now ${role === "admin" ? "an admin" : "a member"}`,
    memberRemoved: (email) => `${email} is removed; their documents stay`,
    memberInvited: (email, role) => `${email} is invited as ${role}; an invitation was mailed`,
    roleOf: (email) => `Role of ${email}`, removeWho: (email) => `Remove ${email}`, never: "never",
    member_active: "active", member_invited: "invited", member_removed: "removed",
    language: "فارسی", comma: ", ",
  },
  fa: {
    signOut: "خروج", signIn: "ورود", workspace: "فضای کار (سازمان)", email: "ایمیل",
    sendCode: "کد را برایم بفرست", codeLabel: "کد شش‌رقمی‌ای که ایمیل کردیم", signInButton: "ورود",
    documents: "سندها", uploadLabel: "بارگذاری سند (PDF، Word، HTML، Markdown، متن)",
    conversations: "گفت‌وگوها", newConversation: "گفت‌وگوی تازه", usage: "مصرف", ask: "پرسش",
    yourQuestion: "پرسش شما", questionPlaceholder: "دربارهٔ سندهایتان بپرسید…", askButton: "بپرس",
    members: "اعضا", inviteByEmail: "دعوت با ایمیل", role: "نقش", role_member: "عضو",
    role_admin: "مدیر", invite: "دعوت", status: "وضعیت", lastSignIn: "آخرین ورود", remove: "حذف",
    pages: (n) => `${num(n)} صفحه`,
    skipped: (n, why) => `${num(n)} صفحه کنار گذاشته شد: ${why}`,
    status_queued: "در صف", status_processing: "در حال پردازش", status_ready: "آماده", status_failed: "ناموفق",
    stage_queued: "در صف", stage_running: "در حال اجرا", stage_extracting: "خواندن صفحه‌ها", stage_embedding: "ساختن بردارها",
    stage_storing: "ذخیره", stage_done: "پایان", stage_succeeded: "آماده", stage_cancelled: "لغو شد",
    uploading: "در حال بارگذاری", ready: "آماده", retry: "تلاش دوباره", startOver: "از نو", delete: "حذف",
    confirmDelete: (name) => `${name} با همهٔ صفحه‌ها و تکه‌هایش حذف شود؟ این کار برگشت‌پذیر نیست.`,
    deleted: (name) => `${name} حذف شد`,
    pageReport: "صفحه‌ها چگونه خوانده شدند",
    fromText: (n) => `${num(n)} صفحه از متن PDF`,
    fromSections: (n) => `${num(n)} بخش`,
    byOcr: (n) => `${num(n)} صفحه با OCR`,
    flagged: (n) => `${num(n)} صفحهٔ علامت‌دار`,
    skippedCount: (n) => `${num(n)} صفحهٔ کنارگذاشته`,
    pageN: (n) => `صفحهٔ ${num(n)}`,
    pagesNM: (a, b) => `صفحه‌های ${num(a)} تا ${num(b)}`,
    section: (name) => `بخش «${name}»`,
    noReport: "گزارش صفحه‌ها ندارد: پیش از آن‌که DocuChat گزارش نگه دارد پردازش شده است",
    lost: "اتصال قطع شد؛ در حال اتصال دوباره…",
    streamClosed: "جریان پیشرفت بسته شد؛ برای دنبال کردن این سند صفحه را دوباره بار کنید",
    unreachable: "به سرور دسترسی نیست؛ اتصال را بررسی کنید",
    uploadUnreachable: "بارگذاری ناموفق بود: به سرور دسترسی نیست",
    usageLine: (name, w) => `${name}: ${num(w.total_tokens)} توکن در ${num(w.requests)} درخواست`,
    last24h: "۲۴ ساعت گذشته", last7d: "۷ روز گذشته", wholeTenant: "کل فضای کار",
    loadingPage: "در حال آوردن صفحه…", showPage: "متنی که DocuChat از این صفحه خواند را نشان بده",
    how_text_layer: "از متن PDF", how_ocr: "خوانده‌شده با OCR", how_section: "از متن سند",
    how_skipped: "کنار گذاشته شده",
    noSessions: "هنوز گفت‌وگویی نیست: پرسشی بپرسید.", untitled: "(بی‌عنوان)",
    memberNow: (email, role) => `${email} اکنون ${role === "admin" ? "مدیر" : "عضو"} است`,
    memberRemoved: (email) => `${email} حذف شد؛ سندهایش می‌مانند`,
    memberInvited: (email, role) => `${email} به‌عنوان ${role === "admin" ? "مدیر" : "عضو"} دعوت شد؛ دعوت‌نامه ایمیل شد`,
    roleOf: (email) => `نقش ${email}`, removeWho: (email) => `حذف ${email}`, never: "هرگز",
    member_active: "فعال", member_invited: "دعوت‌شده", member_removed: "حذف‌شده",
    language: "English", comma: "، ",
  },
};
let lang = localStorage.getItem("docuchat.lang")
  || ((navigator.languages || [navigator.language]).some((l) => /^fa\b/i.test(l)) ? "fa" : "en");
const t = (key, ...args) => {
  const entry = TEXT[lang][key] ?? TEXT.en[key] ?? key;
  return typeof entry === "function" ? entry(...args) : entry;
};
// Numbers in the interface's digits: Persian digits in Persian.
const num = (n) => Number(n).toLocaleString(lang === "fa" ? "fa-IR" : "en-US");
const when = (iso) => new Date(iso).toLocaleString(lang === "fa" ? "fa-IR" : "en-US");

function applyLanguage() {
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "fa" ? "rtl" : "ltr";
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) element.placeholder = t(element.dataset.i18nPlaceholder);
  const toggle = $("language");
  toggle.textContent = t("language");
  toggle.lang = lang === "fa" ? "en" : "fa";
}

$("language").addEventListener("click", () => {
  lang = lang === "fa" ? "en" : "fa";
  localStorage.setItem("docuchat.lang", lang);
  applyLanguage();
  if (state.token) { loadDocuments(); loadUsage(); loadMembers(); loadSessions(); }
});

// ---- the API ----------------------------------------------------------------------------------

// Every failure becomes a sentence. Our API answers with a problem body that has one; a
// proxy's HTML page or an empty body is described by its status.
const STATUS_SENTENCES = {
  en: {
    408: "the server waited too long for the request",
    413: "the file is larger than the server accepts",
    429: "too many requests for now",
    502: "the server could not be reached (bad gateway)",
    503: "the service is unavailable for a moment",
    504: "the server took too long to answer",
    other: (status) => `the server answered with status ${status}`,
    retryIn: (s) => `; retry in ${s} s`,
  },
  fa: {
    408: "سرور بیش از حد منتظر درخواست ماند",
    413: "فایل بزرگ‌تر از حدی است که سرور می‌پذیرد",
    429: "فعلاً درخواست‌ها بیش از حد مجاز است",
    502: "به سرور نرسیدیم (دروازهٔ نادرست)",
    503: "سرویس لحظه‌ای در دسترس نیست",
    504: "پاسخ سرور بیش از حد طول کشید",
    other: (status) => `سرور با وضعیت ${num(status)} پاسخ داد`,
    retryIn: (s) => `؛ ${num(s)} ثانیهٔ دیگر دوباره تلاش کنید`,
  },
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
  const sentences = STATUS_SENTENCES[lang];
  let sentence = (body && typeof body.detail === "string" && body.detail)
    || sentences[status] || sentences.other(status);
  if (status === 429 && retryAfter && !/retry in/.test(sentence)) sentence += sentences.retryIn(retryAfter);
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
    throw new ApiError(t("unreachable"), 0, null);
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

// A file name inside a sentence: isolated, so a Persian name keeps its own direction
// without turning the whole line around (and an English one inside Persian text).
function named(name, rest) {
  const isolated = document.createElement("bdi");
  isolated.textContent = name;
  const fragment = document.createDocumentFragment();
  fragment.append(isolated, rest);
  return fragment;
}
const json = (data, method = "POST") => ({ method, body: JSON.stringify(data), headers: { "Content-Type": "application/json" } });
const element = (tag, className, text) => {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
};
// Activate with Enter as well as a click: for links that are not links to another page.
function pressable(node, action) {
  node.tabIndex = 0;
  node.setAttribute("role", "button");
  node.addEventListener("click", action);
  node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); action(); } });
}

// ---- signing in -------------------------------------------------------------------------------

async function show() {
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

function signOut(reason) {
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

// ---- documents --------------------------------------------------------------------------------

let listingFailed = false;
async function loadDocuments() {
  let page;
  try { page = await api("/v1/files?limit=100"); } catch (error) {
    tell($("documents-status"), error.message, true);
    listingFailed = true;
    return;
  }
  // A failure to list is over once listing works; what a delete said (done or refused) stays.
  if (listingFailed) { tell($("documents-status"), ""); listingFailed = false; }
  $("documents").replaceChildren(...page.items.map(documentItem));
}

function documentItem(doc) {
  const item = element("li");
  item.dataset.id = doc.id;
  const line = element("div");
  const skipped = doc.skipped_pages.length ? ` (${t("skipped", doc.skipped_pages.length, doc.skipped_pages[0].reason)})` : "";
  const status = doc.status === "ready"
    ? t("pages", doc.pages) + skipped
    : t(`status_${doc.status}`) + (doc.error ? `: ${doc.error}` : "");
  line.append(named(doc.filename, ` — ${status}`));
  if (doc.status === "failed" || doc.status === "queued" || doc.status === "processing") line.append(" ", retryButton(doc));
  if (doc.uploaded_by === state.userId || state.role === "admin") line.append(" ", deleteButton(doc));
  item.append(line);
  if (doc.status === "ready") item.append(pageReport(doc));
  return item;
}

// How each page was read (text layer, OCR, sections, skipped, flagged): fetched when opened.
function pageReport(doc) {
  const details = element("details", "report");
  const summary = element("summary", "muted", t("pageReport"));
  details.append(summary);
  details.addEventListener("toggle", async () => {
    if (!details.open || details.dataset.loaded) return;
    details.dataset.loaded = "yes";
    const body = element("ul", "muted");
    details.append(body);
    let full;
    try { full = await api(`/v1/files/${doc.id}`); } catch (error) { body.append(element("li", "error", error.message)); return; }
    const report = full.page_report;
    if (!report) { body.append(element("li", null, t("noReport"))); return; }
    const list = (numbers) => numbers.map(num).join(lang === "fa" ? "، " : ", ");
    if (report.text_layer.count) body.append(element("li", null, t("fromText", report.text_layer.count)));
    if (report.sections.count) body.append(element("li", null, t("fromSections", report.sections.count)));
    if (report.ocr.count) body.append(element("li", null, `${t("byOcr", report.ocr.count)}: ${list(report.ocr.pages.map((p) => p.page))}`));
    for (const [key, part] of [["skippedCount", report.skipped], ["flagged", report.flagged]]) {
      if (!part.count) continue;
      const entry = element("li", key === "flagged" ? "warning" : null, `${t(key, part.count)}:`);
      const reasons = element("ul");
      for (const note of part.pages) reasons.append(element("li", null, `${t("pageN", note.page)}: ${note.reason}`));
      entry.append(reasons);
      body.append(entry);
    }
  });
  return details;
}

// A failed ingestion can be tried again; one that seems stuck can be started over.
function retryButton(doc) {
  const button = element("button", "quiet", doc.status === "failed" ? t("retry") : t("startOver"));
  button.type = "button";
  button.setAttribute("aria-label", `${button.textContent}: ${doc.filename}`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    const label = element("div", "muted");
    const say = (text, isError = false) => {
      label.replaceChildren(named(doc.filename, `: ${text}`));
      label.classList.toggle("error", isError);
    };
    $("uploads").append(label);
    try {
      const body = await api(`/v1/files/${doc.id}/retry`, { method: "POST" });
      loadDocuments();
      const job = await follow(body.job, say);
      if (job) say(job.status === "succeeded" ? t("ready") : `${t(`stage_${job.status}`)}: ${job.error}`, job.status !== "succeeded");
    } catch (error) { say(error.message, true); }
    loadDocuments();
  });
  return button;
}

// Members delete their own uploads, admins any: the API says so too (403 otherwise).
function deleteButton(doc) {
  const button = element("button", "quiet", t("delete"));
  button.type = "button";
  button.setAttribute("aria-label", `${t("delete")}: ${doc.filename}`);
  button.addEventListener("click", async () => {
    if (!window.confirm(t("confirmDelete", doc.filename))) return;
    button.disabled = true;
    try {
      await api(`/v1/files/${doc.id}`, { method: "DELETE" });
      tell($("documents-status"), t("deleted", doc.filename));
    } catch (error) { tell($("documents-status"), error.message, true); }
    loadDocuments();
  });
  return button;
}

async function loadUsage() {
  try {
    const usage = await api("/v1/usage");
    const lines = [`${t("usageLine", t("last24h"), usage.last_24h)} · ${t("usageLine", t("last7d"), usage.last_7d)}`];
    if (state.role === "admin") {
      const tenant = await api("/v1/usage?scope=tenant");
      lines.push(`${t("wholeTenant")}: ${t("usageLine", t("last7d"), tenant.last_7d)}`);
      for (const person of tenant.last_7d.by_user || []) lines.push(`  ${person.email || "?"}: ${num(person.total_tokens)}`);
    }
    tell($("usage"), lines.join("\n"));
  } catch (error) { tell($("usage"), error.message, true); }
}

// Upload with a progress bar (XMLHttpRequest reports upload progress; fetch does not), then
// follow the ingestion job until the document is ready.
$("files").addEventListener("change", () => {
  for (const file of $("files").files) upload(file);
  $("files").value = "";
});

function upload(file) {
  const row = element("div");
  const label = element("div", "muted");
  const say = (text, isError = false) => {
    label.replaceChildren(named(file.name, `: ${text}`));
    label.classList.toggle("error", isError);
  };
  say(t("uploading"));
  const bar = element("progress");
  bar.max = 100; bar.value = 0;
  bar.setAttribute("aria-label", file.name);
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
    if (job) say(job.status === "succeeded" ? t("ready") : `${t(`stage_${job.status}`)}: ${job.error}`, job.status !== "succeeded");
    loadDocuments();
  };
  request.onerror = () => { say(t("uploadUnreachable"), true); bar.remove(); };
  const form = new FormData();
  form.append("file", file);
  request.send(form);
}

// Follow a job by its events (GET /v1/jobs/{id}/events): progress as it happens, then its end.
// Nothing polls. EventSource reconnects by itself (with Last-Event-ID) after a dropped
// connection; when the server closes the stream for good, the job is read once to say why.
const FINISHED = ["succeeded", "failed", "cancelled"];
function progressText(progress, status) {
  const counted = progress.pages_total ? ` ${num(progress.pages_done ?? 0)}/${t("pages", progress.pages_total)}` : "";
  return `${t(`stage_${progress.stage || status}`)}${counted}`;
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
      if (source.readyState !== EventSource.CLOSED) { say(t("lost"), true); return; }
      try {
        const now = await api(`/v1/jobs/${job.id}`);
        if (FINISHED.includes(now.status)) { resolve(now); return; }
        say(t("streamClosed"), true);
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

// ---- conversations ----------------------------------------------------------------------------

async function loadSessions() {
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

function remember(session) {
  state.session = session;
  if (session) localStorage.setItem("docuchat.session", session);
  else localStorage.removeItem("docuchat.session");
  for (const item of $("sessions").children) item.classList.toggle("current", item.dataset.id === session);
}

// An earlier conversation: its questions and answers, with their citations, newest on top.
async function openSession(id) {
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

// ---- questions --------------------------------------------------------------------------------

// A question and its answer on the page: the answer's [n] markers link to its sources, and a
// source shows the text DocuChat read on its page.
function newTurn(question) {
  const turn = element("div", "turn");
  const asked = element("div", "question", question);
  asked.dir = "auto";
  const answer = element("div", "answer");
  answer.dir = "auto";
  const sources = element("ol", "citations");
  const viewer = element("div", "page-text");
  viewer.hidden = true;
  viewer.setAttribute("aria-live", "polite");
  turn.append(asked, answer, sources, viewer);
  $("conversation").prepend(turn);
  let text = "";
  const render = () => {
    // [n] markers become links to their source; `code` stays as it is, brackets and all.
    answer.replaceChildren(...text.split(/(`[^`\n]*`|\[\d+\])/).map((part) => {
      if (part.length > 1 && part.startsWith("`") && part.endsWith("`")) return element("code", null, part.slice(1, -1));
      const marker = part.match(/^\[(\d+)\]$/);
      if (!marker) return document.createTextNode(part);
      const link = element("a", null, part);
      pressable(link, () => light(sources, marker[1]));
      return link;
    }));
  };
  return {
    answer,
    setText(value) { text = value; render(); },
    addText(value) { text += value; render(); },
    setCitations(citations) {
      sources.replaceChildren(...citations.map((c) => {
        const item = element("li");
        item.value = c.n;
        item.dataset.n = c.n;
        const link = element("a");
        const where = c.page_start === c.page_end ? t("pageN", c.page_start) : t("pagesNM", c.page_start, c.page_end);
        const comma = t("comma");
        link.append(named(c.filename, c.section ? `${comma}${t("section", c.section)}${comma}${where}` : `${comma}${where}`));
        link.title = t("showPage");
        pressable(link, () => { light(sources, String(c.n)); showPage(viewer, c); });
        item.append(link);
        return item;
      }));
    },
    fail(message) { answer.append(" ", element("span", "error", message)); },
  };
}

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

async function showPage(viewer, citation) {
  viewer.hidden = false;
  viewer.replaceChildren(t("loadingPage"));
  let page;
  try {
    page = await api(`/v1/files/${citation.document_id}/pages/${citation.page_start}`);
  } catch (error) {
    viewer.replaceChildren(element("p", "error", error.message));
    return;
  }
  const title = element("h3");
  title.append(named(page.filename, `${t("comma")}${t("pageN", page.number)} (${t(`how_${page.source}`)})`));
  const parts = [title];
  if (page.flagged || page.source === "skipped") parts.push(element("p", "warning", page.note));
  const text = element("pre", null, page.text);
  text.dir = "auto";
  parts.push(text);
  viewer.replaceChildren(...parts);
}

function light(list, n) {
  for (const item of list.children) item.classList.toggle("lit", item.dataset.n === n);
  list.querySelector(`[data-n="${n}"]`)?.scrollIntoView({ block: "nearest" });
}

show();
