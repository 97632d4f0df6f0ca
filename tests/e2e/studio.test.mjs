// The studio as a marketer uses it (issue "The studio…", docs/studio.md): the edge with
// the demo site and the studio under wrangler dev on one local KV, the studio driven in
// headless Chromium by roles and labels only, with zero JSON edits: create a content,
// offer it in a slot, turn a default into an experiment, preview, see the impact,
// publish (the edge serves it), roll back (the edge serves the previous version), and
// an invalid edit shown at its field with publishing refused. Every screen is
// screenshotted into target/studio-screenshots.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, createSign } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, KEYS, cli, startWorker, startStudio, launchChromium, tempDir, cleanup, eventually } from "./harness.mjs";

const SHOTS = join(ROOT, "target", "studio-screenshots");
let dir, edge, studio, browser, signing;

function ed25519() {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    seed: privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32).toString("base64"),
    pub: publicKey.export({ format: "der", type: "spki" }).subarray(-32).toString("base64"),
  };
}

before(async () => {
  dir = tempDir("studio");
  mkdirSync(SHOTS, { recursive: true });
  const key = ed25519();
  signing = key;
  edge = await startWorker({ dir, vars: { MM_DEV: "1", MM_BUNDLE_RECHECK_SECS: "1", BUNDLE_PUBKEY: key.pub, JOURNEY_KEYS: JSON.stringify(KEYS) } });
  studio = await startStudio({
    dir, persist: edge.persist,
    vars: { MM_DEV: "1", EDGE_URL: edge.base, MM_SIGNING_KEY: key.seed, BUNDLE_PUBKEY: key.pub, MM_SESSION_KEY: Buffer.alloc(32, 7).toString("base64") },
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await studio?.stop();
  await edge?.stop();
  cleanup(dir);
});

async function served() {
  return (await (await fetch(`${edge.base}/v1/bundle`)).json());
}

/** The edge's demo page as a visitor from Lyon, France, on a phone, a new visitor each time. */
async function lyonPage(path = "/models/") {
  const page = await browser.newPage({
    viewport: { width: 390, height: 844 },
    extraHTTPHeaders: { "X-MM-Geo-Country": "FR", "X-MM-Geo-City": "Lyon", "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1" },
  });
  await page.goto(`${edge.base}${path}`);
  return page;
}

test("a marketer builds, previews, publishes and rolls back in the studio, with no JSON", async (t) => {
  const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // Each screen as the person sees it: the part of the page the step is about, in view.
  const shot = async (name, at) => {
    if (at) await at.first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, `${name}.png`) });
  };

  // The demo site before: the edge's embedded bundle, version 7.
  assert.equal((await served()).version, 7);
  const before = await lyonPage();
  const heroBefore = await before.locator('[data-mm-slot="hero"]').innerText();
  assert.doesNotMatch(heroBefore, /winter tyres/i);
  await before.close();

  await page.goto(studio.base);
  await page.getByLabel("Your name").fill("Mara Lopez");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Start from the example bundle" }).click();
  await page.getByRole("tab", { name: "Slots" }).waitFor();
  await page.getByText("No problems: the draft compiles.").waitFor();

  await t.test("1. create the content winter-tyres with the city placeholder", async () => {
    await page.getByRole("tab", { name: "Contents" }).click();
    await page.getByLabel("New content name").fill("winter-tyres");
    await page.getByRole("button", { name: "Create content" }).click();
    const content = page.getByRole("group", { name: "Content winter-tyres" });
    await content.getByLabel("Description").fill("Winter tyres, for the cold months");
    const editor = content.getByRole("textbox", { name: "HTML rendition" });
    await editor.click();
    await page.keyboard.insertText('<section class="mm-hero"><h1>Winter tyres fitted in ');
    await content.getByLabel("Placeholder").selectOption("geo.city");
    await content.getByRole("button", { name: "Insert placeholder" }).click();
    await page.keyboard.insertText(" from €299</h1></section>");
    await assert.doesNotReject(content.getByText("{{geo.city}}").first().waitFor());
    const frame = page.frameLocator('iframe[title="Rendered preview of winter-tyres"]');
    await frame.getByText("Winter tyres fitted in").waitFor();
    await shot("1-content");
  });

  await t.test("2. offer it in hero to consideration or decision visitors from FR or DE, capped 3 per 7 days, first", async () => {
    await page.getByRole("tab", { name: "Slots" }).click();
    await page.getByRole("button", { name: "Add candidate to hero" }).click();
    await page.getByLabel("Candidate id").fill("hero-winter-tyres");
    await page.getByLabel("Content", { exact: true }).selectOption("winter-tyres");
    const stages = page.getByRole("group", { name: "Stages (none: every stage)" });
    await stages.getByLabel("consideration").check();
    await stages.getByLabel("decision").check();
    const when = page.getByRole("group", { name: "When" });
    await when.getByRole("button", { name: "Add condition" }).click();
    const condition = when.getByRole("group", { name: "Condition 1" });
    await condition.getByLabel("Variable").selectOption("geo.country");
    await condition.getByLabel("Operator").selectOption({ label: "is one of" });
    await condition.getByLabel("Values (comma-separated)").fill("FR, DE");
    await condition.getByLabel("Values (comma-separated)").press("Tab");
    await page.getByLabel("At most (impressions)").fill("3");
    await page.getByLabel("Per", { exact: true }).fill("7");
    await page.getByLabel("Period unit").selectOption({ label: "days" });
    // Above the existing candidates, from the keyboard: moved up past each of them.
    const list = page.getByRole("list", { name: "Candidates of hero" });
    const up = page.getByRole("button", { name: "Move hero-winter-tyres up" });
    while (await up.isEnabled()) await up.click();
    await list.getByRole("listitem").first()
      .getByText("hero-winter-tyres: winter-tyres · consideration, decision · priority 60").waitFor();
    await page.getByText("No problems: the draft compiles.").waitFor();
    await shot("2-slot", page.getByRole("heading", { name: "Slot hero" }));
  });

  await t.test("3. the sidebar default becomes an experiment of two contents, 50/50, 10 % holdout", async () => {
    await page.getByRole("button", { name: "Turn the default of sidebar into an experiment" }).click();
    const experiment = page.getByRole("group", { name: "Variant 2" });
    await experiment.getByLabel("Variant 2 content").selectOption("configurator-teaser");
    assert.equal(await page.getByLabel("Variant 1 weight").inputValue(), "50");
    assert.equal(await page.getByLabel("Variant 2 weight").inputValue(), "50");
    await page.getByLabel("Holdout (%)").fill("10");
    await page.getByText("10 % held out: they see the default").waitFor();
    assert.equal(await page.getByText("45 % of visitors").count(), 2);
    await page.getByText("No problems: the draft compiles.").waitFor();
    await shot("3-experiment", page.getByRole("group", { name: "Variant 1" }));
  });

  await t.test("4. preview as decision, mobile, Lyon, FR: the hero shows winter-tyres with Lyon", async () => {
    await page.getByRole("tab", { name: "Preview" }).click();
    const audience = page.getByRole("form", { name: "Audience" });
    await audience.getByLabel("Stage").selectOption("decision");
    await audience.getByLabel("Device").selectOption("mobile");
    await audience.getByLabel("Country (ISO code)").fill("FR");
    await audience.getByLabel("City").fill("Lyon");
    const hero = page.getByRole("article", { name: "Slot hero" });
    await hero.getByRole("heading", { name: "hero: winter-tyres" }).waitFor();
    await hero.getByText("chosen by hero-winter-tyres").waitFor();
    await page.frameLocator('iframe[title="Slot hero as shown"]').getByText("Winter tyres fitted in Lyon from €299").waitFor();
    await hero.getByText("Why (trace of hero)").click();
    await hero.getByText("hero-winter-tyres (priority 60): eligible: shows winter-tyres").waitFor();
    // The demo page itself, decided with the draft for this audience (scrolled to, as a
    // person does: Chromium paints a sandboxed frame once it is in view).
    await page.getByRole("heading", { name: "The page, decided for this audience with the draft" }).scrollIntoViewIfNeeded();
    await page.locator('iframe[title="Site page with the draft"]').scrollIntoViewIfNeeded();
    // (Its text, not its visibility: Chromium lays out a sandboxed frame's document in
    // another process, and reports it hidden until that process has painted it.)
    const site = page.frameLocator('iframe[title="Site page with the draft"]');
    await site.locator('[data-mm-slot="hero"]').getByText("Winter tyres fitted in Lyon from €299").waitFor({ state: "attached" });
    await page.getByRole("button", { name: "Show the coverage matrix" }).click();
    await page.getByRole("table", { name: "Coverage of hero" }).waitFor();
    await shot("4-preview", page.getByRole("article", { name: "Slot hero" }));
  });

  await t.test("5. the impact: the cells that change", async () => {
    await page.getByRole("tab", { name: "Publish" }).click();
    const changes = page.getByRole("list", { name: "Changes" });
    await changes.getByText("content · winter-tyres: added").waitFor();
    await changes.getByText("hero · hero-winter-tyres: added (1st)").waitFor();
    await page.getByRole("button", { name: "Show who will see something different" }).click();
    const hero = page.getByRole("table", { name: "Audiences that see something different in hero" });
    await hero.waitFor();
    const rows = await hero.getByRole("row").allInnerTexts();
    for (const country of ["FR", "DE"]) {
      assert.ok(rows.some((r) => new RegExp(`^decision\tmobile/web\t(.*, )?geo\\.country = ${country}(, .*)?\t.+\twinter-tyres$`).test(r)), rows.slice(0, 5).join("\n"));
    }
    const others = rows.slice(1).filter((r) => !(/geo\.country = (FR|DE)/.test(r) && /^(consideration|decision)\t/.test(r) && /\twinter-tyres$/.test(r)));
    assert.deepEqual(others, [],
      "only consideration and decision visitors from FR or DE get the new hero");
    const sidebar = await page.getByRole("table", { name: "Audiences that see something different in sidebar" }).getByRole("row").allInnerTexts();
    assert.ok(sidebar.some((r) => /model-range 55 % · configurator-teaser 45 %$/.test(r)), "the sidebar's split (45 % each, the holdout on the default)");
    await shot("5-impact", page.getByRole("heading", { name: "Who will see something different" }));
  });

  await t.test("6. publish: the edge serves version 8 and the demo page shows the new hero", async () => {
    await page.getByLabel("Publish message").fill("Winter tyres for France and Germany");
    const started = Date.now();
    await page.getByRole("button", { name: "Publish", exact: true }).click();
    await page.getByText(/Published version 8/).waitFor();
    await eventually(async () => (await served()).version === 8, 30_000, () => "the edge's /v1/bundle shows version 8");
    console.log(`# publish to served: ${Date.now() - started} ms (MM_BUNDLE_RECHECK_SECS=1)`);
    const body = await served();
    assert.equal(body.source, "kv");
    const visitor = await lyonPage();
    await visitor.getByText("Winter tyres fitted in Lyon from €299").waitFor();
    await visitor.screenshot({ path: join(SHOTS, "6-demo-site.png") });
    await visitor.close();
    await shot("6-published");
  });

  await t.test("7. roll back: the edge serves version 7 again", async () => {
    await page.getByRole("tab", { name: "History" }).click();
    const versions = page.getByRole("table", { name: "Published versions" });
    await versions.getByRole("row", { name: /starting document/ }).waitFor();
    await page.getByRole("button", { name: "Roll back to version 7" }).click();
    await page.getByText("The edge is told to serve version 7 again.").waitFor();
    let last;
    await eventually(async () => (last = await served()).version === 7, 30_000,
      () => `the edge serves version 7; its health: ${JSON.stringify(last?.health)}`);
    const visitor = await lyonPage();
    assert.doesNotMatch(await visitor.locator('[data-mm-slot="hero"]').innerText(), /winter tyres/i);
    await visitor.close();
    await versions.getByRole("row", { name: /rolled back to/ }).waitFor();
    await shot("7-rolled-back");
  });

  await t.test("8. an invalid edit is shown at its field, and publishing is refused", async () => {
    await page.getByRole("tab", { name: "Slots" }).click();
    const sidebarDefault = page.locator('[id="f:slots.sidebar.default"]');
    await sidebarDefault.selectOption({ label: "none" });
    await page.getByText('slot "sidebar" has no default content').first().waitFor();
    assert.equal(await sidebarDefault.getAttribute("aria-invalid"), "true");
    await page.getByRole("button", { name: "Edit hero-test-drive" }).click();
    await page.getByLabel("At most (impressions)").fill("0");
    await page.getByText("expected a whole number of impressions, at least 1").first().waitFor();
    await shot("8-invalid", page.getByText("expected a whole number of impressions, at least 1"));
    await page.getByRole("tab", { name: "Publish" }).click();
    await page.getByText("Publishing is refused: the draft has 2 problems.").waitFor();
    assert.equal(await page.getByRole("button", { name: "Publish", exact: true }).isDisabled(), true);
    // The studio's API refuses it too, for a client that skips the page's check.
    await page.getByRole("button", { name: "Save revision" }).click();
    await page.getByText(/Saved as revision/).waitFor();
    const refused = await page.evaluate(async () => {
      const { head } = await (await fetch("/api/workspace")).json();
      const r = await fetch("/api/publish", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ revision: head.id }) });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(refused.status, 422);
    assert.ok(refused.body.diagnostics.some((d) => d.path === "slots.sidebar"));
    assert.equal((await served()).version, 7);
    await shot("8-refused");
  });

  await t.test("candidates are reordered by dragging too", async () => {
    await page.reload();
    await page.getByRole("tab", { name: "Slots" }).click();
    const list = page.getByRole("list", { name: "Candidates of sidebar" });
    await page.getByTitle("Drag sidebar-winter-check to reorder")
      .dragTo(list.getByRole("listitem").first(), { targetPosition: { x: 20, y: 2 } });
    await list.getByRole("listitem").first().getByText(/^sidebar-winter-check: winter-check · priority 40$/).waitFor();
  });

  assert.deepEqual(errors, []);
  await page.close();
});

