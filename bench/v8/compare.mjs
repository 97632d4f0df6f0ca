// The V8 comparison (issue 7): micromoment's npm package against what a site would use
// instead, on the same decisions, in one Node process.
//
//   bash bench/v8/run.sh              (installs the pinned peers, builds, runs this)
//   node bench/v8/compare.mjs         (once built: js/node from `bash scripts/build-npm.sh`
//                                      and the peers from `npm ci --prefix bench/v8`)
//
// One scenario, 3 slots x 20 candidates, is written once as plain data and expressed for
// each contender: as a micromoment bundle, as GrowthBook features (Mongo-like conditions,
// one force rule per candidate in priority order, an experiment rule with the same
// weights, coverage and seed, v2 hash), as JSON Logic rules for json-logic-js behind a
// hand-written priority loop (Adobe Target on-device decisioning style), and as plain
// hand-written JS. The same sampled visitors and contexts go to everyone. Parity is
// checked first, on every sampled request: each contender must pick the same content for
// every slot as micromoment, or the script exits 1 before timing anything.
//
// Then timing: batches of ~10 ms per contender, interleaved round-robin so machine load
// hits everyone alike, after a warm-up; the figure is the median of the batch means, in
// µs per decision (one decision = all 3 slots). Also: Bundle.load of compiled .mmb files
// (1, 100 and 10,000 candidates, decode + Ed25519 verify), when the CLI binary exists, and
// Bundle.personalize of HTML pages (MB/s).
// Prints figures; asserts nothing but parity.
//
// Environment: ROUNDS (default 31), BATCH_MS (default 10), SAMPLES (default 2000), MM_CLI
// (the micromoment binary that compiles the .mmb files; default: newest target/*/micromoment),
// PARTS (default decide,load,html: which sections run, each in a fresh Node process).

import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const require = createRequire(import.meta.url);

const packagePath = path.join(root, "js/node/micromoment.js");
if (!existsSync(packagePath)) {
  console.error(`compare: ${path.relative(process.cwd(), packagePath)} is missing.`);
  console.error("Build the npm package first:  bash scripts/build-npm.sh  (or run:  bash bench/v8/run.sh)");
  process.exit(2);
}
const gbBundlePath = path.join(here, "node_modules/@growthbook/growthbook/dist/bundles/esm.min.js");
if (!existsSync(gbBundlePath) || !existsSync(path.join(here, "node_modules/json-logic-js"))) {
  console.error("compare: the peers are not installed. Run once:  npm ci --prefix bench/v8  (or run:  bash bench/v8/run.sh)");
  process.exit(2);
}

const mm = require(packagePath);
const jsonLogic = require("json-logic-js");
// GrowthBook twice: its production bundle (what a Worker bundler ships: `process.env`
// checks and debug logging compiled out) and the package's default Node entry point.
const gbBundled = await import(gbBundlePath);
const gbNode = await import("@growthbook/growthbook");

const ROUNDS = Number(process.env.ROUNDS || 31);
const BATCH_MS = Number(process.env.BATCH_MS || 10);
const SAMPLES = Number(process.env.SAMPLES || 2000);
const NOW_MS = 1_795_000_000_000;
const NOW_S = NOW_MS / 1000;
const KEYS = { current: "k1", keys: { k1: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } };

// ---------------------------------------------------------------------------------------
// The scenario, as plain data. The shape of benches/common/mod.rs `generated_bundle(3, 20)`
// (same stages, `when`, priorities and caps), with candidate 6 of each slot (priority 6) an experiment
// (two variants 50/50, holdout 10 %) and contents without `{{…}}` placeholders, so
// every contender returns the same stored content.

const STAGES = ["awareness", "consideration", "decision", "purchase", "loyalty"];
const COUNTRIES = ["FR", "DE", "IT"];
const EXPERIMENT_AT = 6;
const HOLDOUT = 0.1;
const WEIGHTS = [50, 50];

