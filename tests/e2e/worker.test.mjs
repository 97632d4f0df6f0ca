// End-to-end tests of the Worker under `wrangler dev` (local workerd), run with
// `node --test tests/e2e/`. They start a small origin server and the Worker on free
// local ports, wait for readiness with a deadline, and check the routes over HTTP,
// headers included, using the `micromoment` CLI (target/debug) to mint tokens and
// publish bundles.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import http, { createServer } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { ROOT, WRANGLER, KEYS, freePort, tempDir, cli, tokenFrom, startWorker, cleanup, eventually as until } from "./harness.mjs";

const PREVIEW = "preview-secret-for-tests";
const PAGE = `<!doctype html><html><head><title>Acme</title></head><body>
<div data-mm-slot="hero"><p>origin hero</p></div>
<aside data-mm-slot="sidebar">origin sidebar</aside>
<footer data-mm-slot="not-in-bundle">kept</footer>
</body></html>`;
const PLAIN = "<!doctype html><html><head><title>No slots</title></head><body><p>untouched</p></body></html>";
const IMAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
const JSON_BODY = JSON.stringify({ items: [1, 2, 3], note: "data-mm-slot=\"hero\" stays" });

let tmp, keysFile, origin, worker, base;
/** The headers of the last request the origin saw, by path. */
const seenByOrigin = new Map();

before(async () => {
  tmp = tempDir("e2e");
  keysFile = join(tmp, "keys.json");
  writeFileSync(keysFile, JSON.stringify(KEYS));

  origin = createServer((req, res) => {
    seenByOrigin.set(req.url.split("?")[0], req.headers);
    if (req.url.startsWith("/page.html")) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", etag: '"v1"', "x-origin": "kept", "content-language": "en" });
      res.end(PAGE);
    } else if (req.url === "/plain.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", etag: '"p1"', "cache-control": "public, max-age=60" });
      res.end(PLAIN);
    } else if (req.url === "/many-slots.html") {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(`<!doctype html><body>${"<p data-mm-slot=hero>x</p>".repeat(100000)}</body>`);
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
  worker = await startWorker({
    dir: tmp,
    vars: {
      ORIGIN: `http://127.0.0.1:${originPort}`, MM_DEV: "1", MM_BUNDLE_RECHECK_SECS: "1",
      JOURNEY_KEYS: JSON.stringify(KEYS), MM_PREVIEW_SECRET: PREVIEW,
    },
  });
  base = worker.base;
});

after(async () => {
  await worker?.stop();
  origin?.close();
  cleanup(tmp);
});

/** Polls `condition` until it holds or `ms` pass; fails with the worker log. */
const eventually = (condition, ms) => until(condition, ms, () => worker.log());

/** `/v1/bundle`, or null when the request did not go through (a busy local runtime). */
async function bundleInfo() {
  try {
    return await (await fetch(`${base}/v1/bundle`, { signal: AbortSignal.timeout(5000) })).json();
  } catch (e) {
    console.log(`/v1/bundle: ${e.cause?.code ?? e.message}`);
    return null;
  }
}

async function decide(query, headers = {}) {
  const r = await fetch(`${base}/v1/decide?${query}`, { headers });
  return { status: r.status, body: await r.json(), token: tokenFrom(r), headers: r.headers };
}

