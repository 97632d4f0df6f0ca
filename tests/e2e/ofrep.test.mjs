// Apps through OpenFeature (docs/ofrep.md): the official web SDK with its OFREP web
// provider, and the server SDK with its OFREP provider (examples/ofrep, installed by
// `npm ci` there), against the built Worker under `wrangler dev` with the embedded
// bundle. Every slot, for sampled contexts and tokens, must be what `/v1/decide` says
// for the same context and token; the bulk answer's ETag gets a 304; a journey moves
// over OFREP with its caps counted; bad input gets OFREP's typed errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { ROOT, KEYS, freePort, tempDir, cli, startWorker, launchChromium, cleanup, eventually as until } from "./harness.mjs";

const EXAMPLE = join(ROOT, "examples", "ofrep");
const SLOTS = ["hero", "sidebar", "banner", "push", "app-card"];
const NOW = "2026-01-14T15:00:00Z";
const UA = {
  mobile: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  tablet: "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  desktop: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
};

let tmp, keysFile, worker, base, journey, server;

before(async () => {
  tmp = tempDir("ofrep");
  keysFile = join(tmp, "keys.json");
  writeFileSync(keysFile, JSON.stringify(KEYS));
  worker = await startWorker({ dir: tmp, vars: { MM_DEV: "1", JOURNEY_KEYS: JSON.stringify(KEYS) } });
  base = worker.base;
  // Imported after the harness, so the SDKs' fetch is the harness's bounded one.
  journey = await import(join(EXAMPLE, "journey.mjs"));
  server = await import(join(EXAMPLE, "server.mjs"));
});

after(async () => {
  await worker?.stop();
  cleanup(tmp);
});

/** A small seeded generator, so a failure names a sample that can be replayed. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = (r, list) => list[Math.floor(r() * list.length)];

/** A sampled person: a token of some stage and a context, in both spellings. */
function sample(r, i) {
  const device = pick(r, ["mobile", "tablet", "desktop"]);
  const country = pick(r, ["FR", "DE", "US", "BE", null]);
  const city = pick(r, ["Paris", "Lyon", null]);
  const path = pick(r, ["/", "/models/suv/x5", "/models/ev/e1", "/configurator/suv/trim", "/charging/map", "/offers"]);
  const campaign = pick(r, ["suv-spring", "ev-launch", null]);
  const version = pick(r, ["4.2.0", "5.0.1", null]);
  const stage = pick(r, ["awareness", "consideration", "decision", "purchase", "loyalty"]);
  const token = cli("token", "mint", "--keys", keysFile, "--stage", stage, "--now", NOW, "--visitor", (i + 1).toString(16).padStart(32, "0"));
  const context = { targetingKey: `person-${i}`, "device.type": device, "page.path": path, channel: "app" };
  // Nested and flat spellings both: the protocol's contexts are maps of either.
  if (country) context.geo = { country };
  if (city) context["geo.city"] = city;
  if (campaign) context["utm.campaign"] = campaign;
  if (version) context.app = { version };
  const query = new URLSearchParams({ path, channel: "app" });
  if (campaign) query.set("utm_campaign", campaign);
  if (version) query.set("app_version", version);
  const headers = { "User-Agent": UA[device], "X-MM-Now": NOW, "X-MM-Token": token };
  if (country) headers["X-MM-Geo-Country"] = country;
  if (city) headers["X-MM-Geo-City"] = city;
  return { token, context, query, headers, device };
}

async function decide(query, headers, slots) {
  const q = new URLSearchParams(query);
  q.set("slots", slots.join(","));
  const r = await fetch(`${base}/v1/decide?${q}`, { headers });
  assert.equal(r.status, 200, await r.clone().text());
  return r.json();
}

/** What `/v1/decide` says a slot shows, as OFREP names it. */
function expected(decision) {
  return { variant: decision.content, value: decision.json ?? decision.content };
}

/**
 * A flag's details as an app asks for them: an object for a content with a JSON
 * rendition, a string (the content id) for one without.
 */
function details(client, slot, want, ...rest) {
  return typeof want.value === "object"
    ? client.getObjectDetails(slot, {}, ...rest)
    : client.getStringDetails(slot, "", ...rest);
}