function scenarioModel(slots, perSlot) {
  const contents = {};
  const model = [];
  for (let s = 0; s < slots; s++) {
    const slot = { name: `slot-${s}`, default: `default-${s}`, candidates: [] };
    contents[slot.default] = { html: `<p>default ${s}</p>` };
    for (let c = 0; c < perSlot; c++) {
      const id = `c-${s}-${c}`;
      const candidate = {
        id,
        priority: c % 7,
        stages: [STAGES[c % 5], STAGES[(c + 1) % 5]],
        countries: COUNTRIES,
        minSuv: c % 50,
        glob: `/models/*/${c % 3}/**`,
      };
      if (c === EXPERIMENT_AT) {
        candidate.variants = [`${id}-a`, `${id}-b`];
        for (const v of candidate.variants) contents[v] = { html: `<p>${v}</p>`, json: { id: v } };
      } else {
        candidate.content = id;
        contents[id] = { html: `<p>${id}</p>`, json: { id } };
      }
      slot.candidates.push(candidate);
    }
    // Highest priority first; ties keep bundle order (Array.prototype.sort is stable).
    slot.ordered = [...slot.candidates].sort((a, b) => b.priority - a.priority);
    model.push(slot);
  }
  return { contents, slots: model };
}

const when = (c) => ({
  and: [
    { in: [{ var: "geo.country" }, c.countries] },
    { ">=": [{ var: "intent.suv" }, c.minSuv] },
    { glob: [{ var: "page.path" }, c.glob] },
  ],
});

/** The micromoment authoring bundle. */
function toBundle({ contents, slots }) {
  const slotMap = {};
  for (const slot of slots) {
    slotMap[slot.name] = {
      default: slot.default,
      candidates: slot.candidates.map((c) => ({
        id: c.id,
        ...(c.content
          ? { content: c.content }
          : {
              experiment: {
                variants: c.variants.map((content, i) => ({ content, weight: WEIGHTS[i] })),
                holdout: HOLDOUT,
              },
            }),
        priority: c.priority,
        stages: c.stages,
        when: when(c),
        cap: { max: 3, per: "7d" },
      })),
    };
  }
  return {
    id: "v8-compare",
    version: 1,
    // No transitions and no signal that fires on the sampled requests: the stage and the
    // intent score come from the visitor's state, as they do for the peers' attributes.
    journey: {
      stages: STAGES,
      intents: {
        suv: {
          signals: [{ when: { "==": [{ var: "event" }, "never-sent"] }, add: 10 }],
          cap: 100,
          half_life_days: 14,
        },
      },
    },
    content: contents,
    slots: slotMap,
  };
}

/** benches/common/mod.rs `generated_bundle`, verbatim in JS, for the load figures. */
function generatedBundle(slots, perSlot) {
  const content = {};
  const slotMap = {};
  for (let s = 0; s < slots; s++) {
    content[`default-${s}`] = { html: `<p>default ${s}</p>` };
    const candidates = [];
    for (let c = 0; c < perSlot; c++) {
      const id = `c-${s}-${c}`;
      content[id] = { html: `<p>${id} for {{geo.city}}</p>`, json: { id } };
      candidates.push({
        id, content: id, priority: c % 7,
        stages: [STAGES[c % 5], STAGES[(c + 1) % 5]],
        when: { and: [{ in: [{ var: "geo.country" }, ["FR", "DE", "IT"]] },
                      { ">=": [{ var: "intent.suv" }, c % 50] },
                      { glob: [{ var: "page.path" }, `/models/*/${c % 3}/**`] }] },
        cap: { max: 3, per: "7d" },
      });
    }
    slotMap[`slot-${s}`] = { default: `default-${s}`, candidates };
  }
  return {
    id: "generated", version: 1,
    journey: { stages: STAGES,
      transitions: [{ to: "consideration", when: { glob: [{ var: "page.path" }, "/models/**"] } }],
      intents: { suv: { signals: [{ when: { glob: [{ var: "page.path" }, "/models/suv/**"] }, add: 10 }],
                        cap: 100, half_life_days: 14 } } },
    content, slots: slotMap,
  };
}

