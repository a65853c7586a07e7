// The login and setup forms: post the credentials as JSON; the answer sets the session cookie.
const form = document.querySelector("form.gate");
const error = form.querySelector(".error");

function show(message) {
  error.textContent = message;
  error.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(form));
  if ("again" in data && data.again !== data.password) return show("The two passwords differ.");
  delete data.again;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const res = await fetch(form.dataset.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(data),
    });
    if (res.ok) {
      location.href = "/";
      return;
    }
    const body = await res.json().catch(() => ({}));
    if (res.status === 409) location.href = "/login";
    show(body.error || `The device answered ${res.status}.`);
  } catch (_) {
    show("The device cannot be reached.");
  } finally {
    button.disabled = false;
  }
});
