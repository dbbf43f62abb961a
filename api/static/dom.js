// Making and filling the page's elements: what every section of the page uses.
export const $ = (id) => document.getElementById(id);

export const element = (tag, className, text) => {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
};

export function tell(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// A file name inside a sentence: isolated, so a Persian name keeps its own direction
// without turning the whole line around (and an English one inside Persian text).
export function named(name, rest) {
  const isolated = document.createElement("bdi");
  isolated.textContent = name;
  const fragment = document.createDocumentFragment();
  fragment.append(isolated, rest);
  return fragment;
}

// Activate with Enter as well as a click: for links that are not links to another page.
export function pressable(node, action) {
  node.tabIndex = 0;
  node.setAttribute("role", "button");
  node.addEventListener("click", action);
  node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); action(); } });
}
