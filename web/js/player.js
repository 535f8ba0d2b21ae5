// Live player: one camera's WebSocket feed into a <video> through Media
// Source Extensions.
//
// Protocol (src/web/live.rs): a text message {"type":"init","codec","audio",
// "width","height"} announces an init segment, which follows as one binary
// message; every later binary message is one moof+mdat holding one frame
// (and the sound that came with it: `audio` names the sound track's codec,
// null for a camera without sound; `codec` then lists both tracks').
// A later init message means the camera changed parameters: a new
// MediaSource and SourceBuffer are made for it. Before each key frame a text
// message {"type":"clock","t","wall_ms"} says when the frame at decode time t
// (seconds) reached the server: `wallTime()` turns the picture's playback
// position into the real date and time it shows.
//
// Latency: the buffer is kept short (old media is removed), playback is
// sped up slightly when it drifts behind and jumps to the live edge when it
// falls further behind (e.g. after the tab was in the background) or lands
// in a hole left when the server skipped frames for a slow connection.
//
// A codec this browser cannot decode (H.265 on Chromium/Linux, Firefox) is
// asked for again with `?codec=h264`: the server converts it live, within a
// limit of concurrent conversions (503 or close code 1013 when full).

import { seg } from "./api.js";

const MS = window.ManagedMediaSource || window.MediaSource;

/** Seconds behind the live edge before jumping to it. */
const MAX_LAG = 1.5;
/** Where to land after a jump: this far behind the newest frame. */
const TARGET_LAG = 0.2;
/** Seconds behind before playing a little faster to catch up. */
const CATCH_UP_LAG = 0.5;
/** Media kept behind the playhead, and when to trim back to that. */
const KEEP_BEHIND = 8;
const TRIM_AT = 20;
/** Frames held while the SourceBuffer is busy before giving up and reconnecting. */
const MAX_QUEUE = 500;
/** Reconnect backoff, seconds. */
const BACKOFF_MIN = 1;
const BACKOFF_MAX = 30;
/** No frame for this long while connected: the tile stops saying "Live". */
const STALL_SECONDS = 3;
/** Key-frame clocks kept: enough to cover the media kept behind the playhead. */
const CLOCKS_KEPT = 32;
/** Frames counted for `frameRate()`: those that arrived in this window (ms) ... */
const RATE_WINDOW_MS = 5000;
/** ... once it spans at least this long, so a burst after a stall does not read as a high rate. */
const RATE_MIN_SPAN_MS = 2000;
/** Close code of a view the server ended: logout, session expiry or changed access (src/web/live.rs). */
const SESSION_ENDED = 1008;

/** The live fMP4's picture track (src/live/mod.rs); sound is track 2. */
const VIDEO_TRACK = 1;

/**
 * Whether a `moof`+`mdat` message carries a picture: a `traf` whose `tfhd`
 * names the video track. Sound can come in fragments of its own, which are
 * not frames. Anything that is not a `moof` counts as a picture.
 */
export function hasPicture(buf) {
  const d = new DataView(buf);
  if (d.byteLength < 8 || d.getUint32(4) !== 0x6d6f6f66 /* moof */) return true;
  const end = Math.min(d.getUint32(0), d.byteLength);
  for (let at = 8; at + 8 <= end;) {
    const size = d.getUint32(at);
    if (size < 8) break;
    // traf, whose first child is its tfhd: size, type, version and flags, track_ID.
    if (d.getUint32(at + 4) === 0x74726166 && at + 24 <= end && d.getUint32(at + 12) === 0x74666864
      && d.getUint32(at + 20) === VIDEO_TRACK) return true;
    at += size;
  }
  return false;
}

/** Whether this browser can play `codec` (RFC 6381) through MSE. */
export function canPlayLive(codec) {
  return Boolean(MS) && MS.isTypeSupported(`video/mp4; codecs="${codec}"`);
}

