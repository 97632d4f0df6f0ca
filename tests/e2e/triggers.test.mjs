// Triggers under `wrangler dev` with real Queues (docs/triggers.md): fixtures/triggers.json
// (plus a flaky and an unconfigured destination) published to local KV; a local
// receiver verifies every webhook with the Standard Webhooks reference library
// (standardwebhooks 1.1.1, tests/peers/webhooks) and every Segment call's write key.
// A stage entered, an event and a rule turned true each deliver; a delayed one waits in
// the visitor's Durable Object alarm and its `unless` event cancels it, from the same
// device or, for a linked person, from another; caps, crawlers and no consent hold them
// back; a receiver answering 500 gets the retries, each with the same webhook-id, then
// the message is in the dead-letter queue; a destination whose var is not set is a log
// line. Nobody can flood: a cookie-less request schedules nothing (1,000 of them create
// no Durable Object), and a client past its rate starts nothing more. An erased person
// is sent nothing, from any object or the queue. Each test is its own client
// (`X-MM-Client-IP`, development only). Prints the time from a request to its webhook.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { KEYS, ROOT, cli, cleanup, eventually as until, freePort, startWorker, tempDir, tokenFrom } from "./harness.mjs";

const PEER = join(ROOT, "tests", "peers", "webhooks", "node_modules", "standardwebhooks");
const SECRET = "whsec_" + Buffer.from("micromoment-e2e-webhook-secret!!").toString("base64");
const WRITE_KEY = "segment-write-key-e2e";
const BACKEND = "backend-token-0123456789abcdef";
const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

let tmp, receiver, worker, base, Webhook;
/** Every call the receiver got: {path, headers, body, verified, at}. */
const calls = [];

