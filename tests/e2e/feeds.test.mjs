// Live stock and stores at the edge (docs/feeds.md), under `wrangler dev` with real KV
// and the real `Feed` Durable Object: the retail fixture's product page for visitors in
// Lyon, Paris and Marseille, after pushing stores (CSV) and
// stock (NDJSON) with `micromoment feed push`; a change through the API seen by the
// next requests within seconds; a stale feed, a shard that hangs or fails in KV: the
// default hero and never a 5xx; bad rows refused with their line, nothing applied; the
// fixture's `back-in-stock` feed trigger tells a person who was shown the item out of
// stock online when it is back, through a webhook verified with the Standard Webhooks
// reference library (standardwebhooks 1.1.1, tests/peers/webhooks).
// The Worker runs behind tests/e2e/faults/entry.mjs, which only wraps its KV reads.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { ROOT, CLI, KEYS, cli, freePort, startWorker, publishedBundle, cleanup, eventually } from "./harness.mjs";

const TOKEN = "feeds-backend-token-0123456789";
const PEER = join(ROOT, "tests", "peers", "webhooks", "node_modules", "standardwebhooks");
const SECRET = "whsec_" + Buffer.from("micromoment-feeds-webhook-secret").toString("base64");
/** Every webhook the receiver got: {body, verified}. */
const calls = [];
const PAGE = (sku) => `<!doctype html><html><head><title>${sku}</title></head><body>
<div data-mm-slot="hero"><p>origin hero</p></div><main>${sku}</main></body></html>`;

const STORES_CSV = `store,name,lat,lon,pickup
lyon-part-dieu,Lyon Part-Dieu,45.7606,4.8593,ready in 1 hour
lyon-confluence,Lyon Confluence,45.7406,4.8176,ready in 2 hours
paris-rivoli,Paris Rivoli,48.8606,2.3470,ready in 1 hour
marseille-vieux-port,Marseille Vieux-Port,43.2951,5.3745,ready tomorrow
`;
const STOCK = [
  { sku: "tent-2p", store: "online", qty: 0 },
  { sku: "tent-2p", store: "lyon-part-dieu", qty: 3 },
  { sku: "tent-2p", store: "lyon-confluence", qty: 0 },
  { sku: "tent-2p", store: "paris-rivoli", qty: 0 },
  { sku: "boots-44", store: "online", qty: 12 },
];
const CITIES = {
  lyon: { "X-MM-Geo-City": "Lyon", "X-MM-Geo-Country": "FR", "X-MM-Geo-Lat": "45.764", "X-MM-Geo-Lon": "4.8357" },
  paris: { "X-MM-Geo-City": "Paris", "X-MM-Geo-Country": "FR", "X-MM-Geo-Lat": "48.8566", "X-MM-Geo-Lon": "2.3522" },
  marseille: { "X-MM-Geo-City": "Marseille", "X-MM-Geo-Country": "FR", "X-MM-Geo-Lat": "43.2965", "X-MM-Geo-Lon": "5.3698" },
};
const BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

let tmp, origin, worker, receiver;

function push(file, feed, ...more) {
  return JSON.parse(execFileSync(CLI, ["feed", "push", file, "--feed", feed, "--url", worker.base, ...more], {
    cwd: ROOT, encoding: "utf8", env: { ...process.env, MM_BACKEND_TOKEN: TOKEN },
  }));
}

/** The product page's hero for a visitor of `city`. */
async function hero(sku, city, extra = {}) {
  const r = await fetch(`${worker.base}/p/${sku}?sku=${sku}`, { headers: { "User-Agent": BROWSER, ...CITIES[city], ...extra } });
  assert.equal(r.status, 200);
  const html = await r.text();
  return /<div data-mm-slot="hero"[^>]*>([\s\S]*?)<\/div>/.exec(html)?.[1] ?? html;
}

const DEFAULT_HERO = "<h1>New season, new trails</h1>";

