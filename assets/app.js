// The live view page: one card per camera, each with a WHEP player and its status.
"use strict";

const cards = new Map();

const STATE_TEXT = {
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  offline: "Camera offline",
  live: "",
};

function setOverlay(card, state, detail) {
  const overlay = card.el.querySelector(".overlay");
  overlay.dataset.state = state;
  overlay.querySelector(".overlay-text").textContent = STATE_TEXT[state] + (detail ? "\n" + detail : "");
}

function render(card) {
  // The camera's own state wins over the player's: a live connection to an offline camera
  // shows no picture, and the owner should know why.
  if (card.camera && card.camera.state === "offline") {
    setOverlay(card, "offline", card.camera.last_error || "");
  } else if (card.camera && card.camera.state === "starting" && card.playerState !== "live") {
    setOverlay(card, "connecting", "camera starting");
  } else {
    setOverlay(card, card.playerState, card.playerState === "live" ? "" : card.playerDetail);
  }
}

function fmt(n, digits) {
  return typeof n === "number" ? n.toFixed(digits) : "–";
}

function updateInfo(card, cam) {
  const q = (sel) => card.el.querySelector(sel);
  q(".source").textContent = cam.source || cam.configured_source;
  q(".encoder").textContent = cam.encoder ? cam.encoder : "–";
  q(".encoder").title = cam.encoder_reason || "";
  q(".picture").textContent = cam.width + "×" + cam.height;
  q(".rate").textContent = fmt(cam.measured_fps, 1) + " / " + cam.desired_fps + " fps";
  q(".bitrate").textContent = Math.round(cam.measured_bitrate_kbps) + " / " + cam.desired_bitrate_kbps + " kbit/s";
  q(".viewers").textContent = cam.viewers;
  const pill = q(".live-pill");
  pill.textContent = cam.state;
  pill.className = "pill live-pill " + (cam.online ? "ok" : cam.state === "starting" ? "" : "bad");
  const err = q(".error");
  err.hidden = cam.online || !cam.last_error;
  err.textContent = cam.last_error || "";
  card.player.cameraOffline = !cam.online;
  const rec = q(".rec-state");
  const wanted = cam.recording_enabled && cam.recording_switch;
  rec.textContent = !cam.recording_enabled ? "Recording disabled in the config"
    : !cam.recording_switch ? "Recording switched off"
    : cam.recording ? "● Recording" : "Recording paused" + (cam.recording_error ? ": " + cam.recording_error : "");
  rec.className = "rec-state " + (cam.recording ? "ok" : wanted ? "bad" : "");
  // The recording switch (owners only; kept across restarts by the device).
  const toggle = q(".rec-switch");
  toggle.hidden = !cam.recording_enabled;
  toggle.textContent = cam.recording_switch ? "Stop recording" : "Start recording";
  toggle.dataset.action = cam.recording_switch ? "recording.stop" : "recording.start";
}

function addCamera(cam) {
  const el = document.getElementById("camera-card").content.firstElementChild.cloneNode(true);
  el.dataset.camera = cam.name;
  el.querySelector(".name").textContent = cam.name;
  document.getElementById("cameras").appendChild(el);
  const card = { el, camera: null, playerState: "connecting", playerDetail: "" };
  const onState = (state, detail) => {
    card.playerState = state;
    card.playerDetail = detail || "";
    render(card);
  };
  const video = el.querySelector("video");
  // WebRTC (WHEP) when the browser can receive H.264 over it; else the same stream as
  // fragmented MP4 over a WebSocket into Media Source Extensions.
  card.player = webrtcHasH264() || !window.MediaSource
    ? new WhepPlayer(cam.whep, video, onState)
    : new MsePlayer(cam.name, video, onState);
  // Live latency and the recording dot from the session's data channel (WHEP only).
  card.player.onInfo = (info) => {
    if (typeof info.latencyMs === "number" && isFinite(info.latencyMs)) {
      el.querySelector(".latency").textContent = Math.max(0, Math.round(info.latencyMs)) + " ms";
    }
    if (typeof info.recording === "boolean" && card.camera && card.camera.recording !== info.recording) {
      card.camera.recording = info.recording;
      updateInfo(card, card.camera);
    }
  };
  cards.set(cam.name, card);
  el.querySelector(".rec-switch").addEventListener("click", (e) => {
    const action = e.target.dataset.action;
    fetch(`/api/actions/${action}?camera=${encodeURIComponent(cam.name)}`, { method: "POST" }).catch(() => {});
  });
  card.recordings = new RecordingsPanel(el, cam.name);
  card.player.start();
  return card;
}

/** Stops a removed camera's player and takes its card off the page. */
function dropCamera(name) {
  const card = cards.get(name);
  if (!card) return;
  card.player.stop();
  card.el.remove();
  cards.delete(name);
}

/** Cards for cameras added since the page loaded, none for those removed or renamed away. */
let syncing = null;
function syncCameras() {
  syncing = syncing || fetch("/api/cameras", { cache: "no-store" })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status))))
    .then((cameras) => {
      const names = new Set(cameras.map((c) => c.name));
      [...cards.keys()].filter((n) => !names.has(n)).forEach(dropCamera);
      cameras.filter((c) => !cards.has(c.name)).forEach(addCamera);
      refreshSoon();
    })
    .catch(() => {})
    .finally(() => { syncing = null; });
}

