// A question and its answer on the page, with the sources it cites and their pages.
import { api } from "./api.js";
import { $, element, named, pressable } from "./dom.js";
import { t } from "./i18n.js";

// A question and its answer on the page: the answer's [n] markers link to its sources, and a
// source shows the text DocuChat read on its page.
export function newTurn(question) {
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
