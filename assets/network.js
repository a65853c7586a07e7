// The owner's network panel (GET /api/network, POST /api/network/scan, /join and /confirm):
// what the device has joined, its known networks, joining a new one, and keeping a network
// change (one that is not kept is undone after a while, in case it cut the device off). On
// the setup hotspot, or with a change to keep, it opens by itself. Uses `api` and `say` from
// access.js.

function signalBars(dbm) {
  return dbm >= -55 ? "▂▄▆█" : dbm >= -67 ? "▂▄▆" : dbm >= -75 ? "▂▄" : "▂";
}

async function showWifi(panel) {
  const net = await api("GET", "/api/network");
  const wifi = net.wifi;
  const unconfirmed = panel.querySelector(".unconfirmed");
  unconfirmed.hidden = !net.unconfirmed_change;
  if (net.unconfirmed_change) {
    unconfirmed.dataset.ticket = net.unconfirmed_change.ticket;
    unconfirmed.querySelector(".left").textContent = net.unconfirmed_change.within_s;
  }
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
  if (!net) return;
  if (net.hostname) deviceName = `${net.hostname}.local`;
  panel.hidden = false;
  panel.querySelector("form.join").hidden = !net.wifi.interface;
  if (net.wifi.hotspot.open || net.unconfirmed_change) panel.open = true;
  panel.addEventListener("toggle", () => panel.open && showWifi(panel).catch(() => {}));
  setInterval(() => showWifi(panel).then((n) => { if (n.unconfirmed_change) panel.open = true; }).catch(() => {}), 5000);
  const unconfirmed = panel.querySelector(".unconfirmed");
  unconfirmed.querySelector(".keep").addEventListener("click", async () => {
    try {
      await api("POST", "/api/network/confirm", { ticket: Number(unconfirmed.dataset.ticket) });
      unconfirmed.hidden = true;
    } catch (err) {
      unconfirmed.querySelector(".left").textContent = `0 (${err.message})`;
    }
  });
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
      say(note, `Joining ${body.ssid}. On the setup hotspot, your phone loses it now: rejoin your own Wi-Fi and open http://${deviceName}/. If the device cannot join, its hotspot comes back within two minutes and says why here.`, true);
    } catch (err) {
      // The hotspot may close before the answer arrives.
      say(note, err.message === "Failed to fetch" ? `Joining ${body.ssid}…` : err.message, err.message === "Failed to fetch");
    }
  });
}

setUpWifi();
