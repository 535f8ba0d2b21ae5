// Formatting of times, sizes and rates for people. The API speaks UTC
// (RFC 3339); the UI shows and reads times in the server's time zone (named by
// GET /api/me, set with `setZone`), with its abbreviation (GMT/BST), so every
// operator and every export speaks of the same clock, and the repeated hour of
// an October night is told apart. 24-hour clock.

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** The zone times are shown in: the server's once known, else the browser's. */
export let zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

let wallFmt = null;
const abbrFmts = new Map();

/** Shows and reads times in the IANA zone `name` (ignored if this browser does not know it). */
export function setZone(name) {
  if (!name || name === zone) return;
  try {
    new Intl.DateTimeFormat("en-GB", { timeZone: name });
  } catch {
    return;
  }
  zone = name;
  wallFmt = null;
  abbrFmts.clear();
}

/** The wall-clock fields of `d` in the zone: {y, m (1-12), d, hh, mi, ss, wd (0 = Sunday)}. */
export function wall(d) {
  d = d instanceof Date ? d : new Date(d);
  wallFmt ??= new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, hourCycle: "h23", weekday: "short",
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const p = {};
  for (const { type, value } of wallFmt.formatToParts(d)) p[type] = value;
  const wd = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(p.weekday);
  return { y: Number(p.year), m: Number(p.month), d: Number(p.day), hh: Number(p.hour) % 24, mi: Number(p.minute), ss: Number(p.second), wd };
}

/** The zone's abbreviation at `d` ("GMT", "BST", "CET"), or its offset ("GMT+3") where it has none. */
export function zoneAbbr(d) {
  d = d instanceof Date ? d : new Date(d);
  const name = (locale) => {
    if (!abbrFmts.has(locale)) abbrFmts.set(locale, new Intl.DateTimeFormat(locale, { timeZone: zone, timeZoneName: "short" }));
    return (abbrFmts.get(locale).formatToParts(d).find((x) => x.type === "timeZoneName") || {}).value || "";
  };
  // British English names GMT/BST and CET/CEST; American English EST/PDT.
  for (const l of ["en-GB", "en-US"]) {
    const n = name(l);
    if (n && !/^(GMT|UTC)[+-]/.test(n)) return n === "UTC" ? "UTC" : n;
  }
  return name("en-GB");
}

/** Milliseconds the zone is ahead of UTC at `t`. */
function offsetAt(t) {
  const w = wall(new Date(t));
  return Date.UTC(w.y, w.m - 1, w.d, w.hh, w.mi, w.ss) - Math.floor(t / 1000) * 1000;
}

/**
 * The moment a wall-clock time in the zone names (month 1-12; out-of-range
 * days roll over). In the repeated hour of a clock change, the first of the two.
 */
export function fromWall(y, m, d, hh = 0, mi = 0, ss = 0) {
  const guess = Date.UTC(y, m - 1, d, hh, mi, ss);
  const a = guess - offsetAt(guess - 86400e3 / 2);
  const b = guess - offsetAt(a);
  // Of the candidates that show this wall time, the earlier (e.g. 01:30 BST before GMT).
  const ok = [a, b, guess - offsetAt(guess + 86400e3 / 2)].filter((t) => offsetAt(t) === guess - t);
  return new Date(ok.length ? Math.min(...ok) : b);
}

