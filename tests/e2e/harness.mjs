// What the end-to-end tests share: free ports, the built Worker under `wrangler dev`
// (local workerd) with a config of the test's own, readiness polled with a deadline,
// the CLI, and the headless Chromium the page tests open pages in.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import assert from "node:assert/strict";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(ROOT, "target", "debug", "micromoment");
export const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const KEYS = { current: "k1", keys: { k1: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } };
const READY_DEADLINE_MS = 15 * 60 * 1000; // a first run may still be building

// `wrangler dev` (4.86) puts a proxy before the Worker whose pooled connections both
// ends close after 5 s idle: a request written into one at that moment is never
// answered (cloudflare/workers-sdk#14641; the request never reaches the Worker). Every
// request a test sends to a Worker it started is therefore bounded, and sent once more
// when it got no answer: it did not reach the Worker, so sending it again is safe.
const WORKER_BASES = new Set();
const REQUEST_DEADLINE_MS = 20_000;
const plainFetch = globalThis.fetch;
globalThis.fetch = async function fetchWorker(input, init = {}) {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  const ours = [...WORKER_BASES].some((base) => url.startsWith(base));
  if (!ours || init.signal || typeof input !== "string" && !(input instanceof URL)) return plainFetch(input, init);
  for (let attempt = 1; ; attempt++) {
    try {
      return await plainFetch(input, { ...init, signal: AbortSignal.timeout(REQUEST_DEADLINE_MS) });
    } catch (e) {
      const unanswered = e?.name === "TimeoutError" || e?.cause?.code === "UND_ERR_SOCKET" || e?.cause?.code === "ECONNRESET";
      if (!unanswered || attempt === 2) throw e;
      console.log(`# no answer from wrangler dev within ${REQUEST_DEADLINE_MS} ms (its idle-connection hang): ${init.method ?? "GET"} ${url} sent again`);
    }
  }
};

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

export function tempDir(name) {
  return mkdtempSync(join(tmpdir(), `mm-${name}-`));
}

export function cli(...args) {
  return execFileSync(CLI, args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** The token in a response's `Set-Cookie`, if any. */
export function tokenFrom(response) {
  const cookie = response.headers.get("set-cookie") ?? "";
  const match = /(?:^|,\s*)mm=([^;]+)/.exec(cookie);
  return match ? match[1] : null;
}

/** Polls `condition` until it holds or `ms` pass; fails with `log()`. */
export async function eventually(condition, ms, log = () => "") {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${ms} ms; log:\n${log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Starts the built Worker under `wrangler dev` in `dir`, with `vars` as `--var`s and,
 * when given, another `main` module (a fault-injecting wrapper). Resolves to
 * `{base, log(), stop()}` once `/healthz` answers.
 */
export async function startWorker({ dir, vars = {}, main, extraConfig = "" }) {
  // A config without a [build] section keeps wrangler from rebuilding or restarting
  // the Worker while the tests run: scripts/build-worker.sh built it.
  const config = readFileSync(join(ROOT, "wrangler.toml"), "utf8")
    .replace(/^\[build\][\s\S]*?(?=^\[)/m, "")
    .replace(/^main = .*$/m, `main = "${main ?? join(ROOT, "build", "worker", "shim.mjs")}"`) + extraConfig;
  const configPath = join(dir, "wrangler.toml");
  writeFileSync(configPath, config);
  const port = await freePort();
  const inspector = await freePort();
  const base = `http://127.0.0.1:${port}`;
  WORKER_BASES.add(base);
  const args = [
    "dev", "--config", configPath, "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector),
    "--persist-to", join(dir, "state"), "--show-interactive-dev-session=false",
  ];
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  const started = await spawnWrangler(args, base, "/healthz");
  return { ...started, persist: join(dir, "state") };
}

/**
 * Starts the studio (studio/, built by scripts/build-studio.sh) under `wrangler dev` in
 * `dir`, on the local state `persist` (the edge's, so they share KV), with `vars`.
 * Resolves to `{base, log(), stop()}` once its sign-in page answers.
 */
export async function startStudio({ dir, persist, vars = {} }) {
  const studio = join(ROOT, "studio");
  const config = readFileSync(join(studio, "wrangler.toml"), "utf8")
    .replace(/^\[build\][\s\S]*?(?=^\[)/m, "")
    .replace(/^main = .*$/m, `main = "${join(studio, "src", "worker.js")}"`)
    .replace(/^directory = "dist"$/m, `directory = "${join(studio, "dist")}"`);
  const configPath = join(dir, "studio.toml");
  writeFileSync(configPath, config);
  const port = await freePort();
  const inspector = await freePort();
  const base = `http://127.0.0.1:${port}`;
  WORKER_BASES.add(base);
  const args = [
    "dev", "--config", configPath, "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector),
    "--persist-to", persist, "--show-interactive-dev-session=false",
  ];
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  return spawnWrangler(args, base, "/login");
}

/** Runs wrangler with `args` and waits until `base + ready` answers 200. */
async function spawnWrangler(args, base, ready) {
  let output = "";
  const child = spawn(WRANGLER, args, {
    cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" },
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const log = () => output;
  const deadline = Date.now() + READY_DEADLINE_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${log()}`);
    try {
      const r = await plainFetch(`${base}${ready}`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`not ready after ${READY_DEADLINE_MS} ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  async function stop() {
    if (child.exitCode !== null) return;
    try { process.kill(-child.pid, "SIGTERM"); } catch {}
    const until = Date.now() + 10000;
    while (Date.now() < until) {
      try { process.kill(-child.pid, 0); } catch { return; }
      await new Promise((r) => setTimeout(r, 100));
    }
    try { process.kill(-child.pid, "SIGKILL"); } catch {}
  }
  return { base, log, stop, child };
}

/** Headless Chromium with the flags this machine needs (no background networking). */
export async function launchChromium() {
  assert.ok(existsSync(CHROMIUM), `Chromium is required at ${CHROMIUM} (.ci/run and scripts/test.sh install it)`);
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

/**
 * A temporary directory for a test file with the test keys in `keys.json` and the
 * bundle `source` (authoring JSON) compiled and published to its local KV (`state`),
 * as `wrangler dev --persist-to` reads it: `{tmp, keysFile}`.
 */
export function publishedBundle(name, source) {
  const tmp = tempDir(name);
  const keysFile = join(tmp, "keys.json");
  writeFileSync(keysFile, JSON.stringify(KEYS));
  const mmb = join(tmp, `${name}.mmb`);
  cli("compile", source, "-o", mmb);
  cli("publish", mmb, "--local", "--persist-to", join(tmp, "state"));
  return { tmp, keysFile };
}

export function cleanup(dir) {
  if (dir) rmSync(dir, { recursive: true, force: true });
}