test("the web SDK's bulk evaluations and the server SDK's single ones are /v1/decide's, for 200 sampled people", async () => {
  const r = rng(20261207);
  let current = null;
  // One token store whose token is the sample's: every evaluation starts from it.
  const store = { get: () => current?.token ?? null, set: () => {} };
  const web = await journey.connect({
    baseUrl: base, store, pollInterval: 0, domain: "sampled",
    headers: [["X-MM-Now", NOW]],
  });
  // The server forwards the person's own headers (user agent, and here the dev clock
  // and geo headers `wrangler dev` reads in place of Cloudflare's).
  const serverClient = await server.serverClient({
    baseUrl: base, domain: "sampled-server",
    person: () => ({ token: current.token, headers: Object.entries(current.headers).filter(([k]) => k !== "X-MM-Token") }),
  });
  const reasons = new Set();
  try {
    for (let i = 0; i < 200; i++) {
      current = sample(r, i);
      const all = await decide(current.query, current.headers, SLOTS);
      await web.screen({ ...current.context });
      for (const [n, slot] of SLOTS.entries()) {
        const want = expected(all.decisions[n]);
        const got = details(web.client, slot, want);
        assert.equal(got.errorCode, undefined, `sample ${i}, ${slot}: ${got.errorMessage}`);
        assert.equal(got.variant, want.variant, `sample ${i}, ${slot}, bulk: ${JSON.stringify(current.context)}`);
        assert.deepEqual(got.value, want.value, `sample ${i}, ${slot}, bulk value`);
        assert.equal(got.flagMetadata.stage, all.stage, `sample ${i}, stage`);
        assert.equal(got.flagMetadata.candidate, all.decisions[n].candidate ?? undefined);
        reasons.add(got.reason);
      }
      // The server SDK asks one flag per call: each is `/v1/decide` of that slot alone
      // (a page's slots show a content once among them).
      for (const slot of SLOTS) {
        const [one] = (await decide(current.query, current.headers, [slot])).decisions;
        const want = expected(one);
        const got = await details(serverClient, slot, want, current.context);
        assert.equal(got.errorCode, undefined, `sample ${i}, ${slot}: ${got.errorMessage}`);
        assert.equal(got.variant, want.variant, `sample ${i}, ${slot}, single: ${JSON.stringify(current.context)}`);
        assert.deepEqual(got.value, want.value, `sample ${i}, ${slot}, single value`);
        assert.equal(typeof got.flagMetadata.token, "string", "the new token is in the metadata");
      }
    }
  } finally {
    await web.close();
  }
  // The samples reach more than defaults: targeting and defaults both.
  assert.ok(reasons.has("TARGETING_MATCH") && reasons.has("DEFAULT"), [...reasons].join());
});