/** A rule's glob (docs/format.md: `*` one segment, `**` any number) as an anchored RegExp source. */
function globSource(pattern) {
  const parts = pattern.split("/").filter(Boolean).map((segment) => {
    if (segment === "**") return "(?:/[^/]+)*";
    if (segment === "*") return "/[^/]+";
    return "/" + segment.split("*").map((t) => t.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*");
  });
  return `^${parts.join("")}/?$`;
}

// GrowthBook's hash, written out as a developer would (the same FNV-1a as its SDKs).
function fnv1a32(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h += (h << 1) + (h << 4) + (h << 7) + (h << 8) + (h << 24);
  }
  return h >>> 0;
}
const hashV2 = (seed, value) => (fnv1a32(String(fnv1a32(seed + value))) % 10000) / 10000;
/** GrowthBook's getBucketRanges for normalized weights and a coverage. */
function bucketRanges(weights, coverage) {
  const sum = weights.reduce((a, b) => a + b, 0);
  let cumulative = 0;
  return weights.map((w) => {
    const start = cumulative;
    cumulative += w / sum;
    return [start, start + coverage * (w / sum)];
  });
}

// ---------------------------------------------------------------------------------------
// The peers.

/** GrowthBook: one feature per slot; rules in priority order; value = content id. */
function toGrowthBookFeatures({ slots }) {
  const features = {};
  for (const slot of slots) {
    const rules = [];
    for (const c of slot.ordered) {
      const condition = {
        stage: { $in: c.stages },
        "geo.country": { $in: c.countries },
        "intent.suv": { $gte: c.minSuv },
        "page.path": { $regex: globSource(c.glob) },
      };
      if (c.content) {
        rules.push({ id: c.id, condition, force: c.content });
      } else {
        rules.push({
          id: c.id, key: c.id, seed: c.id, hashAttribute: "id", hashVersion: 2,
          condition, coverage: 1 - HOLDOUT,
          weights: WEIGHTS.map((w) => w / 100), variations: c.variants,
        });
        // Outside the coverage GrowthBook falls through to the next rule; ours shows the
        // slot's default (holdout): a force rule with the same targeting does that.
        rules.push({ id: `${c.id}-holdout`, condition, force: slot.default });
      }
    }
    features[slot.name] = { defaultValue: slot.default, rules };
  }
  return features;
}

function growthBookPeer(sdk, features, contents, slotNames) {
  const client = new sdk.GrowthBookClient({ enableDevMode: false }).initSync({
    payload: { features },
  });
  return (req) => {
    const user = req.gbUser;
    const out = new Array(slotNames.length);
    for (let i = 0; i < slotNames.length; i++) {
      const content = client.evalFeature(slotNames[i], user).value;
      out[i] = { slot: slotNames[i], content, ...contents[content] };
    }
    return out;
  };
}

/** json-logic-js: the same `when` rules, a hand-written priority loop around them. */
function jsonLogicPeer({ contents, slots }) {
  const globs = new Map();
  jsonLogic.add_operation("glob", (value, pattern) => {
    let re = globs.get(pattern);
    if (!re) globs.set(pattern, (re = new RegExp(globSource(pattern))));
    return typeof value === "string" && re.test(value);
  });
  const plan = slots.map((slot) => ({
    name: slot.name,
    default: slot.default,
    candidates: slot.ordered.map((c) => ({
      stages: c.stages, rule: when(c), content: c.content, variants: c.variants, seed: c.id,
      ranges: c.variants && bucketRanges(WEIGHTS, 1 - HOLDOUT),
    })),
  }));
  return (req) => {
    const data = req.data;
    const out = new Array(plan.length);
    for (let i = 0; i < plan.length; i++) {
      const slot = plan[i];
      let content = slot.default;
      for (const c of slot.candidates) {
        if (!c.stages.includes(data.stage)) continue;
        if (!jsonLogic.truthy(jsonLogic.apply(c.rule, data))) continue;
        content = c.content ?? variantOf(c, data.visitor, slot.default);
        break;
      }
      out[i] = { slot: slot.name, content, ...contents[content] };
    }
    return out;
  };
}

function variantOf(c, visitor, fallback) {
  const n = hashV2(c.seed, visitor);
  for (let v = 0; v < c.ranges.length; v++) {
    if (n >= c.ranges[v][0] && n < c.ranges[v][1]) return c.variants[v];
  }
  return fallback; // holdout
}

