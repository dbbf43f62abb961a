// A job followed to its end by its events: an ingestion after an upload or a retry.
import { api } from "./api.js";
import { num, t } from "./i18n.js";

// Follow a job by its events (GET /v1/jobs/{id}/events): progress as it happens, then its end.
// Nothing polls. EventSource reconnects by itself (with Last-Event-ID) after a dropped
// connection; when the server closes the stream for good, the job is read once to say why.
const FINISHED = ["succeeded", "failed", "cancelled"];
function progressText(progress, status) {
  const counted = progress.pages_total ? ` ${num(progress.pages_done ?? 0)}/${t("pages", progress.pages_total)}` : "";
  return `${t(`stage_${progress.stage || status}`)}${counted}`;
}
export function follow(job, say) {
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