test("the edge serves the demo site when ORIGIN is empty, personalized like any page", async () => {
  const home = await fetch(`${edge.base}/`);
  assert.equal(home.status, 200);
  assert.equal(home.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(home.headers.get("cache-control"), "private, no-store");
  assert.match(home.headers.get("vary") ?? "", /Cookie/);
  assert.match(home.headers.get("set-cookie") ?? "", /^mm=[^;]+;/, "a journey token");
  const body = await home.text();
  assert.match(body, /data-mm-slot="hero" data-mm-content="[a-z-]+"/);
  assert.match(body, /data-mm-slot="sidebar" data-mm-content="[a-z-]+"/);
  // A model page moves the visitor along the journey, as the bundle's transitions say.
  const token = home.headers.get("set-cookie").split(";")[0];
  const model = await fetch(`${edge.base}/models/suv/terra`, { headers: { Cookie: token } });
  assert.equal(model.status, 200);
  const decided = await (await fetch(`${edge.base}/v1/decide?slots=hero`, { headers: { Cookie: model.headers.get("set-cookie").split(";")[0] } })).json();
  assert.equal(decided.stage, "consideration");
  assert.equal((await fetch(`${edge.base}/no-such-page`)).status, 404);
  assert.equal((await fetch(`${edge.base}/`, { method: "POST", body: "x" })).status, 405);
});

/** A signed-in session's cookie for API calls, as the sign-in page gets it. */
async function session(name = "Api Tester") {
  const r = await fetch(`${studio.base}/api/login`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }),
  });
  assert.equal(r.status, 200);
  const cookie = r.headers.get("set-cookie");
  assert.match(cookie, /^mm_studio=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
  return cookie.split(";")[0];
}