/** The row of `key` as a rule reads it now (`GET /v1/feeds/<feed>?key=…`). */
async function row(feed, ...key) {
  const q = key.map((k) => `key=${encodeURIComponent(k)}`).join("&");
  const r = await fetch(`${worker.base}/v1/feeds/${feed}?${q}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200);
  return (await r.json()).row;
}

function putRows(feed, rows, { mode = "delta", key } = {}) {
  const headers = { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/x-ndjson" };
  if (key) headers["Idempotency-Key"] = key;
  return fetch(`${worker.base}/v1/feeds/${feed}?mode=${mode}`, {
    method: "PUT", headers, body: rows.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n"),
  });
}

before(async () => {
  ({ tmp } = publishedBundle("feeds", "fixtures/retail.json"));
  origin = createServer((req, res) => {
    const sku = new URL(req.url, "http://x").searchParams.get("sku") ?? "home";
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE(sku));
  });
  const originPort = await freePort();
  await new Promise((r) => origin.listen(originPort, "127.0.0.1", r));
  assert.ok(existsSync(PEER), "standardwebhooks is not installed: run  npm ci --prefix tests/peers/webhooks  (scripts/test.sh does)");
  const { Webhook } = createRequire(import.meta.url)(PEER);
  const verifier = new Webhook(SECRET);
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      let verified = false;
      try { verifier.verify(body, req.headers); verified = true; } catch {}
      calls.push({ body: JSON.parse(body), verified, id: req.headers["webhook-id"] });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  const receiverPort = await freePort();
  await new Promise((r) => receiver.listen(receiverPort, "127.0.0.1", r));
  worker = await startWorker({
    dir: tmp,
    main: join(ROOT, "tests", "e2e", "faults", "entry.mjs"),
    vars: {
      ORIGIN: `http://127.0.0.1:${originPort}`, MM_DEV: "1", MM_BUNDLE_RECHECK_SECS: "1", MM_FEED_HOT_MS: "500",
      MM_BACKEND_TOKEN: TOKEN, JOURNEY_KEYS: JSON.stringify(KEYS), MM_FEED_FOLD_MS: "500",
      MM_DEST_CRM_URL: `http://127.0.0.1:${receiverPort}/crm`, MM_DEST_CRM_SECRET: SECRET,
    },
  });
  // The served bundle is the published retail one (it declares the feeds).
  await eventually(async () => (await (await fetch(`${worker.base}/v1/bundle`)).json()).id === "northwind-retail", 15000, worker.log);
  writeFileSync(join(tmp, "stores.csv"), STORES_CSV);
  writeFileSync(join(tmp, "stock.ndjson"), STOCK.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const stores = push(join(tmp, "stores.csv"), "stores");
  assert.equal(stores.rows, 4);
  assert.equal(stores.answer.version, 1);
  const stock = push(join(tmp, "stock.ndjson"), "stock");
  assert.equal(stock.answer.rows, 5);
});

after(async () => {
  await worker?.stop();
  origin?.close();
  receiver?.close();
  cleanup(tmp);
});

test("the product hero in Lyon, Paris and Marseille", async () => {
  await eventually(async () => (await hero("tent-2p", "lyon")).includes("Lyon Part-Dieu"), 15000, worker.log);
  const lyon = await hero("tent-2p", "lyon");
  assert.match(lyon, /<h1>Out of stock online — 3 left at Lyon Part-Dieu, ready in 1 hour<\/h1>/);
  assert.match(lyon, /<p>1\.9 km from you\.<\/p>/);
  assert.match(lyon, /href="\/stores\/lyon-part-dieu"/);
  assert.match(await hero("tent-2p", "paris"), /Out of stock online — deliver to your store/);
  assert.match(await hero("tent-2p", "marseille"), /Out of stock online — deliver to your store/);
  // (A visitor without a place gets the default hero: tests/it/feeds.rs; under
  // `wrangler dev` every request has the placeholder location of its `request.cf`.)
  // In stock online: no store talk, the default hero.
  assert.match(await hero("boots-44", "lyon"), new RegExp(DEFAULT_HERO));
  // No item on the page: the default hero, and nothing read.
  const home = await fetch(`${worker.base}/p/boots-44`, { headers: { "User-Agent": BROWSER, ...CITIES.lyon } });
  assert.match(await home.text(), new RegExp(DEFAULT_HERO));
});

