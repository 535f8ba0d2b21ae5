// The top menu on one line: the entries that do not fit beside the brand and
// the session controls move, last first, into a "More" menu at its end, and
// come back when there is room (measured, not guessed from a breakpoint, so
// the role's entries and the window's width both count).

import { $, $$ } from "./dom.js";

const list = () => $("#nav > ul");
const more = () => $("#nav .nav-more");
const moreList = () => $("#nav-more-list");
const moreButton = () => $("#nav-more");

/** The menu entries in their order in the page (the "More" holder excluded). */
function entries() {
  return $$("#nav li[data-order]").sort((a, b) => a.dataset.order - b.dataset.order);
}

function setOpen(open) {
  moreList().hidden = !open;
  moreButton().setAttribute("aria-expanded", String(open));
}

const overflows = (ul) => ul.scrollWidth > ul.clientWidth + 1;

/** Lays the menu out again: everything in the bar, then the overflow into "More". */
export function fitNav() {
  const ul = list();
  if (!ul || $("#nav").hidden) return;
  const holder = more();
  const items = entries();
  for (const li of items) ul.insertBefore(li, holder);
  holder.hidden = true;
  if (!overflows(ul)) {
    setOpen(false);
    markCurrent();
    return;
  }
  holder.hidden = false;
  const shown = items.filter((li) => !li.hidden);
  // Always leave at least one entry beside "More".
  for (let i = shown.length - 1; i > 0 && overflows(ul); i--) moreList().prepend(shown[i]);
  markCurrent();
}

/** "More" looks current when the page shown is one of its entries. */
export function markCurrent() {
  const inside = $$("a[aria-current]", moreList()).length > 0;
  moreButton().classList.toggle("current", inside);
}

/** Numbers the entries once and follows the window's size. */
export function initNav() {
  $$("#nav > ul > li:not(.nav-more)").forEach((li, i) => { li.dataset.order = String(i); });
  moreButton().addEventListener("click", () => setOpen(moreList().hidden));
  moreList().addEventListener("click", (ev) => { if (ev.target.closest("a")) setOpen(false); });
  document.addEventListener("click", (ev) => { if (!ev.target.closest("#nav .nav-more")) setOpen(false); });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !moreList().hidden) {
      setOpen(false);
      moreButton().focus();
    }
  });
  // The bar's width and the session's (the bell and the name appear after login).
  const ro = new ResizeObserver(() => fitNav());
  ro.observe($("header.top"));
  ro.observe($("#session"));
}