// A desktop Chrome, as a visitor's browser sends it.
const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
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
  for (const [bad, status] of [["not json", 400], [JSON.stringify({ events: "x" }), 400], ["x".repeat(20000), 413]]) {
    const e = await fetch(`${base}/v1/events`, { method: "POST", body: bad });
    assert.equal(e.status, status);
    assert.match(e.headers.get("content-type"), /^application\/json/);
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
  assert.equal(big.status, 413);
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
  // What a browser acts on: the origin's type (a page, not a download), its other
  // headers, and ours.
  assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(r.headers.get("x-origin"), "kept");
  assert.equal(r.headers.get("content-language"), "en");
  assert.equal(r.headers.get("content-disposition"), null);
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
  assert.equal(json.headers.get("content-type"), "application/json");
  assert.equal(await json.text(), JSON_BODY);
  const image = await fetch(`${base}/image.png`);
  assert.equal(image.headers.get("content-type"), "image/png");
  assert.deepEqual(Buffer.from(await image.arrayBuffer()), IMAGE);
  assert.equal(image.headers.get("set-cookie"), null);
  // A byte range of a page is not a page: it passes through untouched.
  const partial = await fetch(`${base}/partial.html`);
  assert.equal(partial.status, 206);
  assert.equal(partial.headers.get("content-type"), "text/html");
  assert.equal(await partial.text(), PAGE);
  // A page without slots is the origin's, headers and bytes: no cookie, its caching.
  const plain = await fetch(`${base}/plain.html`);
  assert.equal(plain.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(plain.headers.get("cache-control"), "public, max-age=60");
  assert.equal(plain.headers.get("etag"), '"p1"');
  assert.equal(plain.headers.get("set-cookie"), null);
  assert.equal(await plain.text(), PLAIN);
  // A link cannot fire an app event on a page.
  const linked = await fetch(`${base}/page.html?event=order_completed`);
  const after = await decide("slots=hero", { Cookie: `mm=${tokenFrom(linked)}` });
  assert.equal(after.body.stage, "awareness", "still the first stage");
  const missing = await fetch(`${base}/missing`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get("content-type"), "text/html");
  assert.equal(await missing.text(), "<h1>not here</h1>");
});

test("a stale mm cookie on a parent domain does not shadow the fresh one", async () => {
  const stale = cli("token", "mint", "--keys", keysFile, "--stage", "awareness", "--now", new Date(Date.now() - 3600e3).toISOString());
  const fresh = cli("token", "mint", "--keys", keysFile, "--stage", "purchase");
  // Browsers list the longer path first, whichever is fresher; both orders.
  for (const cookie of [`mm=${stale}; mm=${fresh}`, `mm=${fresh}; mm=${stale}`, `mm=garbage; mm=${fresh}`]) {
    const r = await decide("slots=hero", { Cookie: cookie });
    assert.equal(r.body.stage, "purchase", cookie.slice(0, 30));
    assert.equal(r.body.decisions[0].content, "order-tracker");
  }
});

test("a GET cannot fire an app event without the app's token header", async () => {
  const first = await decide("slots=hero");
  // A cross-site link carries the visitor's cookie, not X-MM-Token.
  const linked = await decide("slots=hero&event=order_completed", { Cookie: `mm=${first.token}` });
  assert.equal(linked.body.stage, "awareness");
  const app = await fetch(`${base}/v1/decide?slots=push&event=order_completed`, { headers: { "X-MM-Token": first.token } });
  assert.equal((await app.json()).stage, "purchase");
});

test("the preview secret never reaches the origin", async () => {
  const r = await fetch(`${base}/page.html`, { headers: { "X-MM-Preview": PREVIEW, "X-Other": "1" } });
  assert.equal(r.status, 200);
  const seen = seenByOrigin.get("/page.html");
  assert.equal(seen["x-mm-preview"], undefined);
  assert.equal(seen["x-other"], "1");
});

test("a chunked body over the limit is refused with 413, whatever the headers say", async () => {
  // One chunk of 1 MB, no Content-Length, on a connection of its own. (A 100 MB body
  // is in faults.test.mjs, against workerd without the development proxy.)
  const url = new URL("/v1/events", base);
  const response = await new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent: false, headers: { "content-type": "application/json" } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, type: res.headers["content-type"], body }));
    });
    req.on("error", reject);
    req.write(Buffer.alloc(1024 * 1024, 120));
    req.end();
  });
  assert.equal(response.status, 413);
  assert.match(response.type, /^application\/json/);
  assert.deepEqual(JSON.parse(response.body), { error: "body is over the limit of 16384 bytes" });
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
});