test("a change pushed through the API is seen by the next requests within seconds", async () => {
  const at = Date.now();
  const r = await putRows("stock", [
    { sku: "tent-2p", store: "lyon-part-dieu", qty: 0 },
    { sku: "tent-2p", store: "lyon-confluence", qty: 2 },
  ], { key: "sold-out-part-dieu" });
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal((await r.json()).changes, 2);
  // Polled every 200 ms: what is awaited is the isolate's next ask of the feed's object.
  await eventually(async () => (await hero("tent-2p", "lyon")).includes("2 left at Lyon Confluence, ready in 2 hours"), 10000, worker.log);
  console.log(`# stock change seen by a page after ${Date.now() - at} ms`);
  // The same push with the same key applies nothing twice, and says so; the same key
  // for other rows is refused.
  const same = await putRows("stock", [
    { sku: "tent-2p", store: "lyon-part-dieu", qty: 0 },
    { sku: "tent-2p", store: "lyon-confluence", qty: 2 },
  ], { key: "sold-out-part-dieu" });
  assert.equal((await same.json()).replayed, true);
  const other = await putRows("stock", [{ sku: "tent-2p", store: "lyon-confluence", qty: 9 }], { key: "sold-out-part-dieu" });
  assert.equal(other.status, 422);
  assert.match((await other.json()).error, /Idempotency-Key was used for another push/);
  // A later change is seen (the row as rules read it), so the refused one would have been.
  assert.equal((await putRows("stock", [{ sku: "tent-2p", store: "paris-rivoli", qty: 0 }])).status, 200);
  await eventually(async () => (await row("stock", "tent-2p", "paris-rivoli"))?.qty === 0 && (await row("stock", "tent-2p", "lyon-confluence"))?.qty === 2, 10000, worker.log);
  assert.match(await hero("tent-2p", "lyon"), /2 left at Lyon Confluence/);
  // A removed row is no stock: nowhere within 50 km has it.
  const gone = await putRows("stock", [{ sku: "tent-2p", store: "lyon-confluence", _delete: true }]);
  assert.equal(gone.status, 200);
  await eventually(async () => /deliver to your store/.test(await hero("tent-2p", "lyon")), 10000, worker.log);
  const status = await (await fetch(`${worker.base}/v1/feeds/stock`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json();
  assert.deepEqual(status.key, ["sku", "store"]);
  assert.equal(status.fields.qty, "number");
  // Put the stock back for the other tests.
  assert.equal((await putRows("stock", [{ sku: "tent-2p", store: "lyon-part-dieu", qty: 3 }])).status, 200);
  await eventually(async () => (await hero("tent-2p", "lyon")).includes("3 left at Lyon Part-Dieu"), 10000, worker.log);
});

test("bad rows are refused with their line and nothing of the push is applied", async () => {
  const r = await putRows("stock", [
    { sku: "tent-2p", store: "lyon-part-dieu", qty: 40 },
    { sku: "tent-2p", store: "paris-rivoli", qty: "many" },
  ]);
  assert.equal(r.status, 400);
  assert.deepEqual(await r.json(), { error: "line 2: `qty` must be a number, not a string", line: 2 });
  for (const [rows, message] of [
    [[{ sku: "a", store: "b", colour: "red" }], /unknown column `colour`/],
    [[{ sku: "a", store: "b", qty: 1, note: "x".repeat(300) }], /unknown column `note`/],
    [["not json"], /line 1: not a JSON object/],
  ]) {
    const bad = await putRows("stock", rows);
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, message);
  }
  // The CLI names the file's line.
  writeFileSync(join(tmp, "bad.csv"), "sku,store,qty\ntent-2p,lyon-part-dieu,4\ntent-2p,paris-rivoli,lots\n");
  assert.throws(() => push(join(tmp, "bad.csv"), "stock", "--delta"), /bad\.csv:3: `qty` must be a number, not "lots"/);
  // Without the token, nothing; an unknown feed is named.
  const anon = await fetch(`${worker.base}/v1/feeds/stock?mode=delta`, { method: "PUT", body: "{}" });
  assert.equal(anon.status, 401);
  const unknown = await fetch(`${worker.base}/v1/feeds/stocks`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).error, /declares: stock, stores/);
  assert.equal((await fetch(`${worker.base}/v1/feeds/stock`, { method: "DELETE", headers: { Authorization: `Bearer ${TOKEN}` } })).status, 405);
  // A push after the refused ones is seen, and they are not: they changed nothing.
  assert.equal((await putRows("stock", [{ sku: "boots-44", store: "online", qty: 11 }])).status, 200);
  await eventually(async () => (await row("stock", "boots-44", "online"))?.qty === 11, 10000, worker.log);
  assert.deepEqual(await row("stock", "tent-2p", "lyon-part-dieu"), { sku: "tent-2p", store: "lyon-part-dieu", qty: 3 });
  assert.deepEqual(await row("stock", "tent-2p", "paris-rivoli"), { sku: "tent-2p", store: "paris-rivoli", qty: 0 });
  assert.match(await hero("tent-2p", "lyon"), /3 left at Lyon Part-Dieu/);
});

