// The documents: listed with their status, how their pages were read, retry and delete.
import { api } from "./api.js";
import { $, element, named, tell } from "./dom.js";
import { lang, num, t } from "./i18n.js";
import { follow } from "./jobs.js";
import { state } from "./state.js";

let listingFailed = false;
export async function loadDocuments() {
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