/** A raw OFREP call: `{status, headers, body}` (body null for a 304). */
async function ofrep(path, body, headers = {}) {
  const r = await fetch(`${base}/ofrep/v1/evaluate/flags${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-MM-Now": NOW, "User-Agent": UA.mobile, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
}

/** The exposure log lines of a visitor (the Worker prints them after the response). */
const exposures = (visitor) => worker.log().split("\n").filter((l) => l.includes(`"visitor":"${visitor}"`) && l.includes('"type":"exposure"'));
const visitorOf = (token) => JSON.parse(cli("token", "inspect", token, "--keys", keysFile, "--now", NOW)).visitor;

test("a poll with the bulk answer's ETag and token gets 304 and counts nothing; a new context, token or decision gets 200", async () => {
  const context = { context: { "page.path": "/", "device.type": "mobile" } };
  const first = await ofrep("", context);
  assert.equal(first.status, 200);
  const etag = first.headers.get("etag");
  assert.match(etag, /^W\/"[0-9a-f]{32}"$/);
  assert.equal(first.headers.get("cache-control"), "private, no-store");
  assert.equal(first.headers.get("vary"), "Cookie, X-MM-Token");
  assert.equal(first.body.flags.length, SLOTS.length);
  const token = first.body.metadata.token;
  assert.equal(first.headers.get("x-mm-token"), token, "the token in the header too");
  assert.ok(first.body.flags.every((f) => f.metadata.token === token), "and in each flag's metadata");
  // No `X-MM-Token` came in: a cookie-less caller also gets the cookie.
  assert.match(first.headers.get("set-cookie") ?? "", /^mm=/);

  const visitor = visitorOf(token);
  await until(() => exposures(visitor).length === SLOTS.length, 20000, () => worker.log());

  const poll = await ofrep("", context, { "X-MM-Token": token, "If-None-Match": etag });
  assert.equal(poll.status, 304);
  assert.equal(poll.body, null);
  assert.equal(poll.headers.get("etag"), etag);
  assert.equal(poll.headers.get("x-mm-token"), null, "nothing re-signed");

  // A poll that would get the same flags counts nothing, not even a new visit: the
  // person comes back 40 minutes on (a second visit: a returning visitor's hero), then
  // the app polls 40 minutes later, past a visit's idle time, and still gets a 304.
  const at = (minutes) => new Date(Date.parse(NOW) + minutes * 60_000).toISOString().replace(".000Z", "Z");
  const back = await ofrep("", context, { "X-MM-Token": token, "If-None-Match": etag, "X-MM-Now": at(40) });
  assert.equal(back.status, 200, "the second visit changes the hero");
  const backToken = back.body.metadata.token;
  const polled = await ofrep("", context, { "X-MM-Token": backToken, "If-None-Match": back.headers.get("etag"), "X-MM-Now": at(80) });
  assert.equal(polled.status, 304);
  // Past a day, the token is renewed with a 200; `*` names no answer.
  const renewed = await ofrep("", context, { "X-MM-Token": backToken, "If-None-Match": back.headers.get("etag"), "X-MM-Now": at(40 + 25 * 60) });
  assert.equal(renewed.status, 200);
  assert.equal((await ofrep("", context, { "X-MM-Token": token, "If-None-Match": "*" })).status, 200);
  await until(() => exposures(visitor).length === 4 * SLOTS.length, 20000, () => worker.log());

  // Another context, or the token without the ETag: a fresh answer, counted.
  const moved = await ofrep("", { context: { "page.path": "/offers", "device.type": "mobile" } }, { "X-MM-Token": token, "If-None-Match": etag });
  assert.equal(moved.status, 200);
  assert.notEqual(moved.headers.get("etag"), etag);
  const again = await ofrep("", context, { "X-MM-Token": moved.body.metadata.token, "If-None-Match": etag });
  assert.equal(again.status, 200, "the token moved on since that ETag: the answer carries the new one");
  await until(() => exposures(visitor).length === 6 * SLOTS.length, 20000, () => worker.log());
  // The 304s counted nothing: a later request's lines are in, and there are exactly three answers' worth.
  const later = await ofrep("", context);
  await until(() => exposures(visitorOf(later.body.metadata.token)).length === SLOTS.length, 20000, () => worker.log());
  assert.equal(exposures(visitor).length, 6 * SLOTS.length);
});

test("a journey moves over OFREP: screens, an event in the context and /v1/events, caps counted", async () => {
  const store = journey.memoryStore();
  const app = await journey.connect({
    baseUrl: base, store, pollInterval: 0, domain: "journey",
    headers: [["X-MM-Now", NOW]], context: { "page.path": "/home", "device.type": "mobile", "geo.country": "US" },
  });
  try {
    assert.equal(app.show("hero").stage, "awareness");
    assert.equal(app.show("hero").content, "brand-film");
    // A content without a JSON rendition is its id.
    assert.deepEqual(app.show("banner"), { content: "app-download", value: "app-download", reason: "TARGETING_MATCH", stage: "awareness" });
    const first = store.get();
    assert.ok(first, "the hook kept the token");
    // A model screen: consideration, and SUV intent.
    await app.screen({ "page.path": "/configurator/suv/trim", "device.type": "mobile", "geo.country": "US" });
    assert.equal(app.show("hero").stage, "consideration");
    assert.notEqual(store.get(), first, "each answer's token is kept");
    // An app event in the (bulk) context, from an app holding its token: decision.
    await app.screen({ "page.path": "/configurator/suv/trim", "device.type": "mobile", "geo.country": "US", event: "test_drive_booked" });
    assert.equal(app.show("push").stage, "decision");
    assert.equal(app.show("push").content, "app-test-drive-reminder");
    // The hero's test-drive offer is capped at 3 per 7 days: each fresh answer counts one.
    const heroes = [app.show("hero").content];
    for (const path of ["/models/suv/a", "/models/suv/b", "/models/suv/c"]) {
      await app.screen({ "page.path": path, "device.type": "mobile", "geo.country": "US" });
      heroes.push(app.show("hero").content);
    }
    assert.deepEqual(heroes.slice(0, 3), ["test-drive", "test-drive", "test-drive"], heroes.join());
    assert.notEqual(heroes[3], "test-drive", `capped after 3: ${heroes.join()}`);
    // /v1/events with the kept token moves the journey on; the next evaluation shows it.
    const stage = await app.track([{ name: "order_completed", value: 42000 }]);
    assert.equal(stage, "purchase");
    assert.equal(app.show("hero").content, "order-tracker");
    assert.equal(app.show("hero").stage, "purchase");
  } finally {
    await app.close();
  }
});

test("bad input gets OFREP's typed errors, never a 5xx, and the journey is kept", async () => {
  const token = cli("token", "mint", "--keys", keysFile, "--stage", "decision", "--now", NOW);
  const withToken = { "X-MM-Token": token };
  const cases = [
    ["", "not json", 400, "PARSE_ERROR"],
    ["", "[1,2]", 400, "PARSE_ERROR"],
    ["", { context: "FR" }, 400, "INVALID_CONTEXT"],
    ["", { context: { "geo.lat": "north" } }, 400, "INVALID_CONTEXT"],
    ["", { context: { "device.type": "fridge" } }, 400, "INVALID_CONTEXT"],
    ["", { context: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i])) }, 400, "INVALID_CONTEXT"],
    ["", { context: { blob: "x".repeat(20000) } }, 413, "GENERAL"],
    ["/hero", { context: [] }, 400, "INVALID_CONTEXT"],
    ["/no-such-slot", { context: {} }, 404, "FLAG_NOT_FOUND"],
    ["/hero", { context: { blob: "x".repeat(20000) } }, 413, "GENERAL"],
  ];
  for (const [path, body, status, code] of cases) {
    const r = await ofrep(path, body, withToken);
    assert.equal(r.status, status, `${path} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.errorCode, code);
    assert.equal(typeof r.body.errorDetails, "string");
    if (path) assert.equal(r.body.key, path.slice(1), "a single flag's error names its key");
    assert.equal(r.headers.get("x-mm-token"), null, "a refused request writes no token");
  }
  const get = await fetch(`${base}/ofrep/v1/evaluate/flags`, { headers: { "X-MM-Now": NOW } });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST");
  // Another site's page, with the visitor's cookie and no token: refused, the cookie kept.
  for (const site of [{ "Sec-Fetch-Site": "cross-site" }, { "Sec-Fetch-Site": "same-site" }, { Origin: "https://evil.example" }]) {
    const r = await ofrep("", { context: { "page.path": "/models/suv/x" } }, { Cookie: `mm=${token}`, ...site });
    assert.equal(r.status, 403, JSON.stringify(site));
    assert.equal(r.body.errorCode, "GENERAL");
    assert.equal(r.headers.get("set-cookie"), null, "the visitor's cookie is not replaced");
  }
  // This site's page script with the cookie: served, the token back in the cookie too.
  const own = await ofrep("", { context: {} }, { Cookie: `mm=${token}`, "Sec-Fetch-Site": "same-origin" });
  assert.equal(own.status, 200);
  assert.equal(own.body.metadata.stage, "decision");
  assert.match(own.headers.get("set-cookie") ?? "", /^mm=/);
  // A method HTTP does not name is not read as a GET on the Worker's own paths.
  const query = await fetch(`${base}/v1/decide?slots=hero`, { method: "QUERY" });
  assert.equal(query.status, 405);
  assert.equal(query.headers.get("allow"), "GET");
  // A bad token is a new visitor, not an error.
  const forged = await ofrep("", { context: {} }, { "X-MM-Token": token.slice(0, -4) + "AAAA" });
  assert.equal(forged.status, 200);
  assert.equal(forged.body.metadata.stage, "awareness");
  // After all that, the token still carries its journey.
  const kept = await ofrep("/hero", { context: { "device.type": "mobile" } }, withToken);
  assert.equal(kept.status, 200);
  assert.equal(kept.body.metadata.stage, "decision");
  assert.equal(kept.body.key, "hero");
});