before(async () => {
  assert.ok(existsSync(PEER), "standardwebhooks is not installed: run  npm ci --prefix tests/peers/webhooks  (scripts/test.sh does)");
  ({ Webhook } = createRequire(import.meta.url)(PEER));
  const verifier = new Webhook(SECRET);
  tmp = tempDir("triggers");
  writeFileSync(join(tmp, "keys.json"), JSON.stringify(KEYS));
  const source = JSON.parse(readFileSync(join(ROOT, "fixtures", "triggers.json"), "utf8"));
  source.destinations.flaky = { kind: "webhook", url: "MM_DEST_FLAKY_URL", secret: "MM_DEST_FLAKY_SECRET" };
  source.destinations.nowhere = { kind: "webhook", url: "MM_DEST_NOWHERE_URL", secret: "MM_DEST_NOWHERE_SECRET" };
  source.triggers.push({ id: "flaky-ping", on: { event: "ping" }, send: ["flaky"] });
  source.triggers.push({ id: "lost-ping", on: { event: "lost" }, send: ["nowhere"] });
  source.triggers.push({ id: "quick-rescue", on: { event: "cart_add" }, delay: "3s", unless: { event: "order_done" }, send: ["crm"] });
  source.triggers.push({ id: "flood-ping", on: { event: "flood" }, send: ["crm"] });
  const json = join(tmp, "triggers.json");
  const mmb = join(tmp, "triggers.mmb");
  writeFileSync(json, JSON.stringify(source));
  cli("compile", json, "-o", mmb);
  cli("publish", mmb, "--local", "--persist-to", join(tmp, "state"));

  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const call = { path: req.url, headers: req.headers, body, at: Date.now() };
      if (req.url === "/crm" || req.url === "/down") {
        try {
          verifier.verify(body, req.headers);
          call.verified = true;
        } catch (e) {
          call.verified = false;
          call.error = e.message;
        }
      }
      calls.push(call);
      res.writeHead(req.url === "/down" ? 500 : 200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  const port = await freePort();
  await new Promise((r) => receiver.listen(port, "127.0.0.1", r));
  const at = `http://127.0.0.1:${port}`;
  worker = await startWorker({
    dir: tmp,
    vars: {
      MM_DEV: "1", JOURNEY_KEYS: JSON.stringify(KEYS),
      MM_DEST_CRM_URL: `${at}/crm`, MM_DEST_CRM_SECRET: SECRET,
      MM_DEST_SEGMENT_URL: `${at}/segment`, MM_DEST_SEGMENT_KEY: WRITE_KEY,
      MM_DEST_FLAKY_URL: `${at}/down`, MM_DEST_FLAKY_SECRET: SECRET, MM_DEST_NOWHERE_SECRET: SECRET,
      MM_BACKEND_TOKEN: BACKEND,
    },
  });
  base = worker.base;
  await until(async () => (await (await fetch(`${base}/v1/bundle`)).json()).id === "triggers", 30000, worker.log);
});

after(async () => {
  await worker?.stop();
  receiver?.close();
  cleanup(tmp);
});

/** Every request its own client unless a test says which (the rate limit is per client). */
let clients = 0;
const headers = (token, more = {}) => ({
  "User-Agent": CHROME, "X-MM-Geo-Country": "FR", "X-MM-Client-IP": `198.51.100.${(clients++ % 250) + 1}-${clients}`,
  ...(token ? { Cookie: `mm=${token}` } : {}), ...more,
});

async function page(token, path, more) {
  const r = await fetch(`${base}/v1/decide?slots=hero&path=${path}`, { headers: headers(token, more) });
  assert.equal(r.status, 200);
  await r.json();
  return tokenFrom(r) ?? token;
}

async function events(token, names, more) {
  const r = await fetch(`${base}/v1/events`, {
    method: "POST",
    headers: { ...headers(token, more), "Content-Type": "application/json" },
    body: JSON.stringify({ events: names.map((name) => ({ name })) }),
  });
  assert.equal(r.status, 200);
  await r.json();
  return tokenFrom(r) ?? token;
}

const visitorOf = (token) => JSON.parse(cli("token", "inspect", token, "--keys", join(tmp, "keys.json"))).visitor;

/** The Durable Objects local storage holds: every file under the persisted `do` folder. */
function objectFiles() {
  const root = join(worker.persist, "v3", "do");
  const files = [];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(root);
  return files.sort();
}

/**
 * Waits until a delayed trigger fired now by a returning control visitor reaches the
 * receiver: every alarm due by then has rung, so a delivery still missing was not sent.
 */
async function aControlIsDelivered(control = null) {
  control ??= await page(null, "/");
  const visitor = visitorOf(control);
  const sent = callsFor("/crm", "quick-rescue", visitor).length;
  control = await events(control, ["cart_add"]);
  await until(() => callsFor("/crm", "quick-rescue", visitor).length === sent + 1, 30000, worker.log);
  return control;
}
const callsFor = (path, trigger, visitor) => calls.filter((c) => c.path === path && c.body.includes(`"${trigger}"`) && c.body.includes(visitor));

test("entering a stage sends one signed webhook with the documented body, within its cap", async () => {
  let token = await page(null, "/models/x");
  const visitor = visitorOf(token);
  const sent = Date.now();
  token = await events(token, ["test_drive_booked"]);
  await until(() => callsFor("/crm", "test-drive-follow-up", visitor).length === 1, 20000, worker.log);
  const [call] = callsFor("/crm", "test-drive-follow-up", visitor);
  console.log(`# request to webhook: ${call.at - sent} ms`);
  assert.equal(call.verified, true, call.error);
  assert.match(call.headers["webhook-id"], /^msg_[0-9a-f]{24}$/);
  assert.match(call.headers["content-type"], /^application\/json/);
  const body = JSON.parse(call.body);
  assert.deepEqual(Object.keys(body).sort(), ["at", "bundle", "channel", "country", "device", "intents", "stage", "trigger", "type", "visitor"]);
  assert.equal(body.trigger, "test-drive-follow-up");
  assert.equal(body.stage, "decision");
  assert.equal(body.visitor, visitor);
  assert.equal(body.channel, "web");
  assert.equal(body.device, "desktop");
  assert.equal(body.country, "FR");
  // Back to awareness and in again: capped at 1 per 30 days.
  token = await events(token, ["reset"]);
  token = await events(token, ["test_drive_booked"]);
  // A later trigger of the same visitor arriving means the capped one would have too.
  token = await events(token, ["flood"]);
  await until(() => callsFor("/crm", "flood-ping", visitor).length === 1, 20000, worker.log);
  assert.equal(callsFor("/crm", "test-drive-follow-up", visitor).length, 1, "the cap holds");
});

test("a rule turned true sends a Segment track call with the write key", async () => {
  let token = await page(null, "/models/suv/x5");
  const visitor = visitorOf(token);
  token = await page(token, "/models/suv/x5");
  await until(() => callsFor("/segment", "suv-keen", visitor).length === 1, 20000, worker.log);
  const [call] = callsFor("/segment", "suv-keen", visitor);
  assert.equal(call.headers.authorization, `Basic ${Buffer.from(`${WRITE_KEY}:`).toString("base64")}`);
  const track = JSON.parse(call.body);
  assert.equal(track.type, "track");
  assert.equal(track.event, "suv-keen");
  assert.equal(track.anonymousId, visitor);
  assert.match(track.messageId, /^msg_[0-9a-f]{24}$/);
  assert.equal(track.properties.stage, "consideration");
  assert.ok(track.properties.intents.suv >= 50);
  assert.ok(!Number.isNaN(Date.parse(track.timestamp)));
});

test("crawlers and visitors without consent start nothing", async () => {
  const before = calls.length;
  const crawler = { "User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)" };
  const bot = await events(null, ["test_drive_booked"], crawler);
  await events(null, ["test_drive_booked", "ping", "cart_add"], { "Sec-GPC": "1" });
  await events(bot, ["basket_add", "cart_add"], crawler);
  // A person's trigger sent after them arrives: theirs would have arrived first.
  const person = await events(null, ["flood"]);
  await until(() => callsFor("/crm", "flood-ping", visitorOf(person)).length === 1, 20000, worker.log);
  assert.equal(calls.length, before + 1, JSON.stringify(calls.slice(before).map((c) => c.body)));
});

test("a delayed trigger waits in the visitor's alarm, and its unless event cancels it", async () => {
  // Sent after its delay, signed, not before (a returning visitor: its first request
  // carried no cookie and scheduled nothing).
  const waiting = await events(await page(null, "/"), ["cart_add"]);
  const sent = Date.now();
  const visitor = visitorOf(waiting);
  await until(() => callsFor("/crm", "quick-rescue", visitor).length === 1, 30000, worker.log);
  const [call] = callsFor("/crm", "quick-rescue", visitor);
  console.log(`# delayed trigger (3 s): sent ${call.at - sent} ms after the request`);
  assert.ok(call.at - sent >= 2500, `not before its delay: ${call.at - sent} ms`);
  assert.equal(call.verified, true, call.error);
  assert.equal(JSON.parse(call.body).trigger, "quick-rescue");
  // The order comes within the delay: nothing is sent.
  let other = await events(await page(null, "/"), ["cart_add"]);
  const cancelled = visitorOf(other);
  other = await events(other, ["order_done"]);
  await until(() => /delayed trigger cancelled/.test(worker.log()), 20000, worker.log);
  // Consent withdrawn within the delay: nothing that waits is sent.
  let withdrawn = await events(await page(null, "/"), ["cart_add"]);
  const refused = visitorOf(withdrawn);
  withdrawn = await page(withdrawn, "/", { "Sec-GPC": "1" });
  await until(() => /delayed trigger cancelled","detail":"1 by consent withdrawn/.test(worker.log()), 20000, worker.log);
  await aControlIsDelivered();
  assert.equal(callsFor("/crm", "quick-rescue", cancelled).length, 0, "cancelled by order_done");
  assert.equal(callsFor("/crm", "quick-rescue", refused).length, 0, "cancelled when consent was withdrawn");
});

test("a linked person's delayed trigger waits in the profile, and the store's order cancels it", async () => {
  const PERSON = "61616161616161616161616161616161";
  const keys = join(tmp, "keys.json");
  let phone = cli("token", "mint", "--keys", keys, "--profile", PERSON);
  phone = await events(phone, ["cart_add"]);
  const visitor = visitorOf(phone);
  // The order is completed in the store: the backend tells the profile.
  const before = worker.log().split("delayed trigger cancelled").length;
  const store = await fetch(`${base}/v1/profiles/${PERSON}/events`, {
    method: "POST",
    headers: { Authorization: `Bearer ${BACKEND}`, "Content-Type": "application/json" },
    body: JSON.stringify({ events: [{ name: "order_done" }], channel: "store" }),
  });
  assert.equal(store.status, 200, await store.clone().text());
  await until(() => worker.log().split("delayed trigger cancelled").length > before, 20000, worker.log);
  await aControlIsDelivered();
  assert.equal(callsFor("/crm", "quick-rescue", visitor).length, 0, "cancelled by the store's order");
  assert.equal(calls.filter((c) => c.body.includes("quick-rescue") && c.body.includes(PERSON)).length, 0);
});

test("the laptop's purchase cancels the basket rescue the phone started", async () => {
  const PERSON = "62626262626262626262626262626262";
  const keys = join(tmp, "keys.json");
  let phone = cli("token", "mint", "--keys", keys, "--profile", PERSON);
  let laptop = cli("token", "mint", "--keys", keys, "--profile", PERSON);
  phone = await events(phone, ["cart_add"]);
  const visitor = visitorOf(phone);
  const before = worker.log().split("delayed trigger cancelled").length;
  // The laptop's own state knows of no basket: the profile does.
  laptop = await events(laptop, ["order_done"]);
  await until(() => worker.log().split("delayed trigger cancelled").length > before, 20000, worker.log);
  await aControlIsDelivered();
  assert.equal(callsFor("/crm", "quick-rescue", visitor).length, 0, "cancelled by the laptop's order");
});

test("1,000 cookie-less requests firing a delayed trigger create no Durable Object", async () => {
  // The control's own object is gone once it has sent; it comes back (the same
  // object) for the second control below.
  const control = await aControlIsDelivered();
  const before = objectFiles();
  let sent = 0;
  for (let batch = 0; batch < 50; batch++) {
    const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { ...headers(null), "Content-Type": "application/json" },
      body: JSON.stringify({ events: [{ name: "cart_add" }] }),
    })));
    for (const r of answers) {
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      sent++;
    }
  }
  assert.equal(sent, 1000);
  // The control's next delayed trigger after them: every wait_until of theirs is done.
  await aControlIsDelivered(control);
  assert.deepEqual(objectFiles().filter((f) => !before.includes(f)), [], "no object was created");
  console.log(`# durable object files before and after 1,000 anonymous cart_add events: ${before.length}, ${objectFiles().length}`);
});

