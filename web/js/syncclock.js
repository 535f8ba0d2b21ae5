// The one clock of synchronised playback: a wall time (ms since the epoch,
// the moment the pictures should show) that runs at the chosen speed while
// playing. Every tile follows it; the tiles never drive it, except that it
// is held while a tile that has footage at this moment is still loading, so
// nobody runs ahead of a tile that cannot show its picture yet.

/** How far the clock may run ahead of the leading picture, ms. */
const LEAD_MS = 60;

export class SyncClock {
  constructor(t = Date.now()) {
    this.base = t;
    this.at = performance.now();
    this.rate = 1;
    this.playing = false;
    this.held = false;
    /**
     * Optional: the wall time of the leading picture (or null). The clock
     * never reads more than LEAD_MS past it, so on a machine that decodes
     * slower than real time it runs with the pictures instead of away.
     */
    this.leader = null;
  }

  /** Whether the clock moves now. */
  running() {
    return this.playing && !this.held;
  }

  /** The wall time the pictures should show now, ms. */
  now() {
    if (!this.running()) return this.base;
    const t = this.base + (performance.now() - this.at) * this.rate;
    const l = this.leader ? this.leader() : null;
    return l !== null && l >= this.base && t > l + LEAD_MS ? l + LEAD_MS : t;
  }

  /** Fixes the current reading as the new origin (before any change of state). */
  rebase() {
    this.base = this.now();
    this.at = performance.now();
  }

  seek(t) {
    this.base = t;
    this.at = performance.now();
  }

  setRate(rate) {
    this.rebase();
    this.rate = rate;
  }

  play() {
    this.rebase();
    this.playing = true;
  }

  pause() {
    this.rebase();
    this.playing = false;
  }

  /** Holds (true) or releases the clock while tiles load. */
  hold(on) {
    if (on === this.held) return;
    this.rebase();
    this.held = on;
  }
}