export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {string} camera camera id
   * @param {(state: string, info?: object) => void} onState
   *   states: connecting, playing, stalled {since: ms epoch of the last
   *   frame}, reconnecting {seconds},
   *   unsupported {codec}, error {message}, ended {signedOut} (the
   *   server closed the view with 1008; the player does not reconnect)
   * @param {() => Promise<void>} [checkSession] called when a connection
   *   fails before any data (the upgrade may have been refused: 401/403)
   * @param {{stream?: "main"|"sub", codec?: "h264"}} [opts]
   *   states also: converting (waiting for the server's H.264), busy (no
   *   conversion slot free; retrying)
   */
  constructor(video, camera, onState, checkSession, opts = {}) {
    this.video = video;
    this.camera = camera;
    this.opts = { ...opts };
    this.onState = onState || (() => {});
    this.checkSession = checkSession || (async () => {});
    this.stopped = true;
    this.ws = null;
    this.ms = null;
    this.sb = null;
    this.queue = [];
    this.pendingInit = null;
    /** [{t, wall}] of the current timeline's recent key frames, oldest first. */
    this.clocks = [];
    this.attempt = 0;
    this.retryTimer = null;
    this.tickTimer = null;
    this.lastData = 0;
    /** Wall time (ms since the epoch) the newest frame arrived, for "No picture since". */
    this.lastFrameAt = 0;
    /** Arrival times (performance.now()) of the pictures of the last RATE_WINDOW_MS. */
    this.arrivals = [];
    /** The video clock at the last tick, and when it last moved. */
    this.lastTime = -1;
    this.lastProgressAt = 0;
    this.state = null;
    /** Facts for the status line and tests. */
    this.info = { codec: null, audio: null, width: 0, height: 0, frames: 0, reconnects: 0, lag: null, jumps: 0, inits: 0 };
    /** Told at each playable init whether the feed has a sound track. */
    this.onTracks = () => {};
    this.video.disableRemotePlayback = true;
    this.onVideoError = () => {
      if (this.stopped) return;
      const msg = this.video.error ? this.video.error.message || `media error ${this.video.error.code}` : "media error";
      this.restart(`The browser could not decode the stream (${msg}).`);
    };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.video.addEventListener("error", this.onVideoError);
    this.tickTimer = setInterval(() => this.tick(), 1000);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.tickTimer);
    this.video.removeEventListener("error", this.onVideoError);
    this.closeSocket();
    this.teardownMedia();
  }

  setState(state, detail = {}) {
    const key = state + JSON.stringify(detail);
    if (key === this.state) return;
    this.state = key;
    this.onState(state, detail);
  }

  /** Changes stream or codec; takes effect on the next (re)start. */
  setOptions(opts) {
    this.opts = { ...this.opts, ...opts };
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams();
    if (this.opts.stream && this.opts.stream !== "main") q.set("stream", this.opts.stream);
    if (this.opts.codec) q.set("codec", this.opts.codec);
    const qs = q.toString();
    return `${proto}//${location.host}/api/cameras/${seg(this.camera)}/live${qs ? `?${qs}` : ""}`;
  }

  connect() {
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.gotData = false;
    this.pendingInit = null;
    this.arrivals = [];
    this.lastData = performance.now();
    this.setState(this.opts.codec ? "converting" : "connecting");
    ws.onmessage = (ev) => { if (this.ws === ws) this.onMessage(ev.data); };
    ws.onclose = (ev) => { if (this.ws === ws) this.onClose(ev.code); };
  }

  closeSocket() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onmessage = ws.onclose = null;
      try { ws.close(1000); } catch { /* already closed */ }
    }
  }

  onMessage(data) {
    this.lastData = performance.now();
    if (typeof data === "string") {
      let m = null;
      try { m = JSON.parse(data); } catch { /* not ours */ }
      if (m && m.type === "init") this.pendingInit = m;
      else if (m && m.type === "clock" && Number.isFinite(m.t) && Number.isFinite(m.wall_ms)) {
        this.clocks.push({ t: m.t, wall: m.wall_ms });
        if (this.clocks.length > CLOCKS_KEPT) this.clocks.shift();
      }
      return;
    }
    if (this.pendingInit) {
      const init = this.pendingInit;
      this.pendingInit = null;
      this.setup(init, data);
      return;
    }
    if (!this.ms) return; // a fragment before any init: nothing can decode it
    this.gotData = true;
    this.lastFrameAt = Date.now();
    this.attempt = 0;
    this.info.frames++;
    if (hasPicture(data)) {
      const now = performance.now();
      this.arrivals.push(now);
      while (now - this.arrivals[0] > RATE_WINDOW_MS) this.arrivals.shift();
    }
    this.queue.push(data);
    if (this.queue.length > MAX_QUEUE) {
      this.restart("The browser fell behind the camera; reconnecting.");
      return;
    }
    this.pump();
  }

  setup(init, data) {
    const mime = `video/mp4; codecs="${init.codec}"`;
    Object.assign(this.info, { codec: init.codec, width: init.width, height: init.height });
    if (!canPlayLive(init.codec)) {
      if (!this.opts.codec) {
        // Ask the server for H.264 instead, at once.
        this.opts.codec = "h264";
        this.closeSocket();
        this.teardownMedia();
        this.connect();
        return;
      }
      // Not even what the server converts to: reconnecting cannot help.
      this.stop();
      this.setState("unsupported", { codec: init.codec });
      return;
    }
    this.teardownMedia();
    this.clocks = [];
    this.arrivals = [];
    this.info.inits++;
    this.info.audio = init.audio || null;
    this.onTracks(Boolean(init.audio));
    this.lastProgressAt = Date.now();
    const ms = new MS();
    this.ms = ms;
    this.queue = [data];
    const url = URL.createObjectURL(ms);
    this.video.src = url;
    ms.addEventListener("sourceopen", () => {
      URL.revokeObjectURL(url);
      if (this.ms !== ms) return;
      try {
        this.sb = ms.addSourceBuffer(mime);
        this.sb.mode = "segments";
      } catch (e) {
        this.restart(`The browser refused the stream: ${e.message}`);
        return;
      }
      this.sb.addEventListener("updateend", () => this.pump());
      this.pump();
    }, { once: true });
  }

  teardownMedia() {
    this.queue = [];
    if (this.ms) {
      const ms = this.ms;
      this.ms = null;
      this.sb = null;
      if (ms.readyState === "open") {
        try { ms.endOfStream(); } catch { /* closing anyway */ }
      }
    }
    if (this.video.getAttribute("src")) {
      this.video.removeAttribute("src");
      this.video.load();
    }
  }

  /** Feeds queued fragments to the SourceBuffer, trimming old media first. */
  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.ms || this.ms.readyState !== "open") return;
    const v = this.video;
    const b = sb.buffered;
    if (b.length && v.currentTime - b.start(0) > TRIM_AT) {
      sb.remove(0, v.currentTime - KEEP_BEHIND);
      return; // updateend comes back here
    }
    if (!this.queue.length) {
      this.chase();
      return;
    }
    // Everything that queued up while busy goes in one append.
    let chunk;
    if (this.queue.length === 1) chunk = this.queue[0];
    else {
      const total = this.queue.reduce((n, a) => n + a.byteLength, 0);
      const u = new Uint8Array(total);
      let at = 0;
      for (const a of this.queue) { u.set(new Uint8Array(a), at); at += a.byteLength; }
      chunk = u;
    }
    const pending = this.queue;
    this.queue = [];
    try {
      sb.appendBuffer(chunk);
    } catch (e) {
      if (e.name === "QuotaExceededError" && b.length && v.currentTime - b.start(0) > 1) {
        this.queue = pending.concat(this.queue);
        sb.remove(0, v.currentTime - 1);
        return;
      }
      this.restart(`The browser refused a frame: ${e.message}`);
    }
  }

  /** Keeps playback near the newest frame. */
  chase() {
    const sb = this.sb;
    if (!sb || !this.ms || this.ms.readyState !== "open") return;
    const v = this.video;
    const b = sb.buffered;
    if (!b.length) return;
    const start = b.start(b.length - 1);
    const end = b.end(b.length - 1);
    const lag = end - v.currentTime;
    this.info.lag = lag;
    if (v.currentTime < start || lag > MAX_LAG) {
      v.currentTime = Math.max(start, end - TARGET_LAG);
      this.info.jumps++;
      v.playbackRate = 1;
    } else {
      v.playbackRate = lag > CATCH_UP_LAG ? 1.1 : 1;
    }
    if (v.paused && !v.seeking) {
      v.play().catch(() => { /* muted autoplay; retried on the next frame */ });
    }
    if (this.gotData && !this.isStalled()) this.setState("playing");
  }

  /**
   * Connected, but for STALL_SECONDS no frame arrived or the picture did not
   * move on (frames the browser cannot place on its timeline freeze it while
   * data still flows).
   */
  isStalled() {
    if (!this.gotData) return false;
    const now = Date.now();
    return now - this.lastFrameAt > STALL_SECONDS * 1000 || now - this.lastProgressAt > STALL_SECONDS * 1000;
  }

  /** Since when (ms epoch) the picture has not moved on, for "No picture since". */
  stalledSince() {
    return Math.min(this.lastFrameAt, this.lastProgressAt);
  }

  /**
   * The real time (ms since the epoch) of the picture shown, from the clock of
   * the newest key frame at or before it; null before any picture.
   */
  wallTime() {
    const c = this.keyClock();
    return c && c.wall + (this.video.currentTime - c.t) * 1000;
  }

  /** The clock of the newest key frame at or before the picture shown ({t, wall}), or null. */
  keyClock() {
    const v = this.video;
    if (!this.sb || !v.readyState || !this.clocks.length) return null;
    let c = this.clocks[0];
    for (const x of this.clocks) if (x.t <= v.currentTime + 0.001) c = x;
    return c;
  }

  /**
   * Frames per second reaching this browser over the last few seconds: what
   * the tile really shows (a conversion's output, after any frames the server
   * skipped for a slow connection); null until a few seconds have arrived or
   * while the picture is not live.
   */
  frameRate() {
    const a = this.arrivals;
    if (!this.isLive() || a.length < 2) return null;
    const span = a[a.length - 1] - a[0];
    return span >= RATE_MIN_SPAN_MS ? ((a.length - 1) * 1000) / span : null;
  }

  /** Whether frames are reaching this browser and the picture moves on. */
  isLive() {
    return !this.stopped && Boolean(this.ws) && this.gotData && !this.isStalled();
  }

  tick() {
    if (this.stopped || !this.ws) return;
    const t = this.video.currentTime;
    if (t !== this.lastTime || !this.gotData) {
      this.lastTime = t;
      this.lastProgressAt = Date.now();
    }
    this.chase();
    if (this.isStalled()) this.setState("stalled", { since: this.stalledSince() });
  }

  /** Drops the connection and media, then reconnects after a backoff. */
  restart(message) {
    if (this.stopped) return;
    this.closeSocket();
    this.teardownMedia();
    if (message) this.setState("error", { message });
    this.scheduleReconnect();
  }

  onClose(code) {
    this.ws = null;
    if (this.stopped) return;
    const hadData = this.gotData;
    // 1013: the server has no conversion slot free; a refused upgrade with
    // codec=h264 is most likely the same (503).
    const busy = code === 1013 || (!hadData && Boolean(this.opts.codec));
    if (code === SESSION_ENDED) {
      this.ended();
      return;
    }
    this.scheduleReconnect(!hadData, busy);
  }

  /**
   * The server ended the view (close 1008) because the session ended or the
   * user's access changed: reconnecting would only meet a 401 or 403, so the
   * player stops and says which it was (the session check also shows the
   * login form if the session is gone).
   */
  async ended() {
    this.stop();
    let signedOut = false;
    try { await this.checkSession(); } catch (e) { signedOut = e && e.status === 401; }
    this.setState("ended", { signedOut });
  }

  async scheduleReconnect(failedEarly = false, busy = false) {
    clearTimeout(this.retryTimer);
    // The server asks for 5 s (Retry-After) when its converters are full.
    const delay = Math.max(busy ? 5 : 0, Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.attempt));
    this.attempt++;
    this.info.reconnects++;
    // Jitter, so many tiles do not all come back in the same instant.
    const wait = delay * (0.75 + Math.random() * 0.5);
    this.setState(busy ? "busy" : "reconnecting", { seconds: Math.round(wait) });
    if (failedEarly) {
      // The upgrade may have been refused because the session ended or the
      // camera was taken away: the session check shows the login if so.
      try { await this.checkSession(); } catch { /* reported by the caller */ }
      if (this.stopped) return;
    }
    this.retryTimer = setTimeout(() => { if (!this.stopped) this.connect(); }, wait * 1000);
  }
}