/** Plain JS, as a developer would write it in a Worker. */
function handWrittenPeer({ contents, slots }) {
  const plan = slots.map((slot) => ({
    name: slot.name,
    default: slot.default,
    candidates: slot.ordered.map((c) => ({
      stages: c.stages, countries: c.countries, minSuv: c.minSuv,
      path: new RegExp(globSource(c.glob)), content: c.content, variants: c.variants,
      seed: c.id, ranges: c.variants && bucketRanges(WEIGHTS, 1 - HOLDOUT),
    })),
  }));
  return (req) => {
    const { stage, geo, intent, page, visitor } = req.data;
    const out = new Array(plan.length);
    for (let i = 0; i < plan.length; i++) {
      const slot = plan[i];
      let content = slot.default;
      for (const c of slot.candidates) {
        if (!c.stages.includes(stage) || !c.countries.includes(geo.country)) continue;
        if (!(intent.suv >= c.minSuv) || !c.path.test(page.path)) continue;
        content = c.content ?? variantOf(c, visitor, slot.default);
        break;
      }
      out[i] = { slot: slot.name, content, ...contents[content] };
    }
    return out;
  };
}

// ---------------------------------------------------------------------------------------
// Sampled visitors and contexts (seeded, the same every run).

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sampleRequests(n, slotNames) {
  const rand = mulberry32(7);
  const pickOf = (list) => list[Math.floor(rand() * list.length)];
  const hex = () => Array.from({ length: 32 }, () => "0123456789abcdef"[Math.floor(rand() * 16)]).join("");
  const countries = ["FR", "DE", "IT", "FR", "DE", "IT", "FR", "ES", "GB", "IT"]; // 80 % targeted
  const cities = { FR: "Lyon", DE: "Köln", IT: "Torino", ES: "Sevilla", GB: "Leeds" };
  const tails = ["", "/", "/gallery", "/specs/engine", "/offers/2027/summer"];
  const requests = [];
  for (let i = 0; i < n; i++) {
    const visitor = hex();
    const stage = pickOf(STAGES);
    const country = pickOf(countries);
    const suv = Math.floor(rand() * 30);
    const r = rand();
    const path =
      r < 0.85
        ? `/models/${pickOf(["suv", "ev", "city"])}/${pickOf(["0", "1", "2", "0", "1", "2", "x"])}${pickOf(tails)}`
        : pickOf(["/", "/models", "/offers/", "/dealers/lyon"]);
    const data = { id: visitor, visitor, stage, geo: { country }, intent: { suv }, page: { path } };
    const context = { geo: { country, city: cities[country] }, page: { path } };
    const state = {
      visitor, stage, stage_since: NOW_S - 86400, visits: 3, last_visit: NOW_S - 600,
      intents: { suv: { score: suv, updated_at: NOW_S } },
    };
    requests.push({
      data,
      gbUser: { attributes: data },
      oursA: { state, context, slots: slotNames, now: NOW_MS },
      oursB: null, // { token, keys, context, slots, now }, filled below
    });
  }
  return requests;
}

// ---------------------------------------------------------------------------------------
// Timing.

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))];
}

let sink = 0;
function runBatch(fn, requests, count, start) {
  const n = requests.length;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const out = fn(requests[(start + i) % n]);
    sink += out.length;
  }
  return Number(process.hrtime.bigint() - t0) / 1000 / count; // µs per decision
}

function timeAll(contenders, requests) {
  // Warm-up and calibration: ~300 ms each, then a batch size of ~BATCH_MS.
  for (const c of contenders) {
    let count = 50, spent = 0, per = 0;
    const until = Date.now() + 300;
    while (Date.now() < until) {
      per = runBatch(c.fn, requests, count, 0);
      spent += per * count;
      count = Math.min(count * 2, 100_000);
    }
    c.batch = Math.max(20, Math.round((BATCH_MS * 1000) / per));
    c.means = [];
  }
  // Interleaved rounds: the first two are discarded as further warm-up.
  let offset = 0;
  for (let round = 0; round < ROUNDS + 2; round++) {
    for (const c of contenders) {
      const mean = runBatch(c.fn, requests, c.batch, offset);
      if (round >= 2) c.means.push(mean);
    }
    offset += 97;
  }
  for (const c of contenders) {
    c.median = median(c.means);
    c.p25 = quantile(c.means, 0.25);
    c.p75 = quantile(c.means, 0.75);
  }
}