test("the studio refuses strangers, cross-site requests and oversized bodies, and sends its policy", async () => {
  const anonymous = await fetch(`${studio.base}/api/workspace`);
  assert.equal(anonymous.status, 401);
  const page = await fetch(`${studio.base}/`, { redirect: "manual" });
  assert.equal(page.status, 302);
  assert.equal(new URL(page.headers.get("location")).pathname, "/login");
  const forged = await fetch(`${studio.base}/api/workspace`, { headers: { Cookie: "mm_studio=eyJuYW1lIjoiRXZlIiwiZXhwIjo5OTk5OTk5OTk5fQ.AAAA" } });
  assert.equal(forged.status, 401, "a cookie the studio did not sign");

  const cookie = await session();
  const save = (headers, body = JSON.stringify({ doc: "{}", message: "x", parent: null })) =>
    fetch(`${studio.base}/api/revisions`, { method: "POST", headers: { Cookie: cookie, ...headers }, body });
  assert.equal((await save({ "Content-Type": "application/json", Origin: "https://evil.example" })).status, 403);
  assert.equal((await save({ "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site" })).status, 403);
  assert.equal((await save({ "Content-Type": "text/plain" })).status, 403, "a form or a no-preflight fetch cannot post");
  const login = await fetch(`${studio.base}/api/login`, {
    method: "POST", headers: { "Content-Type": "application/json", Origin: "https://evil.example" }, body: JSON.stringify({ name: "Eve" }),
  });
  assert.equal(login.status, 403, "no sign-in from another site");
  const big = await save({ "Content-Type": "application/json" }, JSON.stringify({ doc: "x".repeat(5 * 1024 * 1024) }));
  assert.equal(big.status, 413);
  assert.equal((await save({ "Content-Type": "application/json" }, "not json")).status, 400);
  const deep = await save({ "Content-Type": "application/json" }, JSON.stringify({ doc: "[".repeat(100) + "]".repeat(100), parent: null }));
  assert.equal(deep.status, 400);
  assert.match((await deep.json()).error, /nests at most 64 levels/);
  const list = await save({ "Content-Type": "application/json" }, JSON.stringify({ doc: "[]", parent: null }));
  assert.equal(list.status, 400, "a bundle is a JSON object");
  const away = await fetch(`${studio.base}/api/edge/page?path=${encodeURIComponent("//evil.example/")}`, { headers: { Cookie: cookie } });
  assert.equal(away.status, 400, "the preview reads the edge's pages only");

  const me = await fetch(`${studio.base}/api/me`, { headers: { Cookie: cookie } });
  assert.equal(me.headers.get("content-type"), "application/json; charset=utf-8");
  assert.equal(me.headers.get("cache-control"), "no-store");
  const logout = await fetch(`${studio.base}/api/logout`, { method: "POST", headers: { Cookie: cookie, "Content-Type": "application/json" }, body: "{}" });
  assert.match(logout.headers.get("set-cookie"), /^mm_studio=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/);
  const crossLogout = await fetch(`${studio.base}/api/logout`, { method: "POST", headers: { Cookie: cookie, "Content-Type": "application/json", Origin: "https://evil.example" }, body: "{}" });
  assert.equal(crossLogout.status, 403, "no logout from another site");
  for (const path of ["/", "/login"]) {
    const r = await fetch(`${studio.base}${path}`, { headers: { Cookie: cookie } });
    assert.equal(r.status, 200, path);
    assert.match(r.headers.get("content-type"), /^text\/html/, path);
    const csp = r.headers.get("content-security-policy");
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(r.headers.get("x-content-type-options"), "nosniff");
    assert.equal(r.headers.get("x-frame-options"), "DENY");
    assert.equal(r.headers.get("cache-control"), "no-store");
  }
});

