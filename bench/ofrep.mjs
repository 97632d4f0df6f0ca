// What the OpenFeature protocol costs over `/v1/decide`, under `wrangler dev` (local
// workerd, the embedded bundle): the same person (a token of the decision stage), the
// same context and the same five slots, asked N times each way, interleaved so both see
// the same host: `GET /v1/decide?slots=…` against `POST /ofrep/v1/evaluate/flags` (the
// bulk call, ETag and all) and the bulk poll answered 304. Client-side latency, p50 and
// p90 per round.
//   node bench/ofrep.mjs              (N=300 per case and round, 3 rounds, after a warm-up)
// Needs the built Worker (scripts/build-worker.sh) and the CLI (cargo build). Prints
// figures; asserts nothing.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { KEYS, cli, cleanup, startWorker, tempDir } from "../tests/e2e/harness.mjs";

const N = Number(process.env.N ?? 300);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const NOW = "2026-01-14T15:00:00Z";
const UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const SLOTS = "hero,sidebar,banner,push,app-card";

const tmp = tempDir("bench-ofrep");
const keysFile = join(tmp, "keys.json");
writeFileSync(keysFile, JSON.stringify(KEYS));
const worker = await startWorker({ dir: tmp, vars: { MM_DEV: "1", JOURNEY_KEYS: JSON.stringify(KEYS) } });
const base = worker.base;
const token = cli("token", "mint", "--keys", keysFile, "--stage", "decision", "--now", NOW);
const headers = { "User-Agent": UA, "X-MM-Now": NOW, "X-MM-Token": token, "X-MM-Geo-Country": "FR" };
const context = { "page.path": "/models/suv/x5", "geo.country": "FR", channel: "app" };

async function timed(url, init) {
  const start = performance.now();
  const r = await fetch(url, init);
  await r.arrayBuffer();
  const ms = performance.now() - start;
  return { ms, r };
}
const decide = () => timed(`${base}/v1/decide?slots=${SLOTS}&path=/models/suv/x5&channel=app`, { headers });
const bulk = (extra = {}) => timed(`${base}/ofrep/v1/evaluate/flags`, {
  method: "POST", headers: { ...headers, "Content-Type": "application/json", ...extra }, body: JSON.stringify({ context }),
});

// A poll sends back an answer's ETag with the token that answer gave: each poll then
// matches (a 304 changes nothing, so the next poll is the same request).
const given = await fetch(`${base}/ofrep/v1/evaluate/flags`, {
  method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify({ context }),
});
const etag = given.headers.get("etag");
const pollHeaders = { "X-MM-Token": (await given.json()).metadata.token, "If-None-Match": etag };
const poll = () => bulk(pollHeaders);
if ((await poll()).r.status !== 304) throw new Error("the poll must be a 304");

for (let i = 0; i < 100; i++) { await decide(); await bulk(); await poll(); }

const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
for (let round = 1; round <= ROUNDS; round++) {
  const times = { decide: [], bulk: [], poll: [] };
  for (let i = 0; i < N; i++) {
    times.decide.push((await decide()).ms);
    times.bulk.push((await bulk()).ms);
    times.poll.push((await poll()).ms);
  }
  const line = Object.entries(times).map(([k, xs]) => `${k} p50 ${pct(xs, 50).toFixed(2)} ms p90 ${pct(xs, 90).toFixed(2)} ms`).join("; ");
  console.log(`round ${round}: ${line}; bulk − decide p50 ${(pct(times.bulk, 50) - pct(times.decide, 50)).toFixed(2)} ms`);
}
await worker.stop();
cleanup(tmp);