// ---------------------------------------------------------------------------------------

/** The CLI that compiles the .mmb files: $MM_CLI, else the newest of target/{release,debug}. */
function cliBinary() {
  if (process.env.MM_CLI) return process.env.MM_CLI;
  const found = ["target/release/micromoment", "target/debug/micromoment"]
    .map((p) => path.join(root, p))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return found[0] ?? null;
}

function loadFigures() {
  const cli = cliBinary();
  if (!cli || !existsSync(cli)) {
    return { skipped: "no CLI binary (cargo build --bin micromoment, or set MM_CLI): bundle load not measured" };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "mm-v8-"));
  try {
    const keyDir = path.join(dir, "keys");
    execFileSync(cli, ["keygen", "ed25519", "-o", keyDir], { stdio: ["ignore", "ignore", "pipe"] });
    const pub = readFileSync(path.join(keyDir, "bundle-signing.pub"), "utf8").trim();
    const rows = [];
    for (const [slots, perSlot] of [[1, 1], [5, 20], [100, 100]]) {
      const json = path.join(dir, `g-${slots}x${perSlot}.json`);
      const mmb = path.join(dir, `g-${slots}x${perSlot}.mmb`);
      writeFileSync(json, JSON.stringify(generatedBundle(slots, perSlot)));
      execFileSync(cli, ["compile", json, "-o", mmb, "--sign-key", path.join(keyDir, "bundle-signing.key")],
        { stdio: ["ignore", "ignore", "pipe"] });
      const bytes = new Uint8Array(readFileSync(mmb));
      const candidates = slots * perSlot;
      const reps = candidates >= 10000 ? 15 : 200;
      const measure = (key) => {
        const ms = [];
        for (let i = 0; i < reps + 3; i++) {
          const t0 = process.hrtime.bigint();
          const b = mm.Bundle.load(bytes, key);
          const t = Number(process.hrtime.bigint() - t0) / 1e6;
          b.free();
          if (i >= 3) ms.push(t);
        }
        return { median: median(ms), min: Math.min(...ms), max: Math.max(...ms) };
      };
      rows.push({ candidates, bytes: bytes.length, verified: measure(pub), unsigned: measure(undefined), reps });
    }
    return { cli: path.relative(root, cli), rows };
  } catch (e) {
    return { skipped: `the CLI (${cli}) failed, bundle load not measured: ${String(e.stderr || e.message).trim()}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function decideSection() {
  const model = scenarioModel(3, 20);
  const bundle = mm.Bundle.compile(JSON.stringify(toBundle(model)));
  const slotNames = bundle.slots;
  const requests = sampleRequests(SAMPLES, slotNames);

  // Ours (b): a token from a previous request of the same visitor (same context and
  // time), then token verify + decision + re-sign.
  for (const req of requests) {
    const first = bundle.decide({ ...req.oursA, keys: KEYS });
    req.oursB = { token: first.token, keys: KEYS, context: req.oursA.context, slots: slotNames, now: NOW_MS };
    req.oursBText = JSON.stringify(req.oursB);
  }

  const contenders = [
    { name: "micromoment (a) decision only", fn: (r) => bundle.decide(r.oursA).decisions, ours: true },
    { name: "micromoment (b) + token verify & re-sign", fn: (r) => bundle.decide(r.oursB).decisions, ours: true },
    // (c): (b) as text in, text out (decideJson): the engine's own cost in WASM, what a
    // caller holding JSON pays (and close to the Worker's path), without building
    // JavaScript objects. Not a like-for-like peer row: the peers take and give objects.
    { name: "micromoment (c) = (b) as JSON text in and out", fn: (r) => bundle.decideJson(r.oursBText), ours: true, text: true },
    { name: "GrowthBook JS 1.8.0 (production bundle)", fn: growthBookPeer(gbBundled, toGrowthBookFeatures(model), model.contents, slotNames) },
    { name: "GrowthBook JS 1.8.0 (npm Node entry)", fn: growthBookPeer(gbNode, toGrowthBookFeatures(model), model.contents, slotNames) },
    { name: "json-logic-js 2.0.5 + priority loop", fn: jsonLogicPeer(model) },
    { name: "hand-written JS", fn: handWrittenPeer(model) },
  ];

  // ---- Parity, before any timing.
  const reasons = {};
  let mismatches = 0;
  const shown = [];
  for (const req of requests) {
    const a = bundle.decide(req.oursA).decisions;
    for (const d of a) reasons[d.reason] = (reasons[d.reason] || 0) + 1;
    const expected = a.map((d) => d.content);
    for (const c of contenders.slice(1)) {
      const out = c.fn(req);
      const got = (c.text ? JSON.parse(out).decisions : out).map((d) => d.content);
      c.parity = (c.parity || 0) + 1;
      if (got.join() !== expected.join()) {
        mismatches++;
        c.parity--;
        if (shown.length < 10) shown.push({ contender: c.name, request: req.data, ours: expected, theirs: got });
      }
    }
  }
  console.log(`\nscenario: 3 slots × 20 candidates (1 experiment per slot, 50/50, holdout ${HOLDOUT * 100} %), ` +
    `${requests.length} sampled visitors/contexts`);
  console.log(`ours' reasons over the sample (slot decisions): ${JSON.stringify(reasons)}`);
  console.log("\nparity (same content in every slot as micromoment (a), per sampled request):");
  for (const c of contenders.slice(1)) console.log(`  ${c.name.padEnd(44)} ${c.parity}/${requests.length}`);
  if (mismatches) {
    console.error(`\nPARITY FAILED: ${mismatches} mismatching answers; first ones:`);
    for (const m of shown) console.error(JSON.stringify(m));
    process.exit(1);
  }

  // ---- Timing. A diagnostic row, not a contender: (b) with its options read through
  // their JSON (stringified, encoded, parsed by serde), as `decide` reads options that
  // are not plain objects, against (b)'s packed options: what the JSON round trip costs.
  for (const req of requests) req.oursBViaJson = Object.assign(Object.create(null), req.oursB);
  contenders.push({
    name: "(diagnostic) (b), options read through JSON",
    fn: (r) => bundle.decide(r.oursBViaJson).decisions,
    diagnostic: true,
  });
  timeAll(contenders, requests);
  const [oursA, oursB] = contenders;
  const fmt = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(1));
  console.log(`\nper decision (3 slots), median of ${ROUNDS} interleaved batch means (~${BATCH_MS} ms each):`);
  console.log(`  ${"contender".padEnd(44)} ${"median µs".padStart(10)} ${"p25–p75 µs".padStart(14)} ` +
    `${"ours(a)/it".padStart(11)} ${"ours(b)/it".padStart(11)}`);
  for (const c of contenders) {
    console.log(`  ${c.name.padEnd(44)} ${fmt(c.median).padStart(10)} ${`${fmt(c.p25)}–${fmt(c.p75)}`.padStart(14)} ` +
      (c.diagnostic ? "" : `${(oursA.median / c.median).toFixed(2).padStart(10)}× ${(oursB.median / c.median).toFixed(2).padStart(10)}×`));
  }
  console.log("  (ours(x)/it > 1: micromoment takes that many times as long as it)");
}

