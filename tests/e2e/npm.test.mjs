// The npm package as a user installs it: the packed tarball (scripts/build-npm.sh) goes
// into a fresh folder with `npm install`, and must give the CLI's answers byte for byte.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRequire } from "node:module";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "target", "debug", "micromoment");
const KEYS = { current: "k1", keys: { k1: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } };
const VISITOR = "0123456789abcdef0123456789abcdef";
let dir, mm, keysFile;

const cli = (...args) => execFileSync(CLI, args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

before(() => {
  const tarball = readdirSync(join(ROOT, "js")).find((f) => /^micromoment-.*\.tgz$/.test(f));
  assert.ok(tarball, "js/micromoment-*.tgz exists (scripts/build-npm.sh)");
  dir = mkdtempSync(join(tmpdir(), "mm-npm-"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", join(ROOT, "js", tarball)], { cwd: dir, stdio: "inherit" });
  mm = createRequire(join(dir, "index.js"))("micromoment");
  keysFile = join(dir, "keys.json");
  writeFileSync(keysFile, JSON.stringify(KEYS));
});

after(() => rmSync(dir, { recursive: true, force: true }));

test("decisions match the CLI's simulate byte for byte", () => {
  const bundle = mm.Bundle.load(readFileSync(join(ROOT, "fixtures", "automotive.mmb")));
  assert.equal(bundle.id, "acme-autos");
  for (const [contextFile, slots, now] of [
    ["suv-shopper-lyon.json", ["hero", "sidebar", "banner"], "2026-11-23T18:00:00Z"],
    ["ev-browser-seattle-evening.json", ["hero", "banner"], "2026-11-24T03:00:00Z"],
    ["app-owner-milan.json", ["push", "app-card"], "2026-11-23T09:30:00Z"],
  ]) {
    const context = JSON.parse(readFileSync(join(ROOT, "fixtures", "contexts", contextFile), "utf8"));
    const options = { context, slots, now, visitor: VISITOR, keys: KEYS, explain: true };
    const js = bundle.decide(options);
    assert.equal(JSON.stringify(JSON.parse(bundle.decideJson(JSON.stringify(options)))), JSON.stringify(js),
      `${contextFile}: decideJson`);
    const fromCli = JSON.parse(cli("simulate", "fixtures/automotive.mmb", "--slots", slots.join(","), "--context",
      `fixtures/contexts/${contextFile}`, "--now", now, "--visitor", VISITOR, "--keys", keysFile, "--explain"));
    assert.equal(JSON.stringify(js), JSON.stringify(fromCli), contextFile);
    // The returning visitor: the token from the first answer, an hour later.
    const later = new Date(Date.parse(now) + 3600_000).toISOString().replace(".000Z", "Z");
    const again = bundle.decide({ context, slots, now: later, token: js.token, keys: KEYS });
    const againCli = JSON.parse(cli("simulate", "fixtures/automotive.mmb", "--slots", slots.join(","), "--context",
      `fixtures/contexts/${contextFile}`, "--now", later, "--token", js.token, "--keys", keysFile));
    assert.equal(JSON.stringify(again), JSON.stringify(againCli), `${contextFile}, returning`);
  }
});

// `decide` reads plainly typed options without JSON (packOptions); everything else goes
// through their JSON. The JSON path (decideJson) is the reference: the same answer, or
// the same error, for every shape of options a caller may pass.
test("options read without JSON mean what their JSON means", () => {
  const bundle = mm.Bundle.load(readFileSync(join(ROOT, "fixtures", "automotive.mmb")));
  const contexts = ["suv-shopper-lyon.json", "ev-browser-seattle-evening.json", "app-owner-milan.json",
    "retail-out-of-stock-manchester.json", "retail-winter-newsletter-leeds.json"]
    .map((f) => JSON.parse(readFileSync(join(ROOT, "fixtures", "contexts", f), "utf8")));
  const base = { visitor: VISITOR, now: "2026-11-23T18:00:00Z" };
  const first = bundle.decide({ ...base, context: contexts[0], keys: KEYS });
  const lyon = contexts[0];
  const cases = [
    ...contexts.map((context) => ({ ...base, context, keys: KEYS })),
    ...contexts.map((context) => ({ ...base, context, keys: JSON.stringify(KEYS), token: first.token, explain: true })),
    { ...base, context: lyon, slots: ["hero", "banner"], keys: KEYS, event: "newsletter_signup" },
    { ...base, context: lyon, slots: [], keys: KEYS },
    { ...base, now: 1795000000000, context: { page: { path: "/models/suv/x", query: { utm_source: "a", "k\u00e9y": "v\u2713" } } } },
    { ...base, context: { geo: { country: null, lat: 45.5, lon: -0.1 }, event: null, prefetch: true, consent: { personalization: false } } },
    { ...base, context: { channel: "app", app: { version: "2.3.0" }, device: { type: "tablet" } }, slots: ["app-card"] },
    { ...base, context: null, token: null, keys: null, slots: null, now: null, state: null, explain: false },
    { ...base, state: { stage: "decision", visits: 3 }, slots: ["hero"] },
    { ...base, context: { geo: { city: "K\u00f6ln \ud83d\ude97" } }, slots: ["hero"] },
    { ...base, token: "", keys: KEYS },
    { ...base, token: "v1.k1.garbage.x", keys: KEYS },
    { ...base, now: new Date("2026-11-23T18:00:00Z") },
    { ...base, context: { geo: { city: "lone \ud800 surrogate" } } },
    { ...base, context: { geo: { city: "nul \u0000 inside" } } },
    // A NUL in any value: the packed string's count of separators no longer holds.
    { ...base, token: "v1.k1.\u0000B.x", keys: KEYS },
    { ...base, slots: ["hero\u0000banner"] },
    { ...base, slots: ["hero", "\u0000"] },
    { ...base, event: "a\u0000eb" },
    { ...base, now: "2026-11-23T18:00:00Z\u0000" },
    { ...base, keys: JSON.stringify(KEYS).replace("k1", "k\u00001") },
    { ...base, context: { page: { query: { "a\u0000Ob": "c", d: "e\u0000Bf" } } } },
    { ...base, context: { page: { path: "/models/\u0000Ball" }, geo: { country: "FR" } } },
    // Each of these is refused; the message is the JSON path's.
    { ...base, context: { channel: "WEB" } },
    { ...base, context: { geo: null } },
    { ...base, context: { geo: { lat: "45.7" } } },
    { ...base, context: { geo: { country: 33 } } },
    { ...base, context: { geo: { contry: "FR" } } },
    { ...base, context: { page: { query: null } } },
    { ...base, context: { consent: { personalization: "yes" } } },
    { ...base, context: { prefetch: null } },
    { ...base, explain: null },
    { ...base, slots: "hero" },
    { ...base, slots: ["heor"] },
    { ...base, now: Number.NaN },
    { ...base, now: "yesterday" },
    { ...base, visitor: "not-hex" },
    { ...base, keys: { current: "k9", keys: {} } },
    { ...base, keys: 42 },
    { ...base, keys: { current: "k1", keys: { k1: "\ud800" } } },
    { ...base, state: { stage: "\udc00" }, slots: ["hero"] },
    { ...base, slotz: [] },
  ];
  const viaJson = (options) => {
    try {
      return JSON.stringify(JSON.parse(bundle.decideJson(JSON.stringify(options))));
    } catch (e) {
      return `error: ${e.message}`;
    }
  };
  const direct = (options) => {
    try {
      return JSON.stringify(bundle.decide(options));
    } catch (e) {
      return `error: ${e.message}`;
    }
  };
  let refused = 0;
  // Twice, in turn: the answers' strings come from a table the first round fills.
  for (let round = 0; round < 2; round++) {
    for (const [i, options] of cases.entries()) {
      const expected = viaJson(options);
      assert.equal(direct(options), expected, `case ${i}: ${JSON.stringify(options)}`);
      if (round === 0 && expected.startsWith("error: ")) refused++;
    }
  }
  assert.ok(refused >= 15, `the refused cases are refused (${refused})`);
  // The keys object remembered across calls: changed in place, it is read again.
  const keys = { current: "k1", keys: { ...KEYS.keys } };
  const signed = bundle.decide({ ...base, keys });
  keys.keys.k2 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
  keys.current = "k2";
  const rotated = bundle.decide({ ...base, keys });
  assert.match(signed.token, /^v1\.k1\./);
  assert.match(rotated.token, /^v1\.k2\./, "the key written in place signs");
  assert.equal(rotated.token, JSON.parse(bundle.decideJson(JSON.stringify({ ...base, keys }))).token);
  // Keys the handle holds are sent by number, not as text: two documents with the same
  // key id and different secrets, as objects and as strings, in turn, with calls that
  // take the JSON path (a Date) in between, each sign with their own secret.
  const one = { current: "k1", keys: { k1: KEYS.keys.k1 } };
  const other = { current: "k1", keys: { k1: "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=" } };
  const order = [one, one, other, other, JSON.stringify(one), one, other, JSON.stringify(other), one];
  const tokens = new Set();
  for (const [i, k] of order.entries()) {
    for (const now of [base.now, new Date(base.now), base.now]) {
      const options = { ...base, now, keys: k, context: lyon };
      const expected = JSON.parse(bundle.decideJson(JSON.stringify(options))).token;
      assert.equal(bundle.decide(options).token, expected, `keys ${i}, now ${now}`);
      tokens.add(expected);
    }
  }
  assert.equal(tokens.size, 2, "the two secrets sign two different tokens");
});

test("tokens minted in Node verify in the CLI, and the other way round", () => {
  const token = mm.mintToken({ keys: KEYS, stage: "decision", segments: ["vip"], visitor: VISITOR });
  const inspected = JSON.parse(cli("token", "inspect", token, "--keys", keysFile));
  assert.equal(inspected.visitor, VISITOR);
  assert.deepEqual(inspected.segments, ["vip"]);
  const fromCli = cli("token", "mint", "--keys", keysFile, "--stage", "purchase", "--visitor", VISITOR).trim();
  const state = mm.inspectToken(fromCli, KEYS);
  assert.equal(state.visitor, VISITOR);
  assert.deepEqual(state, JSON.parse(cli("token", "inspect", fromCli, "--keys", keysFile)));
  assert.throws(() => mm.inspectToken(fromCli.slice(0, -2) + "AA", KEYS), Error);
});

test("linked tokens and identity links minted in Node verify in the CLI, and the other way round", () => {
  const PROFILE = "51515151515151515151515151515151";
  const now = "2026-12-02T10:00:00Z";
  const token = mm.mintToken({ keys: KEYS, profile: PROFILE, visitor: VISITOR, now });
  assert.match(token, /^v2\./, "a linked device's token is v2");
  const inspected = JSON.parse(cli("token", "inspect", token, "--keys", keysFile, "--now", now));
  assert.deepEqual(inspected.link, { profile: PROFILE, seq: 0, devices: 1, linked_at: { unix: Date.parse(now) / 1000, rfc3339: now } });
  const fromCli = cli("token", "mint", "--keys", keysFile, "--profile", PROFILE, "--visitor", VISITOR, "--now", now).trim();
  assert.deepEqual(mm.inspectToken(fromCli, KEYS, now), inspected);
  assert.throws(() => mm.mintToken({ keys: KEYS, profile: "00000000000000000000000000000000" }),
    { message: "profile: the all-zero id is not a profile" });

  const link = mm.mintLink({ keys: KEYS, profile: PROFILE, campaign: "spring-service", now, ttlSeconds: 86400 });
  assert.match(link, /^l1\.k1\./);
  const seen = JSON.parse(cli("link", "inspect", link, "--keys", keysFile, "--now", now));
  assert.match(seen.id, /^[0-9a-f]{32}$/, "each link has its own random id");
  assert.deepEqual({ ...seen, id: undefined },
    { profile: PROFILE, id: undefined, issued_at: now, expires_at: "2026-12-03T10:00:00Z", campaign: "spring-service" });
  const cliLink = JSON.parse(cli("link", "mint", "--keys", keysFile, "--profile", PROFILE, "--ttl", "1d", "--campaign", "spring-service", "--now", now, "--json"));
  assert.notEqual(cliLink.id, seen.id, "two links, two ids");
  assert.deepEqual(mm.inspectLink(cliLink.link, KEYS, now),
    { profile: PROFILE, id: cliLink.id, issuedAt: now, expiresAt: "2026-12-03T10:00:00Z", campaign: "spring-service" });
  // Without a ttl, a link works for 12 hours.
  const short = mm.inspectLink(mm.mintLink({ keys: KEYS, profile: PROFILE, now }), KEYS, now);
  assert.equal(short.expiresAt, "2026-12-02T22:00:00Z");
  assert.throws(() => mm.inspectLink(link, KEYS, "2026-12-04T00:00:00Z"), /expired/);
  assert.throws(() => mm.mintLink({ keys: KEYS, profile: PROFILE, ttlSeconds: 31 * 86400 }), /at most 30 days/);
  // A token is not a link, nor a link a token: each has its own tag domain.
  assert.throws(() => mm.inspectLink(token, KEYS, now), Error);
  assert.throws(() => mm.inspectToken(link, KEYS, now), Error);
});

test("joinTokens joins two devices' journeys as a profile does", () => {
  const bundle = mm.Bundle.load(readFileSync(join(ROOT, "fixtures", "automotive.mmb")));
  const now = "2026-11-23T18:00:00Z";
  const phone = bundle.mintToken({ keys: KEYS, stage: "decision", visitor: VISITOR, now });
  const context = JSON.parse(readFileSync(join(ROOT, "fixtures", "contexts", "suv-shopper-lyon.json"), "utf8"));
  const laptop = bundle.decide({ context, slots: ["hero", "sidebar"], now, visitor: "fedcba9876543210fedcba9876543210", keys: KEYS });
  const joined = bundle.inspectToken(bundle.joinTokens(phone, laptop.token, KEYS, now), KEYS, now);
  assert.equal(joined.visitor, VISITOR, "the first token's device");
  assert.equal(joined.stage, "decision", "the furthest stage");
  const shown = Object.keys(bundle.inspectToken(laptop.token, KEYS, now).impressions);
  assert.ok(shown.length > 0);
  assert.deepEqual(Object.keys(joined.impressions).sort(), shown.sort(), "the laptop's impressions");
  assert.equal(joined.visits, 1, "the laptop's visit; the minted phone has none");
  // The same device's two tokens: the fresher one.
  const later = bundle.decide({ context, slots: ["hero"], now: "2026-11-23T19:00:00Z", token: laptop.token, keys: KEYS });
  const same = bundle.inspectToken(bundle.joinTokens(laptop.token, later.token, KEYS, "2026-11-23T19:00:00Z"), KEYS, "2026-11-23T19:00:00Z");
  assert.equal(same.visits, bundle.inspectToken(later.token, KEYS, "2026-11-23T19:00:00Z").visits);
  assert.throws(() => bundle.joinTokens(phone, "v1.k1.x.y", KEYS, now), /second/);
});

test("a bundle names a token's state and checks the stage it mints", () => {
  const bundle = mm.Bundle.load(readFileSync(join(ROOT, "fixtures", "automotive.mmb")));
  assert.throws(() => bundle.mintToken({ keys: KEYS, stage: "decison" }),
    { message: 'stage: "decison" is not a stage of acme-autos 7 (did you mean "decision"?)' });
  const token = bundle.mintToken({ keys: KEYS, stage: "decision", visitor: VISITOR });
  const named = bundle.inspectToken(token, KEYS);
  assert.equal(named.stage, "decision");
  assert.deepEqual(named, JSON.parse(cli("token", "inspect", token, "--keys", keysFile, "--bundle", "fixtures/automotive.json")));
  // Without the bundle, the state is by stable ids, as the CLI prints it then.
  assert.equal(typeof mm.inspectToken(token, KEYS).stage, "number");
});

test("pages are personalized in one pass, as the Worker's proxy does", () => {
  const bundle = mm.Bundle.load(readFileSync(join(ROOT, "fixtures", "automotive.mmb")));
  const context = JSON.parse(readFileSync(join(ROOT, "fixtures", "contexts", "suv-shopper-lyon.json"), "utf8"));
  const page = `<!doctype html><html><body><aside data-mm-slot="sidebar">origin sidebar</aside>
<div data-mm-slot="hero">origin hero</div><div data-mm-slot="nowhere">kept</div><p>Köln ✓</p></body></html>`;
  const options = { context, now: "2026-11-23T18:00:00Z", visitor: VISITOR, keys: KEYS };
  const filled = bundle.personalize(page, options);
  // The same decisions, in document order, as deciding those slots directly.
  const direct = bundle.decide({ ...options, slots: ["sidebar", "hero"] });
  assert.deepEqual(filled.decisions, direct.decisions);
  assert.equal(filled.token, direct.token);
  assert.deepEqual(filled.state, direct.state);
  assert.equal(typeof filled.html, "string");
  for (const d of filled.decisions) {
    assert.ok(filled.html.includes(`data-mm-slot="${d.slot}" data-mm-content="${d.content}">${d.html}<`), d.slot);
  }
  assert.ok(filled.html.includes('<div data-mm-slot="nowhere">kept</div><p>Köln ✓</p>'));
  // Bytes in, bytes out (a page in any encoding passes through as it is).
  const bytes = bundle.personalize(new TextEncoder().encode(page), options);
  assert.ok(bytes.html instanceof Uint8Array);
  assert.equal(new TextDecoder().decode(bytes.html), filled.html);
  // Nothing the bundle knows: null, serve the page as it is.
  assert.equal(bundle.personalize("<p>no slots</p>", options), null);
  assert.throws(() => bundle.personalize(page, { slots: ["hero"] }), /a page names its own slots/);
});

test("errors are JS Errors with the engine's message", () => {
  assert.throws(() => mm.Bundle.compile("{}"), /missing required field/);
  assert.throws(() => mm.Bundle.load(new Uint8Array([1, 2, 3])), /not a micromoment bundle/);
  const bundle = mm.Bundle.load(readFileSync(join(ROOT, "fixtures", "automotive.mmb")));
  assert.throws(() => bundle.decide({ slots: ["heor"] }), /unknown slot "heor" \(did you mean "hero"\?\)/);
  assert.throws(() => bundle.decide({ slotz: [] }), /unknown field `slotz`/);
  assert.equal(mm.evalRule({ glob: [{ var: "page.path" }, "/models/**"] }, { page: { path: "/models/suv/x5" } }), true);
});

test("the ES module build runs in any runtime that has WebAssembly", async () => {
  const web = await import(pathToFileURL(join(dir, "node_modules", "micromoment", "web", "micromoment.js")));
  await web.default({ module_or_path: readFileSync(join(dir, "node_modules", "micromoment", "web", "micromoment_bg.wasm")) });
  const bundle = web.Bundle.load(readFileSync(join(ROOT, "fixtures", "automotive.mmb")));
  const answer = bundle.decide({ slots: ["hero"], visitor: VISITOR, now: 1795000000000 });
  assert.equal(answer.decisions[0].content, "brand-film");
  assert.equal(answer.token, null, "no keys, no token");
});
