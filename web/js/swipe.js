// A horizontal swipe (touch, pen or a mouse drag) across an element: the
// enlarged live tile uses it to step to the next or previous camera on a
// phone. Vertical movement stays with the page (the element has
// `touch-action: pan-y`), and a press that moves too little stays a tap.

/** Horizontal travel (px) that makes a swipe, and how much more horizontal than vertical. */
const MIN_DX = 50;
const RATIO = 1.5;

/**
 * Calls `onSwipe(-1 | 1)` (1: towards the next, a swipe to the left) when a
 * single-pointer press crosses `box` sideways and `enabled()` says so. Returns
 * `{ consume() }`: true once after a swipe, so the box's click handler can
 * ignore the click the release makes.
 */
export function swipeable(box, enabled, onSwipe) {
  let start = null;
  let swiped = false;
  let pointers = 0;
  box.addEventListener("pointerdown", (ev) => {
    pointers++;
    start = pointers === 1 && !ev.target.closest("button") ? { x: ev.clientX, y: ev.clientY, id: ev.pointerId } : null;
  });
  const end = (ev, cancelled) => {
    pointers = Math.max(0, pointers - 1);
    const s = start;
    if (!s || s.id !== ev.pointerId) return;
    start = null;
    if (cancelled || !enabled()) return;
    const dx = ev.clientX - s.x;
    const dy = ev.clientY - s.y;
    if (Math.abs(dx) >= MIN_DX && Math.abs(dx) > RATIO * Math.abs(dy)) {
      swiped = true;
      onSwipe(dx < 0 ? 1 : -1);
    }
  };
  box.addEventListener("pointerup", (ev) => end(ev, false));
  box.addEventListener("pointercancel", (ev) => end(ev, true));
  return {
    consume() { const s = swiped; swiped = false; return s; },
  };
}
