// One journey per person across devices (docs/profiles.md), under `wrangler dev` with
// the real Worker, its `Profile` Durable Object (SQLite, local) and the bundle
// fixtures/profiles.json published to local KV. Each device keeps its own cookie jar;
// the clock moves with `X-MM-Now` (development only), so visits 40 minutes apart take
// no time. A phone with a token minted at login, a laptop that opens an identity link
// and confirms it (also in headless Chromium, by the button's name), a tablet shared by
// two people, a store and an ESP through the backend API. Links that cannot be planted:
// a link opened by someone else changes nothing until they confirm, works once, can be
// revoked, and nothing minted before an erasure brings the person back. The profile
// Durable Object failing, hanging or answering late (tests/e2e/faults/entry.mjs wraps
// its namespace) leaves every device a 200 on its own state, and the backend a 503.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { join } from "node:path";
import {
  KEYS, ROOT, cli, cleanup, eventually as until, freePort, launchChromium, publishedBundle, startWorker, tokenFrom,
} from "./harness.mjs";

const BACKEND = "backend-token-0123456789abcdef";
const PERSON = "51515151515151515151515151515151";
const OTHER = "52525252525252525252525252525252";
const PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const LAPTOP_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const TABLET_UA = "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const T0 = Date.parse("2026-12-02T09:00:00Z");
const at = (minutes) => new Date(T0 + minutes * 60_000).toISOString().replace(".000Z", "Z");
const PAGE = '<!doctype html><html><head><title>Acme</title></head><body><div data-mm-slot="hero"><p>origin hero</p></div></body></html>';

let tmp, keysFile, origin, worker, base;

before(async () => {
  ({ tmp, keysFile } = publishedBundle("profiles", join(ROOT, "fixtures", "profiles.json")));
  origin = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  const originPort = await freePort();
  await new Promise((r) => origin.listen(originPort, "127.0.0.1", r));
  worker = await startWorker({
    dir: tmp,
    main: join(ROOT, "tests", "e2e", "faults", "entry.mjs"),
    vars: {
      ORIGIN: `http://127.0.0.1:${originPort}`, MM_DEV: "1", JOURNEY_KEYS: JSON.stringify(KEYS),
      MM_BACKEND_TOKEN: BACKEND, MM_PROFILE_WAIT_MS: "2000", MM_BACKEND_TIMEOUT_MS: "2000",
    },
  });
  base = worker.base;
  await until(async () => (await (await fetch(`${base}/v1/bundle`)).json()).id === "profiles-e2e", 30000, worker.log);
});

after(async () => {
  await worker?.stop();
  origin?.close();
  cleanup(tmp);
});

const faults = (mode) => fetch(`${base}/__faults?profiles=${mode}`).then((r) => r.text());

/** A device: its user agent and its cookie jar (the `mm` cookie). */
function device(ua, token = null) {
  return { ua, token };
}

/** `GET /v1/decide` as `dev` at `minute`, keeping the cookie it is given. */
async function decide(dev, minute, query = "", slots = "hero,promo,test") {
  const headers = { "User-Agent": dev.ua, "X-MM-Now": at(minute) };
  if (dev.token) headers.Cookie = `mm=${dev.token}`;
  const r = await fetch(`${base}/v1/decide?slots=${slots}${query}`, { headers });
  assert.equal(r.status, 200, await r.clone().text());
  const body = await r.json();
  dev.token = tokenFrom(r) ?? dev.token;
  const content = Object.fromEntries(body.decisions.map((d) => [d.slot, d.content]));
  return { stage: body.stage, ...content };
}