/** Shows the state `/api/state` (or an events snapshot) describes. */
function applyState(state) {
  const names = new Set(state.cameras.map((c) => c.name));
  if (names.size !== cards.size || [...names].some((n) => !cards.has(n))) syncCameras();
  for (const cam of state.cameras) {
    const card = cards.get(cam.name);
    if (!card) continue;
    card.camera = cam;
    updateInfo(card, cam);
    render(card);
  }
  // Webhooks (the owner's state only): say which receivers fail and why.
  const failing = (state.webhooks || []).filter((h) => h.failing);
  const hooks = document.getElementById("webhook-warnings");
  hooks.hidden = !failing.length;
  hooks.textContent = failing.map((h) => `Webhook ${h.name} (${h.url}) fails: ${h.failing}; ${h.queued} events wait, ${h.dropped} dropped`).join("; ");
  const status = document.getElementById("device-status");
  status.textContent = "Lookout " + state.version;
  status.className = "pill ok";
}

function unreachable() {
  const status = document.getElementById("device-status");
  status.textContent = "device unreachable";
  status.className = "pill bad";
}

async function refresh() {
  try {
    const res = await fetch("/api/state", { cache: "no-store" });
    if (res.status === 401) return toLogin();
    applyState(await res.json());
  } catch (_) {
    unreachable();
  }
}

// The page follows the device through `/api/events` instead of polling: a camera event asks
// for the state again (at most every half second), a health event for the health.
let refreshTimer = null;
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refresh();
  }, 500);
}

/** The last event number seen (and the daemon run it belongs to), for tests and owners. */
window.lookoutEventSeq = 0;
let eventRun = null;

function listen() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const since = eventRun ? `?since=${window.lookoutEventSeq}&run=${eventRun}` : "";
  const ws = new WebSocket(`${scheme}//${location.host}/api/events${since}`);
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (typeof msg.seq === "number") window.lookoutEventSeq = msg.seq;
    if (msg.run) eventRun = msg.run;
    if (msg.type === "snapshot") applyState(msg.state);
    else if (msg.type.startsWith("health_warning")) refreshHealth();
    else if (msg.type === "settings_changed" && (msg.added.length || msg.removed.length)) syncCameras();
    else if (msg.camera || msg.type.startsWith("webhook_")) refreshSoon();
  };
  // Closed (device restarting, network lost, session over): refresh says which, then retry.
  ws.onclose = () => {
    refresh();
    setTimeout(listen, 2000);
  };
}

async function refreshHealth() {
  try {
    const { health, warnings } = await (await fetch("/api/health", { cache: "no-store" })).json();
    const pill = document.getElementById("device-health");
    const parts = [];
    if (health.temperature_c !== null) parts.push(health.temperature_c.toFixed(0) + " °C");
    parts.push("load " + health.load[0].toFixed(2));
    if (health.disk_total_bytes) parts.push(((health.disk_free_bytes / health.disk_total_bytes) * 100).toFixed(0) + "% free");
    // The network: each link, up or not, its first address, and a Wi-Fi radio's signal.
    for (const link of health.network || []) {
      const signal = link.signal_dbm === null ? "" : ` ${link.signal_dbm} dBm`;
      const name = link.kind === "wifi" ? `Wi-Fi ${link.ssid || link.name}` : `wired ${link.name}`;
      parts.push(`${name}: ${link.up ? link.addresses[0] || "up" : "no link"}${signal}`);
    }
    pill.textContent = parts.join(" · ");
    pill.hidden = false;
    pill.className = "pill " + (warnings.length ? "bad" : "ok");
    const banner = document.getElementById("device-warnings");
    const notes = warnings.map((w) => w.advice);
    if (health.clock_synchronized === false) {
      notes.push("the clock was never set from a time server since boot: recordings are named by the time saved at the last shutdown");
    }
    banner.hidden = !notes.length;
    banner.textContent = notes.join("; ");
  } catch (_) {
    // The status pill already says when the device is unreachable.
  }
}

/** The session ended (logged out elsewhere, password changed, expired): log in again. */
function toLogin() {
  location.href = "/login";
}

document.getElementById("logout").addEventListener("click", async () => {
  await fetch("/api/logout", { method: "POST" }).catch(() => {});
  toLogin();
});

document.getElementById("identify").addEventListener("click", () => {
  fetch("/api/actions/identify", { method: "POST" }).catch(() => {});
});

async function main() {
  // Controls (identify, the recording switch) are shown to those who may use them.
  fetch("/api/me", { cache: "no-store" })
    .then((r) => r.json())
    .then((me) => document.body.classList.toggle("can-control", me.role === "admin" || (me.grants || []).includes("control")))
    .catch(() => {});
  let cameras = [];
  while (cameras.length === 0) {
    try {
      const res = await fetch("/api/cameras", { cache: "no-store" });
      if (res.status === 401) return toLogin();
      cameras = await res.json();
    } catch (_) {
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  cameras.forEach(addCamera);
  listen();
  refreshHealth();
  // Temperature and load change without events: read them now and then.
  setInterval(refreshHealth, 10000);
}

/** For tests and curious owners: which player each camera uses. */
window.lookoutPlayers = () => Object.fromEntries([...cards].map(([name, c]) => [name, c.player instanceof MsePlayer ? "mse" : "whep"]));
/** For benchmarks and curious owners: each camera's last start-up times (ms from its POST). */
window.lookoutTimings = () => Object.fromEntries([...cards].map(([name, c]) => [name, c.player.timing]));
/** For tests and curious owners: decoded frame counts per camera. */
window.lookoutFrames = () => Object.fromEntries([...cards].map(([name, c]) => [name, c.player.framesDecoded()]));
window.addEventListener("pagehide", () => cards.forEach((c) => c.player.stop()));
main();