test("a client past its rate starts nothing more", async () => {
  // The binding allows 60 fires a minute per client; a window boundary can let two
  // windows' worth through, never more.
  const before = worker.log().split("trigger rate limit reached").length;
  // A control whose own object exists before the count (see the test above).
  const control = await aControlIsDelivered();
  const files = objectFiles();
  const visitors = [];
  for (let i = 0; i < 150; i++) {
    // Another address of the same /64 each time: one network, one client.
    const token = await events(null, ["flood"], { "X-MM-Client-IP": `2001:db8:7:7:${i.toString(16)}::1` });
    visitors.push(visitorOf(token));
  }
  await until(() => worker.log().split("trigger rate limit reached").length - before >= 30, 30000, worker.log);
  await aControlIsDelivered(control);
  const delivered = calls.filter((c) => c.path === "/crm" && c.body.includes('"flood-ping"')).length;
  console.log(`# 150 fires from one client: ${delivered} delivered`);
  assert.ok(delivered <= 120, `${delivered} delivered`);
  assert.ok(delivered >= 1, "the first ones go out");
  assert.deepEqual(objectFiles().filter((f) => !files.includes(f)), [], "asking whether they were erased created no object");
});

test("an erased person is sent nothing: not what waits before the link, nor what is on the queue", async () => {
  const ERASED = "63636363636363636363636363636363";
  const keys = join(tmp, "keys.json");
  // An anonymous visitor starts a basket rescue, then links to the person by a link
  // they confirm; the person is erased before the rescue is due.
  let visitor = await page(null, "/");
  visitor = await events(visitor, ["cart_add"]);
  const id = visitorOf(visitor);
  const link = cli("link", "mint", "--keys", keys, "--profile", ERASED);
  const confirmed = await fetch(`${base}/offers?mm_link=${encodeURIComponent(link)}`, {
    method: "POST", redirect: "manual", headers: { ...headers(visitor), Origin: base },
  });
  assert.equal(confirmed.status, 303);
  assert.equal(visitorOf(tokenFrom(confirmed)), id, "the anonymous device brought itself");
  const erased = await fetch(`${base}/v1/profiles/${ERASED}`, { method: "DELETE", headers: { Authorization: `Bearer ${BACKEND}` } });
  assert.equal(erased.status, 200, await erased.clone().text());
  await aControlIsDelivered();
  assert.equal(callsFor("/crm", "quick-rescue", id).length, 0, "what waited before the link went with the person");

  // A linked person's message failing at its receiver is on the queue when they are
  // erased: its retries stop, and the dead-letter queue never shows it.
  const QUEUED = "64646464646464646464646464646464";
  let phone = cli("token", "mint", "--keys", keys, "--profile", QUEUED);
  phone = await events(phone, ["ping"]);
  await until(() => calls.some((c) => c.path === "/down" && c.body.includes(QUEUED)), 30000, worker.log);
  const gone = await fetch(`${base}/v1/profiles/${QUEUED}`, { method: "DELETE", headers: { Authorization: `Bearer ${BACKEND}` } });
  assert.equal(gone.status, 200);
  await until(() => /trigger dropped: the person was erased/.test(worker.log()), 60000, worker.log);
  const attempts = calls.filter((c) => c.path === "/down" && c.body.includes(QUEUED));
  const messageId = attempts[0].headers["webhook-id"];
  assert.ok(attempts.length < 4, `${attempts.length} attempts: the retries stopped`);
  assert.ok(!worker.log().split("\n").some((l) => l.includes("dead-letter") && l.includes(messageId)), "not in the dead-letter log");
});

