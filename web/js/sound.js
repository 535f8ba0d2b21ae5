// A live tile's sound toggle. Shown only while the tile's feed has a sound
// track (the server's init says so); muted by default, since browsers only
// start media by themselves when it is muted. The live view keeps at most one
// tile audible, as control rooms expect: turning one on turns the others off.

const SVG = "http://www.w3.org/2000/svg";

/** A speaker, crossed out when `on` is false, sound waves when true (no font needed). */
function speaker(on) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = (d, fill) => {
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", d);
    p.setAttribute("fill", fill ? "currentColor" : "none");
    p.setAttribute("stroke", "currentColor");
    p.setAttribute("stroke-width", "2");
    p.setAttribute("stroke-linecap", "round");
    p.setAttribute("stroke-linejoin", "round");
    svg.append(p);
  };
  path("M3 9.5h4l5-4v13l-5-4H3z", true);
  if (on) {
    path("M15.5 9a4 4 0 0 1 0 6", false);
    path("M18 6.5a7.5 7.5 0 0 1 0 11", false);
  } else {
    path("M16 9.5l5 5M21 9.5l-5 5", false);
  }
  return svg;
}

export class SoundToggle {
  /**
   * @param {HTMLVideoElement} video the tile's picture, whose sound this turns on and off
   * @param {string} name the camera's name, for the label
   * @param {(on: boolean) => void} onChange called when the user turns it on or off
   */
  constructor(video, name, onChange) {
    this.video = video;
    this.name = name;
    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.className = "icon tile-sound";
    this.button.hidden = true;
    this.button.addEventListener("click", (ev) => {
      ev.stopPropagation();
      onChange(this.video.muted);
    });
    this.set(false);
  }

  /** Turns the sound on or off and says so on the button. */
  set(on) {
    this.video.muted = !on;
    const b = this.button;
    b.setAttribute("aria-pressed", String(on));
    b.setAttribute("aria-label", `${on ? "Turn off" : "Turn on"} the sound of ${this.name}`);
    b.title = on ? "Sound on: click to mute" : "Sound off: click to listen";
    b.dataset.sound = on ? "on" : "off";
    b.replaceChildren(speaker(on));
  }

  /** Whether this tile is audible. */
  on() {
    return !this.video.muted;
  }

  /** Shows the toggle while the feed has sound; without it the tile is muted again. */
  available(hasSound) {
    this.button.hidden = !hasSound;
    if (!hasSound && this.on()) this.set(false);
  }
}
