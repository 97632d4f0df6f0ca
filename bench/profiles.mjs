// What profiles cost a request, under `wrangler dev` (local workerd, the real Durable
// Object on local SQLite): /v1/decide latency for a device without a profile, for a
// linked device between syncs, and for a linked device whose every request starts a
// visit (so syncs before deciding); and how long a change made on one device takes to
// be in the profile (its push after the response), polled every 2 ms.
//   node bench/profiles.mjs            (N=300 requests per case, after a warm-up)
// Needs the built Worker (scripts/build-worker.sh) and the CLI (cargo build). Prints
// figures; asserts nothing.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { KEYS, ROOT, cli, cleanup, startWorker, tempDir, tokenFrom } from "../tests/e2e/harness.mjs";

const N = Number(process.env.N ?? 300);
const BACKEND = "backend-token-0123456789abcdef";
const UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const T0 = Date.parse("2026-12-02T09:00:00Z");
const at = (minutes) => new Date(T0 + minutes * 60_000).toISOString().replace(".000Z", "Z");

const tmp = tempDir("bench-profiles");
const keysFile = join(tmp, "keys.json");
writeFileSync(keysFile, JSON.stringify(KEYS));
const mmb = join(tmp, "profiles.mmb");
cli("compile", join(ROOT, "fixtures", "profiles.json"), "-o", mmb);
cli("publish", mmb, "--local", "--persist-to", join(tmp, "state"));
const worker = await startWorker({
  dir: tmp,
  vars: { MM_DEV: "1", JOURNEY_KEYS: JSON.stringify(KEYS), MM_BACKEND_TOKEN: BACKEND, MM_PROFILE_WAIT_MS: "1000" },
});
const base = worker.base;

async function request(token, minute, path = "/") {
  const headers = { "User-Agent": UA, "X-MM-Now": at(minute) };
  if (token) headers.Cookie = `mm=${token}`;
  const start = performance.now();
  const r = await fetch(`${base}/v1/decide?slots=hero,promo,test&path=${path}`, { headers });
  await r.arrayBuffer();
  const ms = performance.now() - start;
  if (r.status !== 200) throw new Error(`status ${r.status}`);
  return { ms, token: tokenFrom(r) ?? token };
}

function summary(name, samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2);
  console.log(`${name.padEnd(58)} n=${s.length}  p50 ${q(0.5)} ms  p90 ${q(0.9)} ms  p99 ${q(0.99)} ms`);
}

/** `N` requests of one device, `step` minutes apart (31: each one a new visit). */
async function run(token, step) {
  const samples = [];
  let minute = 0;
  for (let i = 0; i < 20 + N; i++) {
    minute += step;
    const r = await request(token, minute);
    token = r.token;
    if (i >= 20) samples.push(r.ms);
  }
  return samples;
}

try {
  const mint = (...more) => cli("token", "mint", "--keys", keysFile, "--now", at(0), ...more);
  for (let round = 1; round <= 2; round++) {
    summary(`round ${round}: no profile, within a visit`, await run(mint(), 1));
    summary(`round ${round}: no profile, every request a new visit`, await run(mint(), 31));
    summary(`round ${round}: linked, within a visit (no sync)`, await run(mint("--profile", `${round}1`.repeat(16)), 1));
    summary(`round ${round}: linked, every request a new visit (sync first)`, await run(mint("--profile", `${round}2`.repeat(16)), 31));
  }
  // Change → visible in the profile: a stage change on a fresh linked device, then the
  // backend API polled until the profile has it.
  const visible = [];
  for (let i = 0; i < 40; i++) {
    const profile = (0x30 + i).toString(16).padStart(2, "0").repeat(16);
    const token = mint("--profile", profile);
    await request(token, 0, "/"); // joins (sync) and settles
    const start = performance.now();
    await request(token, 1, "/models/suv");
    for (;;) {
      const r = await fetch(`${base}/v1/profiles/${profile}`, { headers: { Authorization: `Bearer ${BACKEND}`, "X-MM-Now": at(1) } });
      if (r.status === 200 && (await r.json()).stage === "consideration") break;
      await new Promise((res) => setTimeout(res, 2));
    }
    visible.push(performance.now() - start);
  }
  summary("a change on one device, from its request to the profile", visible);
  console.log(`machine: load ${(await import("node:os")).loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} finally {
  await worker.stop();
  cleanup(tmp);
}
