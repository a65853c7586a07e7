// The owner's settings panel: a form per camera (source, size, rate, bitrate, encoder,
// recording) offering what the device's cameras can do (`/api/devices`), and a JSON merge
// patch for everything else. Uses `api` and `say` from access.js.

/** Sizes and rates a capture device offers, as "WxH" → [fps…]. */
function modesOf(machine, path) {
  const modes = new Map();
  const node = (machine.video_nodes || []).find((n) => n.path === path);
  for (const format of (node && node.formats) || []) {
    for (const s of format.sizes || []) {
      const key = `${s.width}x${s.height}`;
      modes.set(key, [...new Set([...(modes.get(key) || []), ...(s.fps || []).map(Math.round)])]);
    }
  }
  return modes;
}

function field(label, input) {
  const l = document.createElement("label");
  l.append(label + " ", input);
  return l;
}

function input(name, value, attrs = {}) {
  const el = document.createElement("input");
  el.name = name;
  el.value = value === undefined || value === null ? "" : value;
  Object.assign(el, attrs);
  return el;
}

function select(name, options, value) {
  const el = document.createElement("select");
  el.name = name;
  for (const o of options) el.append(new Option(o, o, false, o === value));
  return el;
}

/** One camera's form; `save` gets the changed camera. */
function cameraForm(cam, machine, save) {
  const form = document.createElement("form");
  form.className = "camera-setting";
  form.dataset.camera = cam.name;
  const h = document.createElement("h3");
  h.textContent = cam.name;
  const sources = document.createElement("datalist");
  sources.id = `sources-${cam.name}`;
  for (const s of ["auto", "test", "libcamera", ...(machine.video_nodes || []).filter((n) => n.capture).map((n) => n.path)]) {
    sources.append(new Option(s, s));
  }
  const source = input("source", cam.source, { size: 40 });
  source.setAttribute("list", sources.id);
  const size = input("size", `${cam.width}x${cam.height}`, { pattern: "[0-9]+x[0-9]+", size: 9 });
  const sizes = document.createElement("datalist");
  sizes.id = `sizes-${cam.name}`;
  size.setAttribute("list", sizes.id);
  const offerSizes = () => {
    sizes.replaceChildren(...[...modesOf(machine, source.value).keys()].map((k) => new Option(k, k)));
  };
  source.addEventListener("change", offerSizes);
  offerSizes();
  const fps = input("fps", cam.fps, { type: "number", min: 1, max: 120 });
  const bitrate = input("bitrate_kbps", cam.bitrate_kbps, { type: "number", min: 100, max: 50000 });
  const encoder = select("encoder", ["auto", "hardware", "x264", "openh264"], cam.encoder);
  const recording = input("recording", "", { type: "checkbox", checked: cam.recording.enabled });
  const segment = input("segment", cam.recording.segment, { size: 6 });
  const keep = input("keep", cam.recording.keep, { size: 6, placeholder: "forever" });
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Save";
  const note = document.createElement("p");
  note.className = "note";
  note.hidden = true;
  form.append(h, sources, sizes, field("Source", source), field("Size", size), field("Rate (fps)", fps), field("Bitrate (kbit/s)", bitrate),
    field("Encoder", encoder), field("Record", recording), field("Segment", segment), field("Keep", keep), button, note);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [w, hgt] = size.value.split("x").map(Number);
    const changed = {
      ...cam,
      source: source.value,
      width: w,
      height: hgt,
      fps: Number(fps.value),
      bitrate_kbps: Number(bitrate.value),
      encoder: encoder.value,
      recording: { ...cam.recording, enabled: recording.checked, segment: segment.value, keep: keep.value || null },
    };
    try {
      const done = await save(changed);
      say(note, done.restarted.length ? `Saved; ${done.restarted.join(", ")} restarted.` : "Saved; nothing needed a restart.", true);
    } catch (err) {
      say(note, err.message, false);
    }
  });
  return form;
}

async function showSettings(panel) {
  const [config, machine] = await Promise.all([api("GET", "/api/config"), api("GET", "/api/devices").catch(() => ({}))]);
  panel.querySelector(".all-settings").textContent = JSON.stringify(config, null, 2);
  // Saving one camera sends every camera as now shown; the forms stay (with their notes).
  const save = async (camera) => {
    const cameras = config.camera.map((c) => (c.name === camera.name ? camera : c));
    const done = await api("PATCH", "/api/config", { camera: cameras });
    Object.assign(config, await api("GET", "/api/config"));
    panel.querySelector(".all-settings").textContent = JSON.stringify(config, null, 2);
    return done;
  };
  panel.querySelector(".camera-settings").replaceChildren(...config.camera.map((cam) => cameraForm(cam, machine, save)));
}

async function setUpSettings() {
  const panel = document.getElementById("settings");
  const me = await api("GET", "/api/me").catch(() => null);
  if (!me || me.role !== "admin") return;
  panel.hidden = false;
  panel.addEventListener("toggle", () => panel.open && showSettings(panel).catch(() => {}));
  const other = panel.querySelector("form.other-settings");
  other.addEventListener("submit", async (e) => {
    e.preventDefault();
    const note = other.querySelector(".note");
    try {
      const done = await api("PATCH", "/api/config", JSON.parse(other.elements.patch.value || "{}"));
      const later = done.restart_required.length ? ` Takes effect at the next start: ${done.restart_required.join(", ")}.` : "";
      const keep = done.confirm ? ` Keep the network change in the Network panel within ${done.confirm.within_s} s, or it is undone.` : "";
      say(note, "Saved." + later + keep, true);
      await showSettings(panel);
    } catch (err) {
      say(note, err.message, false);
    }
  });
}

setUpSettings();
