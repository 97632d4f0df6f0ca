// Slot and model tabs: without script every slot's and model's bars are listed.
document.documentElement.classList.add("js");
function tabs(container, selector, panels, key) {
  const show = (name) => {
    for (const b of container.querySelectorAll(`:scope > ${selector} button`)) b.setAttribute("aria-selected", String(b.dataset[key] === name));
    for (const p of container.querySelectorAll(`:scope > ${panels}`)) p.classList.toggle("shown", p.dataset[key] === name);
  };
  for (const b of container.querySelectorAll(`:scope > ${selector} button`)) b.addEventListener("click", () => show(b.dataset[key]));
  const first = container.querySelector(`:scope > ${selector} button`);
  if (first) show(first.dataset[key]);
}
for (const section of document.querySelectorAll("section.attribution")) {
  tabs(section, ".tabs.slots", "div.slot", "slot");
  for (const slot of section.querySelectorAll(":scope > div.slot")) tabs(slot, ".tabs.models", "div.model", "model");
}
