// The browser page of the example (web/index.html): the hero slot of the embedded bundle,
// through OpenFeature. Build with `npm run build:web`, then serve this folder through the
// Worker's origin (the Worker answers OFREP on the same origin).
import { connect, localStorageStore } from "../journey.mjs";

const journey = await connect({
  baseUrl: location.origin,
  store: localStorageStore(),
  context: { "page.path": location.pathname, "device.type": matchMedia("(max-width: 600px)").matches ? "mobile" : "desktop" },
});

function render() {
  const card = journey.show("app-card");
  const out = document.querySelector("#card");
  out.textContent = "";
  const title = document.createElement("h2");
  title.textContent = card.value?.title ?? card.content;
  const meta = document.createElement("p");
  meta.textContent = `${card.content} · ${card.reason} · stage ${card.stage}`;
  out.append(title, meta);
}
render();
journey.onChange(render);
document.querySelector("#booked").addEventListener("click", async () => {
  await journey.track([{ name: "test_drive_booked" }]);
  render();
});
