// Model tabs: without script every model's bars are listed one after the other.
document.documentElement.classList.add("js");
for (const section of document.querySelectorAll("section.attribution")) {
  const show = (name) => {
    for (const b of section.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.model === name));
    for (const m of section.querySelectorAll(".model")) m.classList.toggle("shown", m.dataset.model === name);
  };
  for (const b of section.querySelectorAll(".tabs button")) b.addEventListener("click", () => show(b.dataset.model));
  const first = section.querySelector(".tabs button");
  if (first) show(first.dataset.model);
}