function loadSection() {
  const fmt = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(1));
  const load = loadFigures();
  if (load.skipped) {
    console.log(`\nbundle load: ${load.skipped}`);
  } else {
    console.log(`\nBundle.load of generated_bundle .mmb files (compiled and signed by ${load.cli}), ms:`);
    for (const r of load.rows) {
      console.log(`  ${String(r.candidates).padStart(6)} candidates, ${String(r.bytes).padStart(9)} bytes: ` +
        `signature verified + decode median ${fmt(r.verified.median)} (min ${fmt(r.verified.min)}, max ${fmt(r.verified.max)}); ` +
        `without a key (content hash checked instead) + decode median ${fmt(r.unsigned.median)} — ${r.reps} loads each`);
    }
  }
}

/** benches/html.rs `page`, verbatim in JS: tag-dense paragraphs around three slots. */
function htmlPage(paragraphs) {
  let body = "";
  for (let i = 0; i < paragraphs; i++) {
    body += `<p class="copy">Paragraph ${i}: the <a href="/models/${i}">2027 range</a>, financing &amp; service.</p>\n`;
  }
  return `<!doctype html><html><head><title>Acme</title></head><body><div data-mm-slot="hero"><p>origin hero</p></div>\n${body}` +
    `<aside data-mm-slot="sidebar">origin</aside><footer data-mm-slot="banner">origin</footer></body></html>`;
}

