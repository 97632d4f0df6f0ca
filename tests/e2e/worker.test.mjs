// End-to-end tests of the Worker under `wrangler dev` (local workerd), run with
// `node --test tests/e2e/`. They start a small origin server and the Worker on free
// local ports, wait for readiness with a deadline, and check the routes over HTTP,
// using the `micromoment` CLI (target/debug) to mint tokens and publish bundles.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { createRequire } from "node:module";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "target", "debug", "micromoment");
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const READY_DEADLINE_MS = 15 * 60 * 1000; // the first run builds the Worker
const KEYS = { current: "k1", keys: { k1: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } };
const PREVIEW = "preview-secret-for-tests";
const PAGE = `<!doctype html><html><head><title>Acme</title></head><body>
<div data-mm-slot="hero"><p>origin hero</p></div>
<aside data-mm-slot="sidebar">origin sidebar</aside>
<footer data-mm-slot="not-in-bundle">kept</footer>
</body></html>`;
const IMAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
const JSON_BODY = JSON.stringify({ items: [1, 2, 3], note: "data-mm-slot=\"hero\" stays" });

let tmp, keysFile, origin, worker, base;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

function cli(...args) {
  return execFileSync(CLI, args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

async function waitReady(url, child, deadlineMs, log) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${log()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`not ready after ${deadlineMs} ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "mm-e2e-"));
  keysFile = join(tmp, "keys.json");
  writeFileSync(keysFile, JSON.stringify(KEYS));

  origin = createServer((req, res) => {
    if (req.url.startsWith("/page.html")) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", etag: '"v1"' });
      res.end(PAGE);
    } else if (req.url === "/partial.html") {
      res.writeHead(206, { "content-type": "text/html", "content-range": `bytes 0-${PAGE.length - 1}/9999` });
      res.end(PAGE);
    } else if (req.url === "/data.json") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON_BODY);
    } else if (req.url === "/image.png") {
      res.writeHead(200, { "content-type": "image/png" });
      res.end(IMAGE);
    } else {
      res.writeHead(404, { "content-type": "text/html" });
      res.end("<h1>not here</h1>");
    }
  });
  const originPort = await freePort();
  await new Promise((r) => origin.listen(originPort, "127.0.0.1", r));

  // The Worker is built once by scripts/build-worker.sh; a config without a [build]
  // section keeps wrangler from rebuilding or restarting it while the tests run.
  const config = readFileSync(join(ROOT, "wrangler.toml"), "utf8")
    .replace(/\[build\][^[]*/s, "")
    .replace(/^main = .*$/m, `main = "${join(ROOT, "build", "worker", "shim.mjs")}"`);
  writeFileSync(join(tmp, "wrangler.toml"), config);
  const port = await freePort();
  const inspector = await freePort();
  base = `http://127.0.0.1:${port}`;
  let output = "";
  worker = spawn(
    WRANGLER,
    [
      "dev", "--config", join(tmp, "wrangler.toml"), "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector),
      "--persist-to", join(tmp, "state"), "--show-interactive-dev-session=false",
      "--var", `ORIGIN:http://127.0.0.1:${originPort}`, "--var", "MM_DEV:1",
      "--var", "MM_BUNDLE_RECHECK_SECS:1", "--var", `JOURNEY_KEYS:${JSON.stringify(KEYS)}`,
      "--var", `MM_PREVIEW_SECRET:${PREVIEW}`,
    ],
    { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" } },
  );
  worker.stdout.on("data", (d) => (output += d));
  worker.stderr.on("data", (d) => (output += d));
  worker.log = () => output;
  await waitReady(`${base}/healthz`, worker, READY_DEADLINE_MS, worker.log);
});

after(async () => {
  if (worker && worker.exitCode === null) {
    try { process.kill(-worker.pid, "SIGTERM"); } catch {}
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      try { process.kill(-worker.pid, 0); } catch { break; }
      await new Promise((r) => setTimeout(r, 100));
    }
    try { process.kill(-worker.pid, "SIGKILL"); } catch {}
  }
  origin?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** `/v1/bundle`, or null when the request did not go through (a busy local runtime). */
async function bundleInfo() {
  try {
    return await (await fetch(`${base}/v1/bundle`, { signal: AbortSignal.timeout(5000) })).json();
  } catch (e) {
    console.log(`/v1/bundle: ${e.cause?.code ?? e.message}`);
    return null;
  }
}

/** Polls `condition` until it holds or `ms` pass; fails with the worker log. */
async function eventually(condition, ms) {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${ms} ms; worker log:\n${worker.log()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function tokenFrom(response) {
  const cookie = response.headers.get("set-cookie") ?? "";
  const match = /(?:^|,\s*)mm=([^;]+)/.exec(cookie);
  return match ? match[1] : null;
}

async function decide(query, headers = {}) {
  const r = await fetch(`${base}/v1/decide?${query}`, { headers });
  return { status: r.status, body: await r.json(), token: tokenFrom(r), headers: r.headers };
}

const LYON = { "X-MM-Geo-City": "Lyon", "X-MM-Geo-Country": "FR", "X-MM-Geo-Timezone": "Europe/Paris" };

test("a new visitor gets the defaults and a token", async () => {
  const r = await decide("slots=hero,sidebar");
  assert.equal(r.status, 200);
  assert.equal(r.body.stage, "awareness");
  assert.equal(r.body.decisions[0].content, "brand-film");
  assert.equal(r.body.decisions[0].reason, "default");
  assert.ok(r.token, "Set-Cookie carries a token");
  assert.equal(r.body.token, r.token);
  const cookie = r.headers.get("set-cookie");
  for (const attr of ["Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age="]) assert.ok(cookie.includes(attr), cookie);
  const state = JSON.parse(cli("token", "inspect", r.token, "--keys", keysFile));
  assert.equal(state.visits, 1);
});

test("a decision-stage token and a matching context get stage content, and the new token counts it", async () => {
  const minted = cli("token", "mint", "--keys", keysFile, "--stage", "decision");
  const r = await decide("slots=hero,sidebar&path=/models/suv/x5", { Cookie: `other=1; mm=${minted}`, ...LYON });
  assert.equal(r.status, 200);
  assert.equal(r.body.stage, "decision");
  assert.deepEqual(r.body.decisions.map((d) => d.content), ["dealer-offer", "test-drive"]);
  assert.equal(r.body.decisions[0].candidate, "hero-dealer");
  assert.match(r.body.decisions[0].html, /Lyon/);
  const state = JSON.parse(cli("token", "inspect", r.token, "--keys", keysFile));
  assert.equal(state.impressions.length, 2, JSON.stringify(state.impressions));
  assert.ok(state.impressions.every((i) => i.count === 1));
  // Apps send and receive the token in X-MM-Token.
  const app = await fetch(`${base}/v1/decide?slots=push&event=test_drive_booked`, { headers: { "X-MM-Token": r.token } });
  const body = await app.json();
  assert.equal(app.headers.get("set-cookie"), null);
  assert.equal(app.headers.get("x-mm-token"), body.token);
  assert.equal(body.decisions[0].content, "app-test-drive-reminder");
  assert.ok(body.decisions[0].json, "apps get the JSON rendition");
});

test("tampered, expired and oversized tokens are new visitors, never errors", async () => {
  const good = cli("token", "mint", "--keys", keysFile, "--stage", "decision");
  const last = good.at(-1) === "A" ? "B" : "A";
  const tampered = good.slice(0, -1) + last;
  const expired = cli("token", "mint", "--keys", keysFile, "--stage", "decision", "--now", "2020-01-01T00:00:00Z", "--ttl", "1d");
  const oversized = "v1.k1." + "A".repeat(5000) + ".B";
  for (const token of [tampered, expired, oversized, "garbage", "v9.k1.a.b"]) {
    const r = await decide("slots=hero", { Cookie: `mm=${token}` });
    assert.equal(r.status, 200, token.slice(0, 40));
    assert.equal(r.body.stage, "awareness");
    assert.equal(r.body.decisions[0].content, "brand-film");
    assert.ok(r.token && r.token !== token);
  }
});

test("tokens minted by the npm package verify in the worker, and the other way round", async () => {
  const mm = createRequire(import.meta.url)(join(ROOT, "js", "node", "micromoment.js"));
  const minted = mm.mintToken({ keys: KEYS, stage: "purchase", visitor: "00112233445566778899aabbccddeeff" });
  const r = await decide("slots=hero", { Cookie: `mm=${minted}` });
  assert.equal(r.body.stage, "purchase");
  assert.equal(r.body.decisions[0].content, "order-tracker");
  const state = mm.inspectToken(r.token, KEYS);
  assert.equal(state.visitor, "00112233445566778899aabbccddeeff");
  assert.equal(state.visits, 1);
});

test("events move the journey: order_completed makes a purchase", async () => {
  const first = await decide("slots=hero");
  const r = await fetch(`${base}/v1/events`, {
    method: "POST",
    headers: { Cookie: `mm=${first.token}`, "content-type": "application/json" },
    body: JSON.stringify({ events: [{ name: "order_completed" }] }),
  });
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.stage, "purchase");
  const after = await decide("slots=hero", { Cookie: `mm=${tokenFrom(r)}` });
  assert.equal(after.body.decisions[0].content, "order-tracker");
  for (const bad of ["not json", JSON.stringify({ events: "x" }), "x".repeat(20000)]) {
    const e = await fetch(`${base}/v1/events`, { method: "POST", body: bad });
    assert.equal(e.status, 400);
    assert.ok((await e.json()).error);
  }
});

test("bad requests are 400 with a JSON error", async () => {
  const unknown = await decide("slots=heor");
  assert.equal(unknown.status, 400);
  assert.equal(unknown.body.error, 'unknown slot "heor" (did you mean "hero"?)');
  const missing = await decide("");
  assert.equal(missing.status, 400);
  const twice = await decide("slots=hero,hero");
  assert.equal(twice.body.decisions.length, 1, "each slot once");
  const big = await fetch(`${base}/v1/events`, { method: "POST", body: "x".repeat(999999) });
  assert.equal(big.status, 400);
});

test("explain needs the preview secret and returns a trace", async () => {
  const denied = await fetch(`${base}/v1/explain?slots=hero`);
  assert.equal(denied.status, 403);
  const wrong = await fetch(`${base}/v1/explain?slots=hero`, { headers: { "X-MM-Preview": "nope" } });
  assert.equal(wrong.status, 403);
  const r = await fetch(`${base}/v1/explain?slots=hero`, { headers: { "X-MM-Preview": PREVIEW } });
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.ok(body.trace.slots[0].candidates.length > 0);
  assert.equal(r.headers.get("set-cookie"), null, "a preview writes no state");
});

test("Sec-GPC gets defaults and no Set-Cookie", async () => {
  const minted = cli("token", "mint", "--keys", keysFile, "--stage", "purchase");
  const r = await decide("slots=hero", { "Sec-GPC": "1", Cookie: `mm=${minted}` });
  assert.equal(r.status, 200);
  assert.equal(r.body.decisions[0].reason, "consent");
  assert.equal(r.body.decisions[0].content, "brand-film");
  assert.equal(r.headers.get("set-cookie"), null);
  assert.equal(r.body.token, null);
});

test("the page proxy fills two slots and leaves everything else alone", async () => {
  const minted = cli("token", "mint", "--keys", keysFile, "--stage", "decision");
  const r = await fetch(`${base}/page.html`, { headers: { Cookie: `mm=${minted}`, ...LYON } });
  assert.equal(r.status, 200);
  const html = await r.text();
  assert.match(html, /<div data-mm-slot="hero" data-mm-content="dealer-offer">.*Lyon/s);
  assert.match(html, /<aside data-mm-slot="sidebar" data-mm-content="test-drive">/);
  assert.ok(!html.includes("origin hero") && !html.includes("origin sidebar"));
  assert.match(html, /<footer data-mm-slot="not-in-bundle">kept<\/footer>/);
  assert.match(r.headers.get("vary") ?? "", /Cookie/);
  assert.match(r.headers.get("cache-control") ?? "", /private/);
  assert.ok(tokenFrom(r));
  assert.equal(r.headers.get("etag"), null);

  const json = await fetch(`${base}/data.json`);
  assert.equal(json.status, 200);
  assert.equal(await json.text(), JSON_BODY);
  const image = await fetch(`${base}/image.png`);
  assert.deepEqual(Buffer.from(await image.arrayBuffer()), IMAGE);
  assert.equal(image.headers.get("set-cookie"), null);
  // A byte range of a page is not a page: it passes through untouched.
  const partial = await fetch(`${base}/partial.html`);
  assert.equal(partial.status, 206);
  assert.equal(await partial.text(), PAGE);
  // A link cannot fire an app event on a page.
  const linked = await fetch(`${base}/page.html?event=order_completed`);
  const after = await decide("slots=hero", { Cookie: `mm=${tokenFrom(linked)}` });
  assert.equal(after.body.stage, "awareness", "still the first stage");
  const missing = await fetch(`${base}/missing`);
  assert.equal(missing.status, 404);
  assert.equal(await missing.text(), "<h1>not here</h1>");
});

test("publishing a bundle changes the answer; a corrupt one keeps the last good bundle", async () => {
  const before = await (await fetch(`${base}/v1/bundle`)).json();
  assert.equal(before.source, "embedded");
  const source = JSON.parse(readFileSync(join(ROOT, "fixtures", "automotive.json"), "utf8"));
  source.version = 8;
  source.slots.hero.default = "model-range";
  const json = join(tmp, "v8.json");
  const mmb = join(tmp, "v8.mmb");
  writeFileSync(json, JSON.stringify(source));
  cli("compile", json, "-o", mmb);
  cli("publish", mmb, "--local", "--persist-to", join(tmp, "state"));
  let info;
  await eventually(async () => {
    info = await bundleInfo();
    return info?.version === 8;
  }, 30000);
  assert.equal(info.source, "kv");
  assert.equal((await decide("slots=hero")).body.decisions[0].content, "model-range");

  // A corrupt value behind a new pointer: the isolate keeps version 8.
  const garbage = join(tmp, "garbage.mmb");
  writeFileSync(garbage, Buffer.concat([Buffer.from("MMB1"), Buffer.alloc(64, 7)]));
  const kv = (...args) =>
    execFileSync(WRANGLER, ["kv", "key", "put", ...args, "--binding", "BUNDLES", "--local", "--persist-to", join(tmp, "state")], {
      cwd: ROOT, stdio: "ignore", env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    });
  kv("bundle:corrupt", "--path", garbage);
  kv("current", "corrupt");
  // Refreshes happen on requests: keep asking until one has seen the corrupt pointer.
  await eventually(async () => {
    await bundleInfo();
    return /bundle refresh failed, keeping the last good bundle/.test(worker.log());
  }, 20000);
  const kept = await bundleInfo();
  assert.equal(kept.hash, info.hash);
  assert.equal((await decide("slots=hero")).body.decisions[0].content, "model-range");
});

test("exposures are logged after the response", async () => {
  const r = await decide("slots=hero,sidebar");
  const visitor = JSON.parse(cli("token", "inspect", r.token, "--keys", keysFile)).visitor;
  await eventually(() => worker.log().includes(`"visitor":"${visitor}"`), 20000);
  const lines = worker.log().split("\n").filter((l) => l.includes(`"visitor":"${visitor}"`));
  assert.equal(lines.length, 2, "one exposure per slot");
  // Bots are served but not counted.
  const bot = await decide("slots=hero", { "User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)" });
  assert.equal(bot.status, 200);
});

test("10,000 fuzzed requests get no 5xx and do not crash the worker", async () => {
  // A fixed xorshift stream: the same replay every run.
  let seed = 0x2545f491;
  const rand = (n) => {
    seed ^= seed << 13; seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5; seed >>>= 0;
    return seed % n;
  };
  const pick = (xs) => xs[rand(xs.length)];
  const junk = (len) => Array.from({ length: len }, () => String.fromCharCode(32 + rand(95))).join("");
  const good = cli("token", "mint", "--keys", keysFile, "--stage", "decision", "--segments", "vip");
  const paths = ["/v1/decide", "/v1/events", "/v1/explain", "/v1/bundle", "/healthz", "/page.html", "/data.json", "/image.png", "/nope", "/v1/decide/extra", "/%2e%2e/etc", "/v1//decide"];
  const queries = ["", "?slots=hero", "?slots=hero,sidebar,banner", "?slots=", "?slots=" + junk(40), "?slots=hero&event=order_completed",
    "?slots=push&channel=app&app_version=9.9.9", "?slots=hero&path=/models/suv/x5&utm_source=newsletter", "?" + junk(60), "?slots=hero,hero,hero"];
  const cookies = [undefined, `mm=${good}`, `mm=${good.slice(0, -3)}`, `mm=${junk(100)}`, `mm=${"A".repeat(6000)}`, `a=1; mm=${good}; mm=x`,
    junk(200), "mm_consent=0", `mm="${good}"`, "=; ;;; mm"];
  const methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"];
  const bodies = [undefined, JSON.stringify({ events: [{ name: "order_completed" }] }), "{", junk(500), JSON.stringify({ events: Array(50).fill({ name: "x" }) }), "x".repeat(20000)];
  const total = 10000;
  const concurrency = 16;
  const statuses = new Map();
  let next = 0;
  async function one() {
    const method = pick(methods);
    const headers = {};
    const cookie = pick(cookies);
    if (cookie !== undefined) headers.Cookie = cookie;
    if (rand(3) === 0) headers["User-Agent"] = junk(rand(300));
    if (rand(4) === 0) headers["X-MM-Token"] = pick([good, junk(50), ""]);
    if (rand(5) === 0) headers["Sec-GPC"] = pick(["1", "0", junk(5)]);
    if (rand(5) === 0) headers["Accept-Language"] = junk(30);
    if (rand(5) === 0) headers.Referer = pick(["https://www.google.com/", junk(40), "https://t.co/x"]);
    if (rand(6) === 0) headers["X-MM-Preview"] = pick([PREVIEW, junk(10)]);
    if (rand(4) === 0) headers["X-MM-Geo-Timezone"] = pick(["Europe/Paris", "Mars/Olympus", junk(12)]);
    const body = ["GET", "HEAD"].includes(method) ? undefined : pick(bodies);
    const r = await fetch(base + pick(paths) + pick(queries), { method, headers, body, signal: AbortSignal.timeout(30000) });
    await r.arrayBuffer();
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    assert.ok(r.status < 500, `${method} got ${r.status}`);
  }
  async function lane() {
    while (next < total) {
      next += 1;
      await one();
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  const sum = [...statuses.values()].reduce((a, b) => a + b, 0);
  assert.equal(sum, total);
  console.log(`fuzzed replay: ${total} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  // Still alive and still deciding.
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal(worker.exitCode, null);
});
