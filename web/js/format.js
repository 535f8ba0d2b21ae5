// Formatting of times, sizes and rates for people. The API speaks UTC
// (RFC 3339); the UI shows the browser's local time and says so.

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** The browser's time zone name, e.g. "Europe/London". */
export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

/** `2025-03-14 09:05:01` in local time. */
export function dateTime(t) {
  if (t === null || t === undefined || t === "") return "";
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return `${localDate(d)} ${clock(d)}`;
}

/** `09:05:01` in local time. */
export function clock(d) {
  d = d instanceof Date ? d : new Date(d);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `2025-03-14` (local), the format of `<input type=date>`. */
export function localDate(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** `2025-03-14T09:05` (local), the format of `<input type=datetime-local>`. */
export function localDateTimeInput(d) {
  return `${localDate(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Local midnight starting the day named by `yyyy-mm-dd`. */
export function dayStart(s) {
  const [y, m, d] = s.split("-").map(Number);
  return new Date(y, m - 1, d, 0, 0, 0, 0);
}

/** The local day after `date` (handles daylight-saving days of 23 or 25 hours). */
export function nextDay(date, n = 1) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + n, 0, 0, 0, 0);
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
  const retry = cam.next_attempt ? Math.max(0, Math.ceil((new Date(cam.next_attempt).getTime() - now) / 1000)) : null;
  const retrying = retry === null ? "retrying" : retry > 0 ? `retrying in ${retry} s` : "retrying now";
  const since = cam.offline_since ? ` since ${clock(cam.offline_since)}` : "";
  if (cam.state === "auth_failed") return { label: "Camera refused login", kind: "auth_failed", text: `The camera refused the NVR's login${since} · ${retrying}` };
  if (cam.state === "backoff" || (cam.state === "connecting" && cam.offline_since && cam.reconnects > 0)) {
    return { label: "Offline", kind: "backoff", text: `Offline${since} · ${retrying}` };
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
