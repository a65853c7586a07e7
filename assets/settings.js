// The owner's settings panel: a form per camera (source, size, rate, bitrate, encoder,
// recording; rename, remove) offering what the device's cameras can do (`/api/devices`), a
// form to add a camera, and a JSON merge patch for everything else. Uses `api` and `say` from
// access.js.

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

/** Source (with the device's capture nodes offered), size (with the source's modes) and rate. */
function pictureInputs(cam, machine, id) {
  const sources = document.createElement("datalist");
  sources.id = `sources-${id}`;
  for (const s of ["auto", "test", "libcamera", ...(machine.video_nodes || []).filter((n) => n.capture).map((n) => n.path)]) {
    sources.append(new Option(s, s));
  }
  const source = input("source", cam.source, { size: 40, required: true });
  source.setAttribute("list", sources.id);
  const size = input("size", `${cam.width}x${cam.height}`, { pattern: "[0-9]+x[0-9]+", size: 9 });
  const sizes = document.createElement("datalist");
  sizes.id = `sizes-${id}`;
  size.setAttribute("list", sizes.id);
  const offerSizes = () => {
    sizes.replaceChildren(...[...modesOf(machine, source.value).keys()].map((k) => new Option(k, k)));
  };
  source.addEventListener("change", offerSizes);
  offerSizes();
  const fps = input("fps", cam.fps, { type: "number", min: 1, max: 120 });
  return { sources, sizes, source, size, fps };
}

function button(text, type = "button") {
  const b = document.createElement("button");
  b.type = type;
  b.textContent = text;
  return b;
}

function note() {
  const p = document.createElement("p");
  p.className = "note";
  p.hidden = true;
  return p;
}

/** What a settings answer did, in words. */
function doneText(done) {
  const parts = [];
  if (done.added.length) parts.push(`${done.added.join(", ")} added`);
  if (done.removed.length) parts.push(`${done.removed.join(", ")} removed`);
  if (done.restarted.length) parts.push(`${done.restarted.join(", ")} restarted`);
  return parts.length ? `Saved; ${parts.join("; ")}.` : "Saved; nothing needed a restart.";
}

/** One camera's form; `actions` saves the changed camera, renames or removes it. */
function cameraForm(cam, machine, actions) {
  const form = document.createElement("form");
  form.className = "camera-setting";
  form.dataset.camera = cam.name;
  const h = document.createElement("h3");
  h.textContent = cam.name;
  const { sources, sizes, source, size, fps } = pictureInputs(cam, machine, cam.name);
  const bitrate = input("bitrate_kbps", cam.bitrate_kbps, { type: "number", min: 100, max: 50000 });
  const encoder = select("encoder", ["auto", "hardware", "x264", "openh264"], cam.encoder);
  const recording = input("recording", "", { type: "checkbox", checked: cam.recording.enabled });
  const segment = input("segment", cam.recording.segment, { size: 6 });
  const keep = input("keep", cam.recording.keep, { size: 6, placeholder: "forever" });
  const said = note();
  const newName = input("rename", "", { size: 12, pattern: "[a-z0-9-]{1,32}", placeholder: "new name" });
  const rename = button("Rename");
  const remove = button("Remove");
  remove.className = "remove";
  form.append(h, sources, sizes, field("Source", source), field("Size", size), field("Rate (fps)", fps), field("Bitrate (kbit/s)", bitrate),
    field("Encoder", encoder), field("Record", recording), field("Segment", segment), field("Keep", keep), button("Save", "submit"),
    newName, rename, remove, said);
  const run = async (work) => {
    try {
      say(said, doneText(await work()), true);
    } catch (err) {
      say(said, err.message, false);
    }
  };
  rename.addEventListener("click", () => {
    if (!newName.reportValidity() || !newName.value) return say(said, "Give the new name: lower-case letters, digits and -.", false);
    run(() => actions.rename(cam.name, newName.value));
  });
  remove.addEventListener("click", () => {
    // Recordings stay (deleted only when room is needed); a camera added again under the same
    // name finds them.
    if (confirm(`Remove camera ${cam.name}? Its recordings stay; they are deleted only when room is needed.`)) run(() => actions.remove(cam.name));
  });
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
    run(() => actions.save(changed));
  });
  return form;
}

/** The form that adds a camera: a name, its source and picture; the rest at defaults. */
function addCameraForm(machine, add) {
  const form = document.createElement("form");
  form.className = "add-camera";
  const h = document.createElement("h3");
  h.textContent = "Add a camera";
  const name = input("name", "", { size: 12, required: true, pattern: "[a-z0-9-]{1,32}", placeholder: "garden" });
  const { sources, sizes, source, size, fps } = pictureInputs({ source: "", width: 1280, height: 720, fps: 30 }, machine, "new");
  source.placeholder = "rtsp://… or /dev/video0";
  const said = note();
  form.append(h, sources, sizes, field("Name", name), field("Source", source), field("Size", size), field("Rate (fps)", fps),
    button("Add", "submit"), said);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [width, height] = size.value.split("x").map(Number);
    try {
      say(said, doneText(await add({ name: name.value, source: source.value, width, height, fps: Number(fps.value) })), true);
    } catch (err) {
      say(said, err.message, false);
    }
  });
  return form;
}

async function showSettings(panel) {
  const [config, machine] = await Promise.all([api("GET", "/api/config"), api("GET", "/api/devices").catch(() => ({}))]);
  panel.querySelector(".all-settings").textContent = JSON.stringify(config, null, 2);
  // Saving one camera sends every camera as now shown (the list is matched by name); the
  // forms stay with their notes unless the list of cameras changed.
  const patchCameras = async (cameras) => {
    const done = await api("PATCH", "/api/config", { camera: cameras });
    Object.assign(config, await api("GET", "/api/config"));
    panel.querySelector(".all-settings").textContent = JSON.stringify(config, null, 2);
    if (done.added.length || done.removed.length) setTimeout(() => showSettings(panel).catch(() => {}), 1500);
    return done;
  };
  const actions = {
    save: (camera) => patchCameras(config.camera.map((c) => (c.name === camera.name ? camera : c))),
    remove: (name) => patchCameras(config.camera.filter((c) => c.name !== name)),
    rename: async (name, to) => {
      const done = await api("POST", `/api/config/cameras/${encodeURIComponent(name)}/rename`, { to });
      setTimeout(() => showSettings(panel).catch(() => {}), 1500);
      return done;
    },
  };
  panel.querySelector(".camera-settings").replaceChildren(...config.camera.map((cam) => cameraForm(cam, machine, actions)),
    addCameraForm(machine, (camera) => patchCameras([...config.camera, camera])));
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
