// Two or more builds of the npm package on the V8 comparison's scenario, in one Node
// process: interleaved batches of `Bundle.decide`, (a) the decision alone and (b) with
// token verify and re-sign, the same sampled requests for every build. For judging a
// change to the JS boundary, where the host's state moves absolute figures by 2x from
// one run to the next but hits interleaved builds alike.
//
//   wasm-bindgen --target nodejs --out-dir /tmp/before <before.wasm>   (and /tmp/after)
//   node bench/v8/ab.mjs /tmp/before /tmp/after
//
// Environment: ROUNDS (default 41), BATCH (calls per batch, default 400). Prints the
// median and p25 of the batch means, µs per decision; asserts nothing.
import { createRequire } from "node:module";
import path from "node:path";

process.env.MM_NO_MAIN = "1";
const { scenarioModel, toBundle, sampleRequests, KEYS, NOW_MS } = await import("./compare.mjs");
const require = createRequire(import.meta.url);

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error("usage: node bench/v8/ab.mjs <wasm-bindgen nodejs output dir>...");
  process.exit(2);
}
const ROUNDS = Number(process.env.ROUNDS || 41);
const BATCH = Number(process.env.BATCH || 400);
const model = scenarioModel(3, 20);
const requests = sampleRequests(2000, ["slot-0", "slot-1", "slot-2"]);

const contenders = [];
for (const dir of dirs) {
  const mm = require(path.resolve(dir, "micromoment.js"));
  const bundle = mm.Bundle.compile(JSON.stringify(toBundle(model)));
  const calls = requests.map((r) => {
    const first = bundle.decide({ ...r.oursA, keys: KEYS });
    return { a: r.oursA, b: { token: first.token, keys: KEYS, context: r.oursA.context, slots: bundle.slots, now: NOW_MS } };
  });
  contenders.push({ name: `${dir} (a)`, fn: (i) => bundle.decide(calls[i].a).decisions.length, means: [] });
  contenders.push({ name: `${dir} (b)`, fn: (i) => bundle.decide(calls[i].b).decisions.length, means: [] });
}

let sink = 0;
function batch(c, n, offset) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += c.fn((offset + i) % requests.length);
  return Number(process.hrtime.bigint() - t0) / 1000 / n;
}
for (const c of contenders) {
  const until = Date.now() + 400;
  while (Date.now() < until) batch(c, 200, 0);
}
for (let round = 0; round < ROUNDS; round++) {
  for (const c of contenders) c.means.push(batch(c, BATCH, round * 97));
}
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const at = (xs, q) => sorted(xs)[Math.floor(q * (xs.length - 1))];
console.log(`µs per decision, ${ROUNDS} interleaved batches of ${BATCH}: median (p25)`);
for (const c of contenders) {
  console.log(`  ${c.name.padEnd(48)} ${at(c.means, 0.5).toFixed(2).padStart(7)} (${at(c.means, 0.25).toFixed(2)})`);
}
console.log(`(sink ${sink})`);
