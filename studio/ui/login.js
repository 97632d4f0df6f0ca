// The development sign-in form: posts the name, then opens the studio.
const form = document.getElementById("login");
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await fetch("/api/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: form.elements.name.value }),
  });
  if (r.ok) {
    location.href = "/";
  } else {
    const error = document.getElementById("error");
    error.textContent = (await r.json()).error;
    error.hidden = false;
  }
});
