// The owner's Wi-Fi panel (GET /api/network, POST /api/network/scan and /join): what the
// device has joined, its known networks, and joining a new one. On the setup hotspot it opens
// by itself: that is the whole point of a phone being there. Uses `api` and `say` from
// access.js.

function signalBars(dbm) {
  return dbm >= -55 ? "▂▄▆█" : dbm >= -67 ? "▂▄▆" : dbm >= -75 ? "▂▄" : "▂";
}

async function showWifi(panel) {
  const net = await api("GET", "/api/network");
  const wifi = net.wifi;
  const state = wifi.hotspot.open
    ? `setup hotspot ${wifi.hotspot.ssid} open (${wifi.hotspot.clients} connected)`
    : wifi.joined
      ? `joined ${wifi.joined}`
      : wifi.interface
        ? wifi.supplicant ? "looking for a known network" : "radio not ready"
        : "no radio";
  panel.querySelector(".wifi-state").textContent = state;
  panel.querySelector(".hotspot-name").textContent = wifi.hotspot.ssid || "Lookout-XXXX";
  const known = panel.querySelector(".known");
  known.replaceChildren(...net.known.map((n, i) => {
    const tr = document.createElement("tr");
    const cell = document.createElement("td");
    cell.textContent = `${i + 1}. ${n.ssid}${n.hidden ? " (hidden)" : ""}${n.ssid === wifi.joined ? " · joined" : ""}`;
    tr.append(cell);
    return tr;
  }));
  const form = panel.querySelector("form.join");
  if (net.country && !form.elements.country.value) form.elements.country.value = net.country;
  const note = form.querySelector(".note");
  if (wifi.setup) {
    const s = wifi.setup;
    say(note, s.state === "joined" ? `Joined ${s.ssid}.` : s.state === "failed" ? `${s.ssid}: ${s.error}` : `Joining ${s.ssid}…`, s.state !== "failed");
  }
  if (wifi.error) say(note, wifi.error, false);
  return net;
}

let deviceName = "lookout.local";

async function setUpWifi() {
  const panel = document.getElementById("wifi");
  const me = await api("GET", "/api/me").catch(() => null);
  if (!me || me.role !== "admin") return;
  const net = await showWifi(panel).catch(() => null);
  if (!net || !net.wifi.interface) return;
  if (net.hostname) deviceName = `${net.hostname}.local`;
  panel.hidden = false;
  if (net.wifi.hotspot.open) panel.open = true;
  panel.addEventListener("toggle", () => panel.open && showWifi(panel).catch(() => {}));
  setInterval(() => panel.open && showWifi(panel).catch(() => {}), 5000);
  const form = panel.querySelector("form.join");
  const note = form.querySelector(".note");
  form.querySelector(".scan").addEventListener("click", async () => {
    say(note, "Looking…", true);
    try {
      const { networks } = await api("POST", "/api/network/scan");
      form.querySelector(".found").replaceChildren(...networks.map((n) => {
        const li = document.createElement("li");
        const pick = document.createElement("button");
        pick.type = "button";
        pick.textContent = `${signalBars(n.signal_dbm)} ${n.ssid}${n.secured ? " 🔒" : ""}`;
        pick.addEventListener("click", () => {
          form.elements.ssid.value = n.ssid;
          form.elements.psk.focus();
        });
        li.append(pick);
        return li;
      }));
      note.hidden = true;
    } catch (err) {
      say(note, err.message, false);
    }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = form.elements;
    const body = { ssid: f.ssid.value, hidden: f.hidden.checked };
    if (f.psk.value) body.psk = f.psk.value;
    if (f.country.value) body.country = f.country.value.toUpperCase();
    try {
      await api("POST", "/api/network/join", body);
      say(note, `Joining ${body.ssid}. On the setup hotspot, your phone loses it now: rejoin your own Wi-Fi and open http://${deviceName}/. If the device cannot join, its hotspot comes back within a minute and says why here.`, true);
    } catch (err) {
      // The hotspot may close before the answer arrives.
      say(note, err.message === "Failed to fetch" ? `Joining ${body.ssid}…` : err.message, err.message === "Failed to fetch");
    }
  });
}

setUpWifi();