test("Shopify's storeAvailability and Google's local inventory, pushed as changes", async () => {
  // A GraphQL answer of product variants with their store availability.
  writeFileSync(join(tmp, "shopify.json"), JSON.stringify({
    data: { product: { variants: { edges: [
      { node: { sku: "lamp-1", storeAvailability: { edges: [
        { node: { available: true, quantityAvailable: 7, pickUpTime: "Usually ready in 1 hour", location: { id: "lyon-part-dieu", name: "Lyon Part-Dieu" } } },
        { node: { available: false, location: { id: "paris-rivoli", name: "Paris Rivoli" } } },
      ] } } },
      { node: { sku: null, storeAvailability: { edges: [] } } },
    ] } } },
  }));
  const shopify = push(join(tmp, "shopify.json"), "stock", "--delta");
  assert.equal(shopify.rows, 2);
  // Google's local inventory feed, tab-separated: quantity, or availability alone.
  writeFileSync(join(tmp, "local.txt"), "store_code\tid\tquantity\tavailability\nlyon-confluence\tlamp-1\t2\tin_stock\nmarseille-vieux-port\tlamp-1\t\tout_of_stock\n");
  const google = push(join(tmp, "local.txt"), "stock", "--delta");
  assert.equal(google.rows, 2);
  await eventually(async () => (await row("stock", "lamp-1", "marseille-vieux-port"))?.qty === 0, 10000, worker.log);
  assert.deepEqual(await row("stock", "lamp-1", "lyon-part-dieu"), { sku: "lamp-1", store: "lyon-part-dieu", qty: 7 });
  assert.deepEqual(await row("stock", "lamp-1", "paris-rivoli"), { sku: "lamp-1", store: "paris-rivoli", qty: 0 });
  assert.deepEqual(await row("stock", "lamp-1", "lyon-confluence"), { sku: "lamp-1", store: "lyon-confluence", qty: 2 });
});