/** `Bundle.personalize` in WASM: one pass deciding, filling and re-signing a page. */
function htmlSection() {
  const bundle = mm.Bundle.load(new Uint8Array(readFileSync(path.join(root, "fixtures/automotive.mmb"))));
  const options = { keys: KEYS, now: NOW_MS, visitor: "0123456789abcdef0123456789abcdef", context: { geo: { city: "Lyon" } } };
  console.log("\nBundle.personalize (decide + rewrite + sign, one pass) of benches/html.rs pages, automotive bundle:");
  for (const paragraphs of [100, 2000]) {
    const text = htmlPage(paragraphs);
    const bytes = new TextEncoder().encode(text);
    for (const [kind, page] of [["bytes", bytes], ["text", text]]) {
      const once = bundle.personalize(page, options);
      if (!once || once.decisions.length !== 3) throw new Error("the bench page must fill three slots");
      const fn = () => bundle.personalize(page, options).decisions.length;
      const means = [];
      let count = 20;
      for (const until = Date.now() + 300; Date.now() < until;) for (let i = 0; i < count; i++) fn();
      for (let round = 0; round < ROUNDS; round++) {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < count; i++) sink += fn();
        const secs = Number(process.hrtime.bigint() - t0) / 1e9;
        means.push(secs / count);
        if (secs < BATCH_MS / 1000) count *= 2;
      }
      const per = median(means);
      console.log(`  ${String(Math.round(bytes.length / 1024)).padStart(4)} KiB page as ${kind.padEnd(5)}: ` +
        `median ${(per * 1e6).toFixed(0).padStart(6)} µs per page, ${(bytes.length / per / 1e6).toFixed(1)} MB/s ` +
        `(${(bytes.length / per / 1048576).toFixed(1)} MiB/s)`);
    }
  }
}

const SECTIONS = { decide: decideSection, load: loadSection, html: htmlSection };

function main() {
  const inChild = Boolean(process.env.MM_SECTION_CHILD);
  if (!inChild) {
    console.log(`micromoment V8 comparison — node ${process.version} (V8 ${process.versions.v8}), ` +
      `${os.cpus()[0]?.model} × ${os.cpus().length}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  }
  const parts = (process.env.PARTS || Object.keys(SECTIONS).join(",")).split(",");
  const unknown = parts.filter((part) => !SECTIONS[part]);
  if (unknown.length) {
    console.error(`compare: PARTS names unknown sections: ${unknown.join(", ")} (known: ${Object.keys(SECTIONS).join(", ")})`);
    process.exit(2);
  }
  if (inChild || parts.length === 1) {
    for (const part of parts) SECTIONS[part]();
  } else {
    // Each section in a fresh Node process: a bundle load is what a new isolate pays,
    // and measured after the decide section it would include that section's garbage
    // and a grown, fragmented WebAssembly heap (~26 ms instead of ~15 for 10,000).
    for (const part of parts) {
      try {
        execFileSync(process.execPath, [fileURLToPath(import.meta.url)], {
          stdio: "inherit",
          env: { ...process.env, PARTS: part, MM_SECTION_CHILD: "1" },
        });
      } catch (e) {
        process.exit(typeof e.status === "number" ? e.status : 1);
      }
    }
  }
  // The sink is printed so that no timed result is dead code.
  if (inChild) console.log(`(sink ${sink})`);
  else console.log(`\nload average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (sink ${sink})`);
}

// MM_NO_MAIN=1 lets a profiling script import the scenario without running the comparison.
if (!process.env.MM_NO_MAIN) main();
export { scenarioModel, toBundle, sampleRequests, KEYS, NOW_MS };