test("a receiver answering 500 gets retries with the same webhook-id, then the dead-letter queue", async () => {
  const token = await events(null, ["ping"]);
  const visitor = visitorOf(token);
  await until(() => callsFor("/down", "flaky-ping", visitor).length >= 4, 60000, worker.log);
  const attempts = callsFor("/down", "flaky-ping", visitor);
  const ids = new Set(attempts.map((c) => c.headers["webhook-id"]));
  assert.equal(ids.size, 1, "one id across redeliveries");
  assert.ok(attempts.every((c) => c.verified), "every attempt is signed");
  const [id] = ids;
  await until(() => worker.log().includes("dead-letter queue") && worker.log().includes(id), 60000, worker.log);
  assert.equal(callsFor("/down", "flaky-ping", visitor).length, 4, "1 attempt and max_retries = 3");
});

test("a destination whose var is not set is a clear log line, and the Worker keeps answering", async () => {
  await events(null, ["lost"]);
  await until(() => /MM_DEST_NOWHERE_URL is not set/.test(worker.log()), 20000, worker.log);
  const r = await fetch(`${base}/healthz`);
  assert.equal(r.status, 200);
});

test("figures: request to webhook, and the response time with and without a trigger (printed, not asserted)", async () => {
  const toWebhook = [];
  const firing = [];
  const quiet = [];
  for (let i = 0; i < 20; i++) {
    let token = await page(null, "/models/x");
    const visitor = visitorOf(token);
    const start = performance.now();
    const wall = Date.now();
    token = await events(token, ["test_drive_booked"]);
    firing.push(performance.now() - start);
    await until(() => callsFor("/crm", "test-drive-follow-up", visitor).length === 1, 20000, worker.log);
    toWebhook.push(callsFor("/crm", "test-drive-follow-up", visitor)[0].at - wall);
    // The same request again after a step back: the same transition into decision,
    // but the follow-up is capped (1 per 30 days), so nothing fires.
    token = await events(token, ["reset"]);
    const t = performance.now();
    await events(token, ["test_drive_booked"]);
    quiet.push(performance.now() - t);
  }
  const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))].toFixed(1);
  console.log(`# request to webhook: p50 ${q(toWebhook, 0.5)} ms, p95 ${q(toWebhook, 0.95)} ms (n=${toWebhook.length})`);
  console.log(`# POST /v1/events entering decision: firing the follow-up p50 ${q(firing, 0.5)} ms; the same with the follow-up capped p50 ${q(quiet, 0.5)} ms`);
});