test("a stale feed, a shard that hangs or fails: the default hero, never a 5xx", async () => {
  // Stock is declared stale after 1 hour.
  const later = new Date(Date.now() + 2 * 3600 * 1000).toISOString();
  const stale = await hero("tent-2p", "lyon", { "X-MM-Now": later });
  assert.match(stale, new RegExp(DEFAULT_HERO));
  // A new full push (new shard keys), whose shard reads hang, then fail, then answer garbage.
  for (const mode of ["hang", "throw", "garbage"]) {
    assert.equal((await fetch(`${worker.base}/__faults?kv=${mode}&only=feed:stock:`)).status, 200);
    push(join(tmp, "stock.ndjson"), "stock");
    // Awaited: the isolate's recheck of the manifest (MM_BUNDLE_RECHECK_SECS=1), which
    // names shards it cannot read.
    await eventually(async () => (await hero("tent-2p", "lyon")).includes(DEFAULT_HERO), 10000, worker.log);
    assert.match(await hero("tent-2p", "paris"), new RegExp(DEFAULT_HERO));
    assert.deepEqual(await row("stock", "tent-2p", "online"), { unavailable: true });
  }
  assert.equal((await fetch(`${worker.base}/__faults?kv=ok`)).status, 200);
  await eventually(async () => (await hero("tent-2p", "lyon")).includes("3 left at Lyon Part-Dieu"), 10000, worker.log);
});

test("a person shown the item out of stock online is told when it is back, once", async () => {
  // A returning visitor in Lyon (the second request carries the first one's cookie)
  // sees "3 left at Lyon Part-Dieu": the rule read the rows (tent-2p, online) and
  // (tent-2p, lyon-part-dieu), which they now watch.
  const page = (cookie) => fetch(`${worker.base}/p/tent-2p?sku=tent-2p`, {
    headers: { "User-Agent": BROWSER, ...CITIES.lyon, ...(cookie ? { Cookie: cookie } : {}) },
  });
  const first = await page();
  const cookie = /mm=[^;]+/.exec(first.headers.get("set-cookie") ?? "")?.[0];
  assert.ok(cookie, "the first visit sets the journey cookie");
  const second = await page(cookie);
  assert.match(await second.text(), /3 left at Lyon Part-Dieu/);
  // Someone cookie-less sees the same page and watches nothing.
  await page();
  writeFileSync(join(tmp, "keys.json"), JSON.stringify(KEYS));
  const { visitor } = JSON.parse(cli("token", "inspect", cookie, "--keys", join(tmp, "keys.json")));
  // Back online: 0 → 4. The object folds the change (MM_FEED_FOLD_MS=500) and tells
  // the watchers of the row.
  const told = calls.length;
  const at = Date.now();
  assert.equal((await putRows("stock", [{ sku: "tent-2p", store: "online", qty: 4 }])).status, 200);
  // Awaited: the fold, the queue and the webhook.
  await eventually(() => calls.length > told, 20000, worker.log);
  console.log(`# back-in-stock webhook ${Date.now() - at} ms after the push`);
  const call = calls[calls.length - 1];
  assert.equal(call.verified, true);
  assert.equal(call.body.trigger, "back-in-stock");
  assert.equal(call.body.feed, "stock");
  assert.deepEqual(call.body.key, { sku: "tent-2p", store: "online" });
  assert.equal(call.body.row.qty, 4);
  assert.equal(call.body.before.qty, 0);
  assert.equal(call.body.visitor, visitor);
  // Only the returning visitor was told (the cookie-less one watched nothing), once.
  assert.equal(calls.length - told, 1, JSON.stringify(calls.slice(told)));
  // Later changes tell nobody: the watch was used.
  assert.equal((await putRows("stock", [{ sku: "tent-2p", store: "online", qty: 0 }])).status, 200);
  assert.equal((await putRows("stock", [{ sku: "tent-2p", store: "online", qty: 6 }])).status, 200);
  const status = async () => (await (await fetch(`${worker.base}/v1/feeds/stock`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()).recent_changes;
  // Awaited: both changes folded (nothing waits to be folded any more).
  await eventually(async () => (await status()) === 0, 20000, worker.log);
  assert.equal(calls.length - told, 1, JSON.stringify(calls.slice(told)));
  // Put the stock back for the other tests.
  assert.equal((await putRows("stock", [{ sku: "tent-2p", store: "online", qty: 0 }])).status, 200);
  await eventually(async () => (await hero("tent-2p", "lyon")).includes("3 left at Lyon Part-Dieu"), 10000, worker.log);
});