/** `POST /v1/events` as `dev` at `minute`. */
async function sendEvent(dev, minute, name) {
  const r = await fetch(`${base}/v1/events`, {
    method: "POST",
    headers: { "User-Agent": dev.ua, "X-MM-Now": at(minute), Cookie: `mm=${dev.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ events: [{ name }] }),
  });
  assert.equal(r.status, 200);
  const body = await r.json();
  dev.token = tokenFrom(r) ?? dev.token;
  return body.stage;
}

const withLink = (path, link) => `${path}${path.includes("?") ? "&" : "?"}mm_link=${encodeURIComponent(link)}`;

/** `GET …?mm_link=` as `dev`: the answer, unfollowed. */
async function viewLink(dev, link, minute, path = "/offers?ref=mail", more = {}) {
  const headers = { "User-Agent": dev.ua, "X-MM-Now": at(minute), ...more };
  if (dev.token) headers.Cookie = `mm=${dev.token}`;
  return fetch(`${base}${withLink(path, link)}`, { headers, redirect: "manual" });
}

/** The confirmation page a link shows, checked as a browser acts on it. */
async function confirmationPage(r) {
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(r.headers.get("cache-control"), "no-store");
  assert.equal(r.headers.get("referrer-policy"), "no-referrer");
  assert.equal(r.headers.get("x-frame-options"), "DENY");
  assert.match(r.headers.get("content-security-policy"), /default-src 'none'.*form-action 'self'.*frame-ancestors 'none'/);
  assert.equal(r.headers.get("set-cookie"), null, "opening a link writes nothing");
  return r.text();
}

/** `POST …?mm_link=` as `dev`: the person confirmed, from this site. */
async function confirmLink(dev, link, minute, path = "/offers?ref=mail", more = { Origin: base }) {
  const headers = { "User-Agent": dev.ua, "X-MM-Now": at(minute), "Content-Type": "application/x-www-form-urlencoded", ...more };
  if (dev.token) headers.Cookie = `mm=${dev.token}`;
  return fetch(`${base}${withLink(path, link)}`, { method: "POST", headers, body: "", redirect: "manual" });
}

/**
 * Opens `?mm_link=` as a person does: the confirmation page, then its button (a 303 to
 * the same URL without mm_link, with the linked cookie); a device already the link's
 * person's goes straight to the page (302). Returns the cookie set, if any.
 */
async function openLink(dev, link, minute, path = "/offers?ref=mail") {
  const seen = await viewLink(dev, link, minute, path);
  let r = seen;
  if (seen.status === 200) {
    await confirmationPage(seen);
    r = await confirmLink(dev, link, minute, path);
    assert.equal(r.status, 303);
  } else {
    assert.equal(r.status, 302);
  }
  assert.equal(r.headers.get("location"), path, "the same URL without mm_link");
  assert.equal(r.headers.get("referrer-policy"), "no-referrer");
  assert.equal(r.headers.get("cache-control"), "no-store");
  const token = tokenFrom(r);
  if (token) dev.token = token;
  return { response: r, token };
}

function backend(method, path, body, token = BACKEND, minute = null) {
  const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  if (minute !== null) headers["X-MM-Now"] = at(minute);
  return fetch(`${base}/v1/profiles/${path}`, { method, headers, body: body && JSON.stringify(body) });
}

/** The profile as the backend API reads it, or null (404). */
async function profileOf(id, minute) {
  const r = await backend("GET", id, null, BACKEND, minute);
  return r.status === 200 ? r.json() : null;
}

/** Waits until a device's push (sent after its response) has landed in the profile. */
const landed = (id, minute, holds) =>
  until(async () => { const p = await profileOf(id, minute); return p !== null && holds(p); }, 20000, worker.log);

const inspect = (token, minute) => JSON.parse(cli("token", "inspect", token, "--keys", keysFile, "--now", at(minute)));
const mintLink = (profile, minute, ...more) =>
  cli("link", "mint", "--keys", keysFile, "--profile", profile, "--now", at(minute), ...more);
const linkId = (link, minute) => JSON.parse(cli("link", "inspect", link, "--keys", keysFile, "--now", at(minute))).id;

test("one person's phone, laptop, store and e-mail share stage, caps, variants and visits", async () => {
  // The phone logged in: the backend minted it a token with the profile.
  const phone = device(PHONE_UA, cli("token", "mint", "--keys", keysFile, "--profile", PERSON, "--now", at(0)));
  assert.match(phone.token, /^v2\./);
  const p1 = await decide(phone, 0, "&path=/models/suv");
  assert.equal(p1.stage, "consideration");
  assert.equal(p1.hero, "drive", "the capped content, first of 2 this week");
  assert.equal(p1.promo, "plain", "the phone is not a desktop");
  assert.ok(["teaser-a", "teaser-b"].includes(p1.test));
  assert.equal(inspect(phone.token, 0).link.profile, PERSON);
  // The phone books a test drive.
  assert.equal(await sendEvent(phone, 0, "test_drive_booked"), "decision");
  await landed(PERSON, 0, (p) => p.stage === "decision" && p.state.impressions.drive?.total === 1);

  // The laptop opens the link from an e-mail: it joins the person's journey.
  const laptop = device(LAPTOP_UA);
  const { token } = await openLink(laptop, mintLink(PERSON, 1, "--campaign", "winter-check"), 1);
  assert.ok(token, "the link sets the token");
  assert.equal(inspect(token, 1).link.profile, PERSON);
  const l1 = await decide(laptop, 2);
  assert.equal(l1.stage, "decision", "the phone's stage");
  assert.equal(l1.hero, "drive", "second of 2 this week, across both");
  assert.equal(l1.promo, "from-phone", "visits.mobile counts the phone's visit");
  assert.equal(l1.test, p1.test, "the phone's variant");
  const l2 = await decide(laptop, 3);
  assert.equal(l2.hero, "film", "the cap of 2 is spent");
  await landed(PERSON, 3, (p) => p.state.impressions.drive?.total === 2);

  // The phone's next visit (40 minutes on) syncs: the laptop's impression counts.
  const p2 = await decide(phone, 40);
  assert.equal(p2.hero, "film", "the cap of 2 holds across devices");
  assert.equal(p2.test, p1.test);

  // An e-mail rendered by the ESP draws on the same caps: the service offer once a week.
  const mail = await backend("POST", `${PERSON}/decide`, { slots: ["offer", "hero"], channel: "email" }, BACKEND, 41);
  assert.equal(mail.status, 200);
  assert.equal(mail.headers.get("cache-control"), "no-store");
  const mailBody = await mail.json();
  assert.equal(mailBody.decisions[0].content, "service");
  assert.match(mailBody.decisions[0].html, /service/, "an e-mail gets HTML");
  const p3 = await decide(phone, 90, "", "offer");
  assert.equal(p3.offer, "plain", "the e-mail's impression counts against the phone's cap");

  // A purchase in the store, through the backend API: both devices are in purchase.
  const store = await backend("POST", `${PERSON}/events`, { events: [{ name: "order_completed", value: 41990 }], channel: "store" }, BACKEND, 100);
  assert.equal(store.status, 200);
  assert.equal((await store.json()).stage, "purchase");
  // What analytics gets: the person is the profile on every device, the store and the
  // e-mail alike.
  await until(() => /"type":"conversion"[^\n]*"goal":"purchase"/.test(worker.log()), 20000, worker.log);
  const records = worker.log().split("\n").map((l) => l.slice(l.indexOf("{"))).filter((l) => l.startsWith('{"type"'))
    .map((l) => JSON.parse(l)).filter((r) => r.profile === PERSON);
  assert.deepEqual([...new Set(records.map((r) => r.channel))].sort(), ["email", "store", "web"]);
  const order = records.find((r) => r.type === "conversion");
  assert.equal(order.channel, "store");
  assert.equal(order.goal, "purchase");
  assert.equal(order.value, 41990);
  assert.ok(records.filter((r) => r.type === "exposure" && r.channel === "web").length >= 6);
  assert.equal((await decide(phone, 140)).hero, "thanks");
  assert.equal((await decide(laptop, 141)).hero, "thanks");

  // The profile as the backend reads it, by names.
  const got = await backend("GET", PERSON, null, BACKEND, 142);
  assert.equal(got.status, 200);
  const profile = await got.json();
  assert.equal(profile.stage, "purchase");
  assert.equal(profile.devices, 2, "phone and laptop (the store is the backend's record)");
  assert.ok(profile.records.some((r) => r.device === "backend:store"));
  assert.ok(profile.state.visits_by.mobile >= 2 && profile.state.visits_by.desktop >= 1, JSON.stringify(profile.state.visits_by));

  // In Chromium: a new laptop browser opens the link and is asked first (nothing set
  // yet), the person presses Continue, the browser follows the 303, keeps the cookie,
  // and the page it shows is the person's (purchase: thanks).
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({
      userAgent: LAPTOP_UA, locale: "fr-FR", extraHTTPHeaders: { "X-MM-Now": at(150), "Accept-Language": "fr-FR,fr;q=0.9" },
    });
    const page = await context.newPage();
    const asked = await page.goto(`${base}/welcome?mm_link=${encodeURIComponent(mintLink(PERSON, 150))}`);
    assert.equal(asked.status(), 200);
    assert.equal(await page.getAttribute("html", "lang"), "fr", "in the visitor's language");
    await page.getByRole("heading", { name: "Utiliser ce lien sur cet appareil ?" }).waitFor();
    assert.deepEqual(await context.cookies(), [], "nothing is set before the person confirms");
    const [response] = await Promise.all([
      page.waitForNavigation(),
      page.getByRole("button", { name: "Continuer" }).click(),
    ]);
    assert.equal(new URL(page.url()).pathname + new URL(page.url()).search, "/welcome", "the link is gone from the address bar");
    assert.equal(response.status(), 200);
    assert.match(response.headers()["content-type"], /^text\/html/);
    assert.equal(await page.locator("[data-mm-slot=hero]").innerText(), "thanks");
    const cookies = await context.cookies();
    const mm = cookies.find((c) => c.name === "mm");
    assert.ok(mm?.value.startsWith("v2."), "the browser keeps the linked token");
    assert.equal(mm.httpOnly, true);
    assert.equal(mm.sameSite, "Lax");
  } finally {
    await browser.close();
  }
});

test("a shared tablet moved to another person brings nothing of the first", async () => {
  const tablet = device(TABLET_UA);
  await openLink(tablet, mintLink(OTHER, 200), 200);
  const first = await decide(tablet, 201, "&path=/models/ev");
  assert.equal(first.stage, "consideration");
  const before = inspect(tablet.token, 201);
  // Another person opens their link on the same tablet.
  const THIRD = "53535353535353535353535353535353";
  await openLink(tablet, mintLink(THIRD, 202), 202);
  const after = inspect(tablet.token, 202);
  assert.equal(after.link.profile, THIRD);
  assert.notEqual(after.visitor, before.visitor, "a new device id for the new person");
  assert.equal(after.stage, null);
  assert.deepEqual(after.impressions, []);
  assert.equal((await decide(tablet, 203)).stage, "awareness", "the third person's journey, not the second's");
  // Opening the same person's link again asks nothing: the same device, the person's
  // journey as it is.
  const same = await viewLink(tablet, mintLink(THIRD, 204), 204);
  assert.equal(same.status, 302, "already this person's: no confirmation");
  const again = inspect(tokenFrom(same) ?? tablet.token, 204);
  assert.equal(again.visitor, after.visitor);
  assert.equal(again.link.profile, THIRD);
});

test("a link sent to someone else changes nothing until they confirm, and works once", async () => {
  const SENDER = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
  // The sender is a customer with a login; their own link from a marketing e-mail.
  const phone = device(PHONE_UA, cli("token", "mint", "--keys", keysFile, "--profile", SENDER, "--now", at(1500)));
  assert.equal((await decide(phone, 1500)).stage, "awareness");
  await landed(SENDER, 1500, (p) => p.devices === 1);
  const link = mintLink(SENDER, 1500, "--campaign", "winter-check");
  // The victim browsed on their own: their journey is in consideration.
  const victim = device(LAPTOP_UA);
  assert.equal((await decide(victim, 1501, "&path=/models/suv")).stage, "consideration");
  const own = inspect(victim.token, 1501);
  // The sender forwards their link. Opening it shows a page and sets nothing.
  const page = await confirmationPage(await viewLink(victim, link, 1502));
  assert.match(page, /Use this link on this device\?/);
  assert.match(page, /<form method="post" action="\/offers\?ref=mail&amp;mm_link=/);
  // Another site's form, a request that proves no origin, a crawler, a prefetch: nothing.
  for (const [more, status] of [
    [{ Origin: "https://evil.example" }, 403],
    [{ Origin: base, "Sec-Fetch-Site": "cross-site" }, 403],
    [{ Origin: base, "Sec-Fetch-Site": "same-site" }, 403],
    [{ Origin: "null" }, 403],
    [{}, 403],
    [{ Origin: base, "User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)" }, 303],
  ]) {
    const r = await confirmLink(victim, link, 1503, "/offers?ref=mail", more);
    assert.equal(r.status, status, JSON.stringify(more));
    assert.equal(r.headers.get("set-cookie"), null, JSON.stringify(more));
  }
  const prefetched = await viewLink(victim, link, 1503, "/offers?ref=mail", { "Sec-Purpose": "prefetch" });
  assert.equal(prefetched.status, 302);
  assert.equal(prefetched.headers.get("set-cookie"), null);
  // The victim's device is where it was, and their history never reached the sender.
  const next = await decide(victim, 1504);
  assert.equal(next.stage, "consideration");
  const still = inspect(victim.token, 1504);
  assert.equal(still.visitor, own.visitor);
  assert.equal(still.link, undefined, "not linked");
  const sender = await profileOf(SENDER, 1505);
  assert.equal(sender.stage, "awareness", "the victim's stage is not the sender's");
  assert.equal(sender.devices, 1);
  // The sender confirms on their own laptop: linked. The same link again: nothing.
  const laptop = device(LAPTOP_UA);
  const used = await openLink(laptop, link, 1506);
  assert.ok(used.token, "the first confirmation links");
  assert.equal(inspect(used.token, 1506).link.profile, SENDER);
  const other = device(TABLET_UA);
  await confirmationPage(await viewLink(other, link, 1507));
  const second = await confirmLink(other, link, 1507);
  assert.equal(second.status, 303);
  assert.equal(second.headers.get("set-cookie"), null, "a link links one device, once");
  await landed(SENDER, 1508, (p) => p.devices === 2);
  assert.equal((await profileOf(SENDER, 1509)).devices, 2, "the phone and the laptop");
});

test("a revoked link does nothing; revoking every link keeps the later ones", async () => {
  const REVOKING = "5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b";
  const first = mintLink(REVOKING, 1550);
  const second = mintLink(REVOKING, 1550);
  const r = await backend("DELETE", `${REVOKING}/links/${linkId(first, 1551)}`, null, BACKEND, 1551);
  assert.equal(r.status, 200, await r.clone().text());
  assert.deepEqual(await r.json(), { profile: REVOKING, link: linkId(first, 1551), revoked: true });
  const a = device(LAPTOP_UA);
  assert.equal((await openLink(a, first, 1552)).token, null, "revoked by its id");
  const b = device(LAPTOP_UA);
  assert.ok((await openLink(b, second, 1552)).token, "another link still works");
  // Every link issued until now: revoked; one minted after works.
  const third = mintLink(REVOKING, 1553);
  assert.equal((await backend("DELETE", `${REVOKING}/links`, null, BACKEND, 1554)).status, 200);
  assert.equal((await openLink(device(LAPTOP_UA), third, 1555)).token, null, "issued before the revocation");
  assert.ok((await openLink(device(LAPTOP_UA), mintLink(REVOKING, 1556), 1556)).token, "issued after");
  assert.equal((await backend("DELETE", `${REVOKING}/links/nothex`, null, BACKEND, 1557)).status, 400);
  assert.equal((await backend("POST", `${REVOKING}/links`, {}, BACKEND, 1557)).status, 405);
});

test("nothing from before an erasure brings the person back", async () => {
  const GONE_FOR_GOOD = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
  // A token minted at login on a phone that never made a request, and a link in an
  // e-mail not yet opened.
  const phone = device(PHONE_UA, cli("token", "mint", "--keys", keysFile, "--profile", GONE_FOR_GOOD, "--now", at(1600)));
  const link = mintLink(GONE_FOR_GOOD, 1600);
  // The tablet is linked and used.
  const tablet = device(TABLET_UA, cli("token", "mint", "--keys", keysFile, "--profile", GONE_FOR_GOOD, "--now", at(1601)));
  assert.equal((await decide(tablet, 1601, "&path=/models/suv")).stage, "consideration");
  await landed(GONE_FOR_GOOD, 1601, (p) => p.stage === "consideration");
  assert.equal((await backend("DELETE", GONE_FOR_GOOD, null, BACKEND, 1610)).status, 200);
  // The phone's first request: a new visitor, unlinked; the profile stays gone.
  const before = inspect(phone.token, 1611);
  assert.equal((await decide(phone, 1611, "&path=/models/suv")).stage, "consideration");
  const after = inspect(phone.token, 1611);
  assert.equal(after.link, undefined, "the phone is not linked any more");
  assert.notEqual(after.visitor, before.visitor);
  // The link from before the erasure links nothing.
  const laptop = device(LAPTOP_UA);
  assert.equal((await openLink(laptop, link, 1612)).token, null);
  // The tablet's next visit: fresh too.
  await decide(tablet, 1660);
  assert.equal(inspect(tablet.token, 1660).link, undefined);
  assert.equal(await profileOf(GONE_FOR_GOOD, 1661), null, "404: nothing came back");
});

test("an offer capped once a week, shown in an e-mail, is not shown on the web after the e-mail's link", async () => {
  const READER = "5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d";
  const phone = device(PHONE_UA, cli("token", "mint", "--keys", keysFile, "--profile", READER, "--now", at(1700)));
  await decide(phone, 1700, "", "hero");
  await landed(READER, 1700, (p) => p.devices === 1);
  const mail = await backend("POST", `${READER}/decide`, { slots: ["offer"], channel: "email" }, BACKEND, 1701);
  assert.equal((await mail.json()).decisions[0].content, "service", "the e-mail shows the offer");
  // The person follows the e-mail's link on the phone, within the same visit.
  const { response } = await openLink(phone, mintLink(READER, 1702), 1702, "/offers");
  assert.equal(response.status, 302, "their own device: no confirmation");
  assert.equal((await decide(phone, 1703, "", "offer")).offer, "plain", "capped: the e-mail's impression counts");
});

test("forged, expired and unreadable links are ignored: the redirect, no cookie", async () => {
  const laptop = device(LAPTOP_UA);
  const link = mintLink(OTHER, 300, "--ttl", "1h");
  const forged = link.slice(0, -3) + (link.endsWith("A") ? "BBB" : "AAA");
  for (const [text, minute] of [[forged, 301], [link, 400], ["l1.k1.x.y", 301], ["garbage", 301], [cli("token", "mint", "--keys", keysFile, "--now", at(300)), 301]]) {
    const { token } = await openLink(laptop, text, minute);
    assert.equal(token, null, `no cookie for ${text.slice(0, 20)}…`);
  }
  // A page without a link is the page.
  const r = await fetch(`${base}/offers`, { headers: { "User-Agent": LAPTOP_UA } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/html/);
});

test("the backend API needs its bearer token and answers typed errors", async () => {
  assert.equal((await backend("GET", PERSON, null, "wrong-token-0123456789")).status, 401);
  const bare = await fetch(`${base}/v1/profiles/${PERSON}`);
  assert.equal(bare.status, 401);
  assert.match((await bare.json()).error, /Bearer/);
  assert.equal((await backend("GET", "not-hex")).status, 400);
  assert.equal((await backend("GET", "54545454545454545454545454545454")).status, 404, "never seen");
  assert.equal((await backend("PUT", PERSON, {})).status, 405);
  const bad = await backend("POST", `${PERSON}/events`, { events: [{ nom: "x" }] });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /events/);
  assert.equal((await backend("POST", `${PERSON}/decide`, { slots: ["nope"], channel: "email" })).status, 400);
  assert.equal((await backend("POST", `${PERSON}/decide`, { slots: ["hero"], channel: "fax" })).status, 400);
  const big = await backend("POST", `${PERSON}/events`, { events: [{ name: "x".repeat(20000) }] });
  assert.equal(big.status, 413);
});

test("logout unlinks the device; an erased profile makes its devices start fresh", async () => {
  const ERASED = "55555555555555555555555555555555";
  const phone = device(PHONE_UA, cli("token", "mint", "--keys", keysFile, "--profile", ERASED, "--now", at(500)));
  await decide(phone, 500, "&path=/models/suv");
  const laptop = device(LAPTOP_UA);
  await openLink(laptop, mintLink(ERASED, 501), 501);
  assert.equal((await decide(laptop, 502)).stage, "consideration");
  // Logout on the laptop: a new visitor, unlinked.
  const out = await fetch(`${base}/v1/identity/forget`, {
    method: "POST", headers: { Cookie: `mm=${laptop.token}`, "User-Agent": LAPTOP_UA, "X-MM-Now": at(503) },
  });
  assert.equal(out.status, 200);
  const fresh = inspect(tokenFrom(out), 503);
  assert.equal(fresh.link, undefined);
  assert.equal(fresh.stage, null);
  // The person asks to be forgotten.
  const erased = await backend("DELETE", ERASED, null, BACKEND, 510);
  assert.equal(erased.status, 200);
  assert.deepEqual(await erased.json(), { profile: ERASED, erased: true });
  assert.equal((await backend("GET", ERASED, null, BACKEND, 511)).status, 404);
  // The phone's next sync finds the profile gone: it is a new visitor from then on.
  const before = inspect(phone.token, 540);
  const next = await decide(phone, 545);
  assert.equal(next.stage, "awareness");
  const after = inspect(phone.token, 545);
  assert.notEqual(after.visitor, before.visitor);
  assert.equal(after.link, undefined);
  assert.equal((await backend("GET", ERASED, null, BACKEND, 546)).status, 404, "nothing came back");
});

test("an erasure is for good: a later store event does not let the old devices back in", async () => {
  const GONE = "58585858585858585858585858585858";
  const phone = device(PHONE_UA, cli("token", "mint", "--keys", keysFile, "--profile", GONE, "--now", at(1100)));
  assert.equal((await decide(phone, 1100, "&path=/models/suv")).stage, "consideration");
  await landed(GONE, 1100, (p) => p.stage === "consideration");
  assert.equal((await backend("DELETE", GONE, null, BACKEND, 1110)).status, 200);
  // The store writes to the profile again after the erasure: a new profile.
  const store = await backend("POST", `${GONE}/events`, { events: [{ name: "store_visit" }], channel: "store" }, BACKEND, 1120);
  assert.equal(store.status, 200, await store.clone().text());
  // The phone, linked before the erasure, is told to start fresh at its next sync.
  const next = await decide(phone, 1160);
  assert.equal(next.stage, "awareness");
  assert.equal(inspect(phone.token, 1160).link, undefined, "unlinked");
  const profile = await profileOf(GONE, 1161);
  assert.equal(profile.stage, "awareness", "the erased stage did not come back");
  assert.deepEqual(profile.records.map((r) => r.device), ["backend:store"]);
});

test("links keep the redirect on the site, and write nothing without consent", async () => {
  const unescape = (text) => text.replaceAll("&amp;", "&").replaceAll("&quot;", '"').replaceAll("&#39;", "'");
  const sameSite = (url, what) => {
    assert.ok(url.startsWith("/") && !url.startsWith("//") && !url.startsWith("/\\"), `${what}: ${url}`);
    assert.equal(new URL(url, base).origin, new URL(base).origin, `${what}: same site`);
  };
  for (const path of ["//evil.example/x", "/%2F%2Fevil.example/x", "/\\evil.example/x"]) {
    const laptop = device(LAPTOP_UA);
    const link = mintLink(OTHER, 1200);
    const r = await fetch(`${base}${path}?a=1&mm_link=${encodeURIComponent(link)}`, {
      headers: { "User-Agent": LAPTOP_UA, "X-MM-Now": at(1200) }, redirect: "manual",
    });
    const page = await confirmationPage(r);
    sameSite(unescape(/action="([^"]*)"/.exec(page)[1]), `${path}: the form`);
    sameSite(unescape(/<a href="([^"]*)"/.exec(page)[1]), `${path}: the way out`);
    const confirmed = await confirmLink(laptop, link, 1200, `${path}?a=1`);
    assert.equal(confirmed.status, 303);
    sameSite(confirmed.headers.get("location"), `${path}: the redirect`);
  }
  // Global Privacy Control, or the consent cookie set to 0: the redirect, no cookie,
  // whether the link is opened or confirmed.
  const link = mintLink(OTHER, 1201);
  for (const headers of [{ "Sec-GPC": "1" }, { Cookie: "mm_consent=0" }]) {
    const r = await fetch(`${base}/offers?mm_link=${encodeURIComponent(link)}`, {
      headers: { "User-Agent": LAPTOP_UA, "X-MM-Now": at(1201), ...headers }, redirect: "manual",
    });
    assert.equal(r.status, 302);
    assert.equal(r.headers.get("location"), "/offers");
    assert.equal(r.headers.get("set-cookie"), null, JSON.stringify(headers));
    const posted = await fetch(`${base}/offers?mm_link=${encodeURIComponent(link)}`, {
      method: "POST", headers: { "User-Agent": LAPTOP_UA, "X-MM-Now": at(1201), Origin: base, ...headers }, redirect: "manual",
    });
    assert.equal(posted.status, 303);
    assert.equal(posted.headers.get("set-cookie"), null, JSON.stringify(headers));
  }
});

test("logout refuses other sites, and without consent removes the cookie", async () => {
  const laptop = device(LAPTOP_UA);
  await openLink(laptop, mintLink(OTHER, 1300), 1300);
  for (const headers of [{ "Sec-Fetch-Site": "cross-site" }, { "Sec-Fetch-Site": "same-site" }, { Origin: "https://evil.example" }, { Origin: "null" }]) {
    const r = await fetch(`${base}/v1/identity/forget`, {
      method: "POST", headers: { Cookie: `mm=${laptop.token}`, "User-Agent": LAPTOP_UA, ...headers },
    });
    assert.equal(r.status, 403, JSON.stringify(headers));
    assert.equal(r.headers.get("set-cookie"), null);
  }
  const own = await fetch(`${base}/v1/identity/forget`, {
    method: "POST", headers: { Cookie: `mm=${laptop.token}; mm_consent=0`, "User-Agent": LAPTOP_UA, Origin: base },
  });
  assert.equal(own.status, 200);
  assert.deepEqual(await own.json(), { token: null });
  assert.match(own.headers.get("set-cookie"), /^mm=; Path=\/; Max-Age=0/);
});

test("a backend call retried with its Idempotency-Key is applied once", async () => {
  const ONCE = "59595959595959595959595959595959";
  const call = (minute) => fetch(`${base}/v1/profiles/${ONCE}/events`, {
    method: "POST",
    headers: { Authorization: `Bearer ${BACKEND}`, "Content-Type": "application/json", "Idempotency-Key": "order-4711", "X-MM-Now": at(minute) },
    body: JSON.stringify({ events: [{ name: "store_visit" }], channel: "store" }),
  });
  const first = await call(1400);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("idempotent-replayed"), null);
  const again = await call(1460);
  assert.equal(again.status, 200);
  assert.equal(again.headers.get("idempotent-replayed"), "true");
  assert.deepEqual(await again.json(), await first.json());
  const profile = await profileOf(ONCE, 1461);
  assert.equal(profile.records.find((r) => r.device === "backend:store").visits, 1, "one store visit, not two");
  const bad = await fetch(`${base}/v1/profiles/${ONCE}/events`, {
    method: "POST", headers: { Authorization: `Bearer ${BACKEND}`, "Idempotency-Key": "x".repeat(200) }, body: "{}",
  });
  assert.equal(bad.status, 400);
  // The same key for another call is refused, not answered with the first call's answer.
  const reused = await fetch(`${base}/v1/profiles/${ONCE}/events`, {
    method: "POST",
    headers: { Authorization: `Bearer ${BACKEND}`, "Content-Type": "application/json", "Idempotency-Key": "order-4711", "X-MM-Now": at(1462) },
    body: JSON.stringify({ events: [{ name: "order_completed" }], channel: "store" }),
  });
  assert.equal(reused.status, 422);
  assert.match((await reused.json()).error, /Idempotency-Key/);
  // A day later the key is forgotten: the same call again is a new call.
  const later = await call(1400 + 24 * 60 + 1);
  assert.equal(later.status, 200);
  assert.equal(later.headers.get("idempotent-replayed"), null, "older than 24 hours: not replayed");
});

test("a profile with more devices than it keeps folds the oldest and loses nothing", async () => {
  const MANY = "56565656565656565656565656565656";
  // The first device moves the stage and shows the capped content; 51 more follow,
  // each with its own link (a link links one device).
  const first = device(PHONE_UA);
  await openLink(first, mintLink(MANY, 600), 600);
  assert.equal((await decide(first, 600, "&path=/models/suv")).hero, "drive");
  await landed(MANY, 600, (p) => p.stage === "consideration");
  for (let i = 1; i < 52; i++) {
    const dev = device(LAPTOP_UA);
    await openLink(dev, mintLink(MANY, 600 + i), 600 + i);
    await decide(dev, 600 + i);
  }
  const profile = await profileOf(MANY, 700);
  assert.equal(profile.devices, 52, "folded devices still count");
  assert.equal(profile.records.length, 50, "50 devices kept apart");
  assert.ok(!profile.records.some((r) => r.kind === "mobile"), "the first device was folded");
  assert.equal(profile.stage, "consideration", "its stage is still the person's");
  // The first two devices showed the capped content (2 per week); the folded one's
  // impression still counts, so none of the 50 others showed it.
  assert.equal(profile.state.impressions.drive?.total, 2, "the cap held across 52 devices");
});

test("a profile object that fails, hangs or is late: devices get a 200 on their own state", async () => {
  const FAULTY = "57575757575757575757575757575757";
  const phone = device(PHONE_UA, cli("token", "mint", "--keys", keysFile, "--profile", FAULTY, "--now", at(800)));
  assert.equal((await decide(phone, 800, "&path=/models/suv")).stage, "consideration");
  try {
    for (const [mode, minute] of [["throw", 840], ["hang", 880], ["slow", 920]]) {
      await faults(mode);
      const r = await decide(phone, minute);
      assert.equal(r.stage, "consideration", `${mode}: the device's own state`);
      assert.ok(phone.token.startsWith("v2."), `${mode}: still linked`);
      // The backend is told to retry, never told it worked.
      if (mode !== "slow") {
        const b = await backend("POST", `${FAULTY}/events`, { events: [{ name: "order_completed" }] }, BACKEND, minute);
        assert.equal(b.status, 503, mode);
        assert.equal(b.headers.get("retry-after"), "1");
      }
    }
    assert.match(worker.log(), /profile sync failed/);
  } finally {
    await faults("ok");
  }
  // Healthy again: the sync lands and the profile has the phone.
  await decide(phone, 1000);
  const got = await backend("GET", FAULTY, null, BACKEND, 1001);
  assert.equal(got.status, 200);
  assert.equal((await got.json()).stage, "consideration");
});

test("/v1/bundle reports the profiles' binding and the backend token", async () => {
  const info = await (await fetch(`${base}/v1/bundle`)).json();
  assert.deepEqual(info.profiles, { binding: "ok", backend_token: "ok" });
});