/** Reads `yyyy-mm-dd` or `yyyy-mm-ddThh:mm[:ss]` (form fields) as a time in the zone. */
export function fromInput(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?/.exec(s || "");
  if (!m) return new Date(NaN);
  return fromWall(+m[1], +m[2], +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
}

/** `2025-03-14 09:05:01 GMT` in the zone, with its abbreviation. */
export function dateTime(t) {
  if (t === null || t === undefined || t === "") return "";
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return `${localDate(d)} ${clock(d)} ${zoneAbbr(d)}`;
}

/** `09:05:01` in the zone. */
export function clock(d) {
  const w = wall(d);
  return `${pad(w.hh)}:${pad(w.mi)}:${pad(w.ss)}`;
}

/** `2025-03-14` in the zone, the format of `<input type=date>`. */
export function localDate(d) {
  const w = wall(d);
  return `${w.y}-${pad(w.m)}-${pad(w.d)}`;
}

/** `2025-03-14T09:05:01` in the zone, the format of `<input type=datetime-local step=1>`. */
export function localDateTimeInput(d) {
  const w = wall(d);
  return `${localDate(d)}T${pad(w.hh)}:${pad(w.mi)}:${pad(w.ss)}`;
}

/** Midnight in the zone starting the day named by `yyyy-mm-dd`. */
export function dayStart(s) {
  const [y, m, d] = s.split("-").map(Number);
  return fromWall(y, m, d);
}

/** Midnight starting the day `n` days after `date`'s (days of 23 or 25 hours too). */
export function nextDay(date, n = 1) {
  const w = wall(date);
  return fromWall(w.y, w.m, w.d + n);
}

/** Midnight starting the first day of the month `n` months after `date`'s. */
export function monthStart(date, n = 0) {
  const w = wall(date);
  const t = new Date(Date.UTC(w.y, w.m - 1 + n, 1));
  return fromWall(t.getUTCFullYear(), t.getUTCMonth() + 1, 1);
}

/** Bytes as `1.2 GiB`. */
export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Bits per second as `1.5 Mbit/s`. */
export function bitrate(bps) {
  if (!bps) return "";
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

/** Seconds as `1 h 05 min` / `4 min 10 s` / `12 s`. */
export function duration(s) {
  s = Math.max(0, Math.round(s));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${s} s`;
}

/**
 * What a live tile says, in plain words, from the camera's status in the API,
 * the tile's own player and whether the NVR answers at all. "Live" only while
 * frames are reaching this browser.
 * @returns {{label: string, kind: string, text: string}} badge label, badge
 *   style (a state-* class) and the overlay sentence ("" when the picture is fine)
 */
export function tileState({ cam, playerLive, stalledSince, nvrDownSince, now = Date.now() }) {
  if (nvrDownSince) {
    return { label: "NVR unreachable", kind: "auth_failed", text: `No connection to the NVR since ${clock(nvrDownSince)} · retrying` };
  }
  if (cam.enabled === false) return { label: "Disabled", kind: "disabled", text: "Camera disabled in the configuration." };
  if (playerLive) return { label: "Live", kind: "streaming", text: "" };
  if (cam.state === "streaming" && cam.no_key_frame_since) {
    // Frames arrive, but none a picture can start from: nothing to show, nothing recorded.
    return { label: "No key frame", kind: "backoff", text: `No key frame from the camera since ${clock(cam.no_key_frame_since)} · nothing is recorded until one arrives` };
  }
  const retry = cam.next_attempt ? Math.max(0, Math.ceil((new Date(cam.next_attempt).getTime() - now) / 1000)) : null;
  const retrying = retry === null ? "retrying" : retry > 0 ? `retrying in ${retry} s` : "retrying now";
  const since = cam.offline_since ? ` since ${clock(cam.offline_since)}` : "";
  if (cam.state === "auth_failed") return { label: "Camera refused login", kind: "auth_failed", text: `The camera refused the NVR's login${since} · ${retrying}` };
  if (cam.state === "backoff" || (cam.state === "connecting" && cam.offline_since && cam.reconnects > 0)) {
    // `why` is the server's plain-words reason, the same words its alarms use.
    const why = cam.why ? ` · ${cam.why}` : "";
    return { label: "Offline", kind: "backoff", text: `Offline${since}${why} · ${retrying}` };
  }
  if (stalledSince) return { label: "No picture", kind: "backoff", text: `No picture since ${clock(stalledSince)}` };
  return { label: "Connecting", kind: "connecting", text: "Connecting…" };
}

/** Short codec name from an RFC 6381 string. */
export function codecName(c) {
  if (!c) return "";
  if (/^(avc1|avc3)/i.test(c)) return "H.264";
  if (/^(hvc1|hev1)/i.test(c)) return "H.265";
  return c;
}

/** The camera's sound in plain words, from `/api/cameras` `audio` ("" when it sends none). */
export function audioText(a) {
  if (!a) return "";
  if (a === "aac") return "AAC, recorded";
  const g711 = /^(pcmu|pcma) → aac$/.exec(a);
  if (g711) return `G.711 (${g711[1].toUpperCase()}), recorded as AAC`;
  const other = /^unsupported: (.*)$/.exec(a);
  if (other) return `${other[1]}: not recorded (video only)`;
  return a;
}

/** Whether an RFC 6381 video codec string is H.265. */
export const isHevc = (c) => /^(hvc1|hev1)/i.test(c || "");