test("a page with 100,000 slot elements gets 64 filled and the rest as the origin sent them", async () => {
  const r = await fetch(`${base}/many-slots.html`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/html");
  const html = await r.text();
  assert.equal(html.split('data-mm-content="').length - 1, 64);
  assert.equal(html.split("<p data-mm-slot=hero>x</p>").length - 1, 100000 - 64);
  assert.ok(tokenFrom(r));
});

test("/v1/bundle reports the health of the keys, the bundle and the preview secret", async () => {
  const info = await bundleInfo();
  assert.equal(info.health.ok, true, JSON.stringify(info.health));
  assert.deepEqual(info.health.keys, { status: "ok", current: "k1", kids: 1 });
  assert.equal(info.health.preview, "ok");
  assert.equal(info.health.bundle.status, "ok");
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
  // A browser's: Node's own fetch says `User-Agent: node`, an HTTP library, which is
  // served as a crawler is and counted as nobody's exposure.
  const r = await decide("slots=hero,sidebar", { "User-Agent": CHROME });
  const visitor = JSON.parse(cli("token", "inspect", r.token, "--keys", keysFile)).visitor;
  // The lines arrive one by one after the response: wait for the second, then check
  // that no third came once a later request's line is in.
  const lines = (visitor) => worker.log().split("\n").filter((l) => l.includes(`"visitor":"${visitor}"`));
  await eventually(() => lines(visitor).length >= 2, 20000);
  // Bots are served but not counted.
  const bot = await decide("slots=hero", { "User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)" });
  assert.equal(bot.status, 200);
  const botVisitor = JSON.parse(cli("token", "inspect", bot.token, "--keys", keysFile)).visitor;
  // A request's lines are logged together, after its response and before the next
  // request: once a later visitor's line is in, nothing more of the two before can come.
  const later = await decide("slots=hero", { "User-Agent": CHROME });
  const laterVisitor = JSON.parse(cli("token", "inspect", later.token, "--keys", keysFile)).visitor;
  await eventually(() => lines(laterVisitor).length >= 1, 20000);
  assert.equal(lines(visitor).length, 2, "one exposure per slot");
  assert.deepEqual(lines(botVisitor), [], "a crawler is nobody's exposure");
});

test("exposures and conversions of real requests are what analyze counts", async () => {
  // Twelve browsers: a page through the proxy and a /v1/decide each; every other one
  // buys, with a value. A crawler does the same and must count as nobody.
  const people = [];
  const everyone = [];
  let value = 0;
  for (let i = 0; i < 13; i++) {
    const ua = i === 12 ? "Googlebot/2.1 (+http://www.google.com/bot.html)" : CHROME;
    const page = await fetch(`${base}/page.html`, { headers: { "User-Agent": ua } });
    assert.equal(page.status, 200);
    await page.text();
    const token = tokenFrom(page);
    const r = await decide("slots=hero,sidebar", { "User-Agent": ua, Cookie: `mm=${token}` });
    const visitor = JSON.parse(cli("token", "inspect", r.token ?? token, "--keys", keysFile)).visitor;
    everyone.push(visitor);
    if (i < 12) people.push(visitor);
    if (i % 2 === 0) {
      const order = await fetch(`${base}/v1/events`, {
        method: "POST",
        headers: { "User-Agent": ua, Cookie: `mm=${r.token ?? token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ events: [{ name: "order_completed", value: 100 + i }] }),
      });
      assert.equal(order.status, 200);
      if (i < 12) value += 100 + i;
    }
  }
  const mine = () => worker.log().split("\n").map((l) => l.slice(l.indexOf("{"))).filter((l) => {
    try { const o = JSON.parse(l); return o.type && everyone.includes(o.visitor); } catch { return false; }
  });
  await eventually(() => mine().filter((l) => l.includes('"conversion"')).length === 6, 20000);
  const lines = mine();
  const file = join(tmp, "logs.ndjson");
  writeFileSync(file, lines.join("\n") + "\n");
  const report = JSON.parse(cli("analyze", "--bundle", "fixtures/automotive.json", file, "--json"));
  assert.equal(report.people, 12, "twelve browsers, not the crawler");
  const purchase = report.attribution.find((a) => a.goal === "purchase" && a.slot === "hero" && a.model === "last_touch");
  assert.equal(purchase.conversions + purchase.unattributed, 6);
  assert.equal(purchase.value, value, "each order's value, as sent");
  const conversion = JSON.parse(lines.find((l) => l.includes('"conversion"')));
  assert.deepEqual(Object.keys(conversion).sort(),
    ["at", "bundle", "bundle_version", "channel", "device", "goal", "type", "value", "visitor"]);
  assert.equal(conversion.channel, "web");
  assert.equal(conversion.device, "desktop");
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
  assert.equal(worker.child.exitCode, null);
});
