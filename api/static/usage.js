// Usage: the signed-in member's tokens, and for admins the whole workspace by member.
import { api } from "./api.js";
import { $, tell } from "./dom.js";
import { num, t } from "./i18n.js";
import { state } from "./state.js";

export async function loadUsage() {
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
