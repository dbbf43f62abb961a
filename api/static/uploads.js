// Uploading documents: each with its progress bar, then its ingestion followed.
import { failure, parsed } from "./api.js";
import { loadDocuments } from "./documents.js";
import { $, element, named } from "./dom.js";
import { t } from "./i18n.js";
import { follow } from "./jobs.js";
import { state } from "./state.js";

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
