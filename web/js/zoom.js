// Digital zoom and pan on a picture (a live tile): the wheel or a two-finger
// pinch zooms around the pointer, a drag pans while zoomed, a double-click
// (or double tap) resets. Only a CSS transform on the pictures: the stream and
// its resolution stay as they are, so this magnifies what the camera sends.

const MAX = 8;
/** Wheel notches: 100 px of deltaY zooms by e^0.2 ≈ 1.22×. */
const WHEEL = 0.002;
/** A press that moves less than this (px) is a click, not a drag. */
const SLOP = 4;

/**
 * Makes `box` (positioned, overflow hidden) zoom the elements `targets()`
 * returns. `onChange(scale)` after each change. Returns
 * `{ reset(), scale(), consumeDrag() }`: `consumeDrag()` is true once after a
 * press that panned or pinched, so the box's click handler can ignore it.
 */
export function zoomable(box, targets, onChange = () => {}) {
  let s = 1;
  let x = 0;
  let y = 0;
  let dragged = false;
  /** pointerId → last {x, y} in the box's coordinates. */
  const pointers = new Map();
  let pinch = null;
  let press = null;

  function apply() {
    // Keep the picture covering the box: no panning past its edges.
    const w = box.clientWidth;
    const hgt = box.clientHeight;
    x = Math.min(0, Math.max(w - w * s, x));
    y = Math.min(0, Math.max(hgt - hgt * s, y));
    const t = s === 1 ? "" : `translate(${x.toFixed(1)}px, ${y.toFixed(1)}px) scale(${s.toFixed(3)})`;
    for (const el of targets()) {
      el.style.setProperty("transform-origin", "0 0");
      if (t) el.style.setProperty("transform", t);
      else el.style.removeProperty("transform");
    }
    box.classList.toggle("zoomed", s > 1);
    onChange(s);
  }

  /** Zooms to `next` keeping the point (px, py) of the box where it is. */
  function zoomAt(next, px, py) {
    next = Math.min(MAX, Math.max(1, next));
    if (next === 1) { s = 1; x = 0; y = 0; apply(); return; }
    x = px - ((px - x) * next) / s;
    y = py - ((py - y) * next) / s;
    s = next;
    apply();
  }

  const local = (ev) => {
    const r = box.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  };

  box.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const p = local(ev);
    zoomAt(s * Math.exp(-ev.deltaY * WHEEL), p.x, p.y);
  }, { passive: false });

  box.addEventListener("pointerdown", (ev) => {
    // Buttons over the picture (the zoom level's reset) keep their own clicks.
    if ((ev.button !== 0 && ev.pointerType === "mouse") || ev.target.closest("button")) return;
    pointers.set(ev.pointerId, local(ev));
    if (pointers.size === 1) { press = { ...local(ev), moved: false }; dragged = false; }
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = { d: Math.hypot(a.x - b.x, a.y - b.y) || 1, s };
    }
    // Only a zoomed picture or a pinch takes the pointer; otherwise a click stays a click.
    if (s > 1 || pointers.size === 2) box.setPointerCapture?.(ev.pointerId);
  });

  box.addEventListener("pointermove", (ev) => {
    const prev = pointers.get(ev.pointerId);
    if (!prev) return;
    const p = local(ev);
    pointers.set(ev.pointerId, p);
    if (pointers.size >= 2 && pinch) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      dragged = true;
      zoomAt(pinch.s * (d / pinch.d), (a.x + b.x) / 2, (a.y + b.y) / 2);
      return;
    }
    if (press && !press.moved && Math.hypot(p.x - press.x, p.y - press.y) > SLOP) press.moved = true;
    if (s > 1 && press?.moved) {
      dragged = true;
      x += p.x - prev.x;
      y += p.y - prev.y;
      apply();
    }
  });

  const up = (ev) => {
    pointers.delete(ev.pointerId);
    if (pointers.size < 2) pinch = null;
    if (!pointers.size) press = null;
  };
  box.addEventListener("pointerup", up);
  box.addEventListener("pointercancel", up);

  box.addEventListener("dblclick", (ev) => {
    if (s === 1) return;
    ev.preventDefault();
    ev.stopPropagation();
    s = 1; x = 0; y = 0;
    apply();
  });

  // A resized box (layout change, enlarge) keeps the picture inside it.
  new ResizeObserver(() => { if (s > 1) apply(); }).observe(box);

  return {
    reset() { s = 1; x = 0; y = 0; apply(); },
    scale: () => s,
    consumeDrag() { const d = dragged; dragged = false; return d; },
  };
}
