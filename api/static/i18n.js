// The page's language: its labels, numbers and dates, in Persian or English.
import { $ } from "./dom.js";

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
export let lang = localStorage.getItem("docuchat.lang")
  || ((navigator.languages || [navigator.language]).some((l) => /^fa\b/i.test(l)) ? "fa" : "en");
export const t = (key, ...args) => {
  const entry = TEXT[lang][key] ?? TEXT.en[key] ?? key;
  return typeof entry === "function" ? entry(...args) : entry;
};
// Numbers in the interface's digits: Persian digits in Persian.
export const num = (n) => Number(n).toLocaleString(lang === "fa" ? "fa-IR" : "en-US");
export const when = (iso) => new Date(iso).toLocaleString(lang === "fa" ? "fa-IR" : "en-US");

export function applyLanguage() {
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "fa" ? "rtl" : "ltr";
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) element.placeholder = t(element.dataset.i18nPlaceholder);
  const toggle = $("language");
  toggle.textContent = t("language");
  toggle.lang = lang === "fa" ? "en" : "fa";
}

// The header's button: the other language, kept in the browser.
export function switchLanguage() {
  lang = lang === "fa" ? "en" : "fa";
  localStorage.setItem("docuchat.lang", lang);
  applyLanguage();
}
