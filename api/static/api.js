// Talking to the API: every request carries the workspace and the token.
import { lang, num, t } from "./i18n.js";
import { signOut } from "./signin.js";
import { state } from "./state.js";

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

export function failure(status, body, retryAfterHeader) {
  const retryAfter = Number.parseInt(retryAfterHeader, 10) || null;
  const sentences = STATUS_SENTENCES[lang];
  let sentence = (body && typeof body.detail === "string" && body.detail)
    || sentences[status] || sentences.other(status);
  if (status === 429 && retryAfter && !/retry in/.test(sentence)) sentence += sentences.retryIn(retryAfter);
  return new ApiError(sentence, status, retryAfter);
}

export function parsed(text) {
  try { return JSON.parse(text); } catch { return null; }
}

export async function api(path, options = {}) {
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

export const json = (data, method = "POST") => ({ method, body: JSON.stringify(data), headers: { "Content-Type": "application/json" } });