test("the example's page shows the app card through the web SDK and moves on when the person books, in Chromium", async () => {
  // The example's page, built as its README says, served by an origin behind a Worker of
  // its own (the page calls OFREP on its own origin, with the journey cookie).
  execFileSync(join(EXAMPLE, "node_modules", ".bin", "esbuild"),
    ["web/main.mjs", "--bundle", "--format=esm", "--outfile=web/dist/main.js", "--log-level=warning"], { cwd: EXAMPLE });
  const files = { "/": ["web/index.html", "text/html; charset=utf-8"], "/dist/main.js": ["web/dist/main.js", "text/javascript"] };
  const origin = createServer((req, res) => {
    const [file, type] = files[req.url.split("?")[0]] ?? [];
    if (!file) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "content-type": type });
    res.end(readFileSync(join(EXAMPLE, file)));
  });
  const port = await freePort();
  await new Promise((r) => origin.listen(port, "127.0.0.1", r));
  const dir = tempDir("ofrep-web");
  const site = await startWorker({ dir, vars: { MM_DEV: "1", JOURNEY_KEYS: JSON.stringify(KEYS), ORIGIN: `http://127.0.0.1:${port}` } });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const failures = [];
    page.on("pageerror", (e) => failures.push(e.message));
    await page.goto(`${site.base}/`);
    const card = page.getByRole("region", { name: "Your card" });
    await page.getByRole("heading", { name: "My garage", level: 2 }).waitFor({ timeout: 20000 });
    assert.match(await card.textContent(), /app-garage · DEFAULT · stage awareness/);
    // The hook kept the journey's token where the page keeps it.
    const kept = await page.evaluate(() => localStorage.getItem("mm.token"));
    assert.match(kept ?? "", /^v1\./);
    await page.getByRole("button", { name: "I booked a test drive" }).click();
    await page.getByText(/stage decision/).waitFor({ timeout: 20000 });
    assert.notEqual(await page.evaluate(() => localStorage.getItem("mm.token")), kept, "the new token is kept");
    assert.deepEqual(failures, []);
  } finally {
    await browser.close();
    await site.stop();
    origin.close();
    cleanup(dir);
  }
});
