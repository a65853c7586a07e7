// The owner's panel: users and tokens (GET/POST/PATCH/DELETE /api/users, /api/tokens), and
// everyone's own password. Shown to the owner only; the API refuses anyone else anyway.

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) location.href = "/login";
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error((data && data.error) || `the device answered ${res.status}`);
  return data;
}

function say(el, message, ok) {
  el.textContent = message;
  el.className = ok ? "note ok" : "note error";
  el.hidden = false;
}

function cameraList(text) {
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  return names.length ? names : null;
}

function row(cells, action) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.append(td);
  }
  const td = document.createElement("td");
  if (action) td.append(action);
  tr.append(td);
  return tr;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

async function showUsers(panel) {
  const body = panel.querySelector(".users tbody");
  const users = await api("GET", "/api/users");
  body.replaceChildren(
    ...users.map((u) =>
      row([u.name, u.role, u.cameras ? u.cameras.join(", ") : "all"], u.role === "admin" ? null : button("Remove", async () => {
        await api("DELETE", `/api/users/${encodeURIComponent(u.name)}`);
        showUsers(panel);
      })),
    ),
  );
}

async function showTokens(panel) {
  const body = panel.querySelector(".tokens tbody");
  const tokens = await api("GET", "/api/tokens");
  body.replaceChildren(
    ...tokens.map((t) =>
      row([t.label || t.id.slice(0, 8), t.grants.join(", "), t.cameras ? t.cameras.join(", ") : "all", new Date(t.expires_at * 1000).toLocaleString()],
        button("Revoke", async () => {
          await api("DELETE", `/api/tokens/${t.id}`);
          showTokens(panel);
        })),
    ),
  );
}

async function setUpAccess() {
  const panel = document.getElementById("access");
  const me = await api("GET", "/api/me").catch(() => null);
  if (!me || !me.user) return;
  panel.hidden = false;
  panel.querySelector(".who").textContent = `${me.user} (${me.role})`;
  const own = panel.querySelector("form.own-password");
  own.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(own);
    try {
      await api("POST", "/api/me/password", { current: f.get("current"), new: f.get("new") });
      own.reset();
      say(own.querySelector(".note"), "Password changed; your other sessions are logged out.", true);
    } catch (err) {
      say(own.querySelector(".note"), err.message, false);
    }
  });
  if (me.role !== "admin") {
    panel.querySelectorAll(".owner-only").forEach((el) => (el.hidden = true));
    return;
  }
  const addUser = panel.querySelector("form.add-user");
  addUser.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(addUser);
    try {
      await api("POST", "/api/users", { name: f.get("name"), password: f.get("password"), cameras: cameraList(f.get("cameras")) });
      addUser.reset();
      say(addUser.querySelector(".note"), "Viewer added.", true);
      showUsers(panel);
    } catch (err) {
      say(addUser.querySelector(".note"), err.message, false);
    }
  });
  const issue = panel.querySelector("form.issue-token");
  issue.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(issue);
    try {
      const t = await api("POST", "/api/tokens", {
        label: f.get("label"), grants: f.getAll("grant"), cameras: cameraList(f.get("cameras")), ttl: f.get("ttl"),
      });
      const shown = issue.querySelector(".issued");
      shown.value = t.token;
      shown.hidden = false;
      say(issue.querySelector(".note"), "Copy the token now: it is not shown again.", true);
      showTokens(panel);
    } catch (err) {
      say(issue.querySelector(".note"), err.message, false);
    }
  });
  panel.querySelector(".revoke-all").addEventListener("click", async () => {
    if (!confirm("Revoke every token? Players and scripts using them stop at once.")) return;
    await api("DELETE", "/api/tokens");
    showTokens(panel);
  });
  panel.addEventListener("toggle", () => {
    if (panel.open) {
      showUsers(panel);
      showTokens(panel);
    }
  });
}

setUpAccess();