test("content HTML runs nothing in the studio: previews are sandboxed frames", async () => {
  const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  await page.goto(`${studio.base}/login`);
  await page.getByLabel("Your name").fill("Mallory");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("tab", { name: "Contents" }).click();
  await page.getByLabel("New content name").fill("xss-probe");
  await page.getByRole("button", { name: "Create content" }).click();
  await page.getByRole("textbox", { name: "HTML rendition" }).click();
  await page.keyboard.insertText(`<h2>probe</h2><img src="x" onerror="parent.document.title='pwned';alert(1)"><script>parent.document.title='pwned';alert(2)</script>`);
  const frame = page.locator('iframe[title="Rendered preview of xss-probe"]');
  await frame.scrollIntoViewIfNeeded();
  await page.frameLocator('iframe[title="Rendered preview of xss-probe"]').getByRole("heading", { name: "probe" }).waitFor();
  assert.equal(await frame.getAttribute("sandbox"), "");
  for (const f of await page.locator("iframe").all()) assert.equal(await f.getAttribute("sandbox"), "", "every frame is sandboxed");
  assert.equal(await page.title(), "micromoment studio");
  assert.deepEqual(dialogs, []);
  await page.close();
});

test("in production the studio takes only Cloudflare Access's signed assertions", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: "jwk" }), kid: "k1", alg: "RS256", use: "sig" };
  const team = "acme.cloudflareaccess.com";
  const aud = "3f1c0ffee";
  const prod = await startStudio({
    dir, persist: edge.persist,
    vars: { MM_DEV: "0", EDGE_URL: edge.base, ACCESS_TEAM_DOMAIN: team, ACCESS_AUD: aud, ACCESS_JWKS: JSON.stringify({ keys: [jwk] }) },
  });
  try {
    const b64 = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const jwt = (claims, { key = privateKey, header = { alg: "RS256", kid: "k1", typ: "JWT" } } = {}) => {
      const head = `${b64(header)}.${b64({ aud: [aud], iss: `https://${team}`, email: "mara@acme.example", iat: now, exp: now + 600, ...claims })}`;
      const sig = createSign("RSA-SHA256").update(head).sign(key).toString("base64url");
      return `${head}.${sig}`;
    };
    const me = (token) => fetch(`${prod.base}/api/me`, { headers: token ? { "Cf-Access-Jwt-Assertion": token } : {} });
    const good = await me(jwt({}));
    assert.equal(good.status, 200);
    assert.deepEqual(await good.json(), { name: "mara@acme.example", via: "access", dev: false });
    assert.equal((await me(null)).status, 401);
    assert.equal((await me(jwt({ aud: ["another-app"] }))).status, 401, "another application's audience");
    assert.equal((await me(jwt({ iss: "https://evil.cloudflareaccess.com" }))).status, 401, "another team");
    assert.equal((await me(jwt({ exp: now - 3600 }))).status, 401, "expired");
    assert.equal((await me(jwt({}, { key: other.privateKey }))).status, 401, "signed by a key not the team's");
    assert.equal((await me(jwt({}, { header: { alg: "none", kid: "k1" } }))).status, 401, "alg none");
    assert.equal((await me(`${jwt({}).split(".").slice(0, 2).join(".")}.`)).status, 401, "no signature");
    assert.equal((await me("not.a.jwt")).status, 401);
    // No development sign-in in production.
    const login = await fetch(`${prod.base}/api/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{\"name\":\"Eve\"}" });
    assert.equal(login.status, 404);
  } finally {
    await prod.stop();
  }
});

test("micromoment rollback serves a version the studio published, from a terminal", async () => {
  // After the task set the edge serves 7 again (rolled back in the studio); 8 is in KV.
  const out = JSON.parse(cli("rollback", "--id", "acme-autos", "--to", "8", "--local", "--persist-to", edge.persist));
  assert.equal(out.version, 8);
  await eventually(async () => (await served()).version === 8, 30_000, () => "the edge's /v1/bundle shows version 8");
  assert.throws(() => cli("rollback", "--id", "acme-autos", "--to", "12", "--local", "--persist-to", edge.persist),
    /acme-autos 12 was never published here/);
  assert.equal((await served()).version, 8);
});

test("a scheduled candidate shows only inside its window, as the edge's clock says", async () => {
  const cookie = await session("Sched Uler");
  const api = async (path, body) => {
    const r = await fetch(`${studio.base}${path}`, {
      method: body ? "POST" : "GET", headers: { Cookie: cookie, "Content-Type": "application/json" }, body: body && JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  };
  const example = JSON.parse(readFileSync(join(ROOT, "fixtures", "automotive.json"), "utf8"));
  example.slots.hero.candidates.unshift({
    id: "hero-christmas", content: "suv-teaser", priority: 100,
    schedule: { from: "2026-12-20T00:00:00Z", until: "2026-12-27T00:00:00Z" },
  });
  const { body: overview } = await api("/api/workspace");
  const saved = await api("/api/revisions", { doc: JSON.stringify(example), message: "Christmas hero", parent: overview.head.id });
  assert.equal(saved.status, 201, JSON.stringify(saved.body));
  const published = await api("/api/publish", { revision: saved.body.revision.id, message: "Christmas" });
  assert.equal(published.status, 200, JSON.stringify(published.body));
  await eventually(async () => (await served()).version === published.body.version, 30_000, () => "the edge serves the scheduled bundle");
  const hero = async (now) => {
    const r = await fetch(`${edge.base}/v1/decide?slots=hero`, { headers: { "X-MM-Now": now } });
    return (await r.json()).decisions[0];
  };
  assert.equal((await hero("2026-12-19T23:59:59Z")).candidate, null, "before: the default");
  assert.equal((await hero("2026-12-20T00:00:00Z")).candidate, "hero-christmas");
  assert.equal((await hero("2026-12-26T23:59:59Z")).content, "suv-teaser");
  assert.notEqual((await hero("2026-12-27T00:00:00Z")).candidate, "hero-christmas", "until is excluded");
  // The studio shows the window on the candidate.
  const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
  await page.goto(`${studio.base}/login`);
  await page.getByLabel("Your name").fill("Sched Uler");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("tab", { name: "Slots" }).click();
  await page.getByText("hero-christmas: suv-teaser · scheduled from 2026-12-20T00:00:00Z until 2026-12-27T00:00:00Z · priority 100").waitFor();
  await page.getByRole("button", { name: "Edit hero-christmas" }).click();
  assert.equal(await page.getByLabel("Shows from").inputValue(), "2026-12-20T00:00");
  await page.getByLabel("Shows until").fill("2026-12-19T00:00");
  await page.getByText("until must be after from").first().waitFor();
  await page.close();
});

test("an older version published by mistake is refused at the edge; micromoment rollback serves it", async () => {
  // After the schedule test the edge serves version 9 of acme-autos.
  const before = await served();
  assert.equal(before.version, 9);
  const keyFile = join(dir, "bundle-signing.key");
  writeFileSync(keyFile, signing.seed);
  const mmb = join(dir, "seven.mmb");
  cli("compile", join(ROOT, "fixtures", "automotive.json"), "-o", mmb, "--sign-key", keyFile);
  cli("publish", mmb, "--local", "--persist-to", edge.persist);
  // The edge checks KV every second here: it reads the new `current`, and refuses it.
  let last;
  await eventually(async () => JSON.stringify((last = await served()).health ?? {}).includes("refused as a downgrade"), 30_000,
    () => `the edge's health says why version 7 is refused: ${JSON.stringify(last)}`);
  const health = JSON.stringify((await served()).health);
  // (Its bundle was rolled back to once, before 9: that record does not reach below 9.)
  assert.match(health, /acme-autos 7 is older than acme-autos 9, refused as a downgrade: (no rollback record|the rollback record was made over version 8, before version 9 was published)/);
  assert.equal((await served()).version, 9, "the last good bundle is kept");
  // An unsigned rollback record does not do for an edge with BUNDLE_PUBKEY.
  cli("rollback", "--id", "acme-autos", "--to", "7", "--local", "--persist-to", edge.persist);
  await eventually(async () => JSON.stringify((await served()).health ?? {}).includes("not signed"), 30_000,
    () => "the edge says the record is not signed");
  assert.equal((await served()).version, 9);
  // Signed with the bundle-signing key, it is served.
  cli("rollback", "--id", "acme-autos", "--to", "7", "--sign-key", keyFile, "--local", "--persist-to", edge.persist);
  await eventually(async () => (await served()).version === 7, 30_000, () => "the edge serves version 7");
});
