// The studio's costs, with the studio's own WebAssembly (studio/engine, built by
// scripts/build-studio.sh) under Node: what a keystroke costs (the draft copied,
// serialized and validated, as the app does after every edit), the coverage matrix
// (`report`), the impact of a change and the changes in words, for the example bundle
// and a generated one of 10,000 candidates. Medians of N runs (env N, default 15).
//   node bench/studio.mjs
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const engine = await import(join(ROOT, "studio", "engine", "engine.js"));
engine.initSync({ module: readFileSync(join(ROOT, "studio", "engine", "engine_bg.wasm")) });
const N = Number(process.env.N ?? 15);

function median(f) {
  const times = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    f();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** The example with `candidates` more candidates over 100 contents, in 5 slots, each with a rule. */
function generated(candidates) {
  const doc = JSON.parse(readFileSync(join(ROOT, "fixtures", "automotive.json"), "utf8"));
  for (let c = 0; c < 100; c++) doc.content[`gen-${c}`] = { html: `<p>Offer ${c} in {{geo.city}}</p>` };
  const slots = ["hero", "sidebar", "banner", "push", "app-card"];
  for (let i = 0; i < candidates; i++) {
    doc.slots[slots[i % 5]].candidates.push({
      id: `gen-${i}`, content: `gen-${i % 100}`, priority: -1 - (i % 50),
      when: { "==": [{ var: "utm.campaign" }, `campaign-${i}`] },
    });
  }
  return doc;
}

/** The studio test's change: a new content first in hero for FR and DE. */
function edited(doc) {
  const draft = structuredClone(doc);
  draft.content["winter-tyres"] = { html: "<h1>Winter tyres fitted in {{geo.city}}</h1>" };
  draft.slots.hero.candidates.unshift({
    id: "hero-winter-tyres", content: "winter-tyres", priority: 60, stages: ["consideration", "decision"],
    when: { in: [{ var: "geo.country" }, ["FR", "DE"]] }, cap: { max: 3, per: "7d" },
  });
  return draft;
}

const now = Math.floor(Date.parse("2026-12-07T12:00:00Z") / 1000);
for (const [name, doc] of [["example (automotive)", JSON.parse(readFileSync(join(ROOT, "fixtures", "automotive.json"), "utf8"))], ["10,000 more candidates", generated(10_000)]]) {
  const text = JSON.stringify(doc);
  const problems = JSON.parse(engine.validate(text));
  const keystroke = median(() => engine.validate(JSON.stringify(structuredClone(doc))));
  const validate = median(() => engine.validate(text));
  const draft = JSON.stringify(edited(doc));
  const reportMs = median(() => engine.report(text, now));
  const report = JSON.parse(engine.report(text, now));
  const impactMs = median(() => engine.impact(text, draft, now));
  const impact = JSON.parse(engine.impact(text, draft, now));
  const changesMs = median(() => engine.changes(text, draft));
  console.log(`${name}: ${text.length} bytes of JSON, ${problems.length} problems`);
  console.log(`  keystroke (copy + serialize + validate): ${keystroke.toFixed(1)} ms (validate alone ${validate.toFixed(1)} ms)`);
  console.log(`  coverage matrix (report): ${reportMs.toFixed(0)} ms, ${report.contexts} audiences`);
  console.log(`  impact: ${impactMs.toFixed(0)} ms, ${impact.audiences} audiences, ${impact.cells} cells change (${impact.changed.length} rows)`);
  console.log(`  changes in words: ${changesMs.toFixed(2)} ms`);
}
