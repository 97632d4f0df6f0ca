// The results page of `micromoment analyze` as a marketer opens it: logs simulated
// through the real engine, analyzed, rendered in headless Chromium with the network
// cut off; its sentences checked against the JSON of the same run, its chart and
// model tabs driven, and a screenshot saved for the README (docs/results.png).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "target", "debug", "micromoment");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
let tmp, browser;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "mm-results-"));
  if (!haveChromium) return;
  const { chromium } = await import("playwright-core");
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function run(args) {
  const r = spawnSync(CLI, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `${args.join(" ")}: ${r.stderr}`);
  return r;
}

/** Generated logs → results.html and the JSON of the same run. */
function analyze(name, ...generate) {
  const logs = join(tmp, `${name}.ndjson`);
  const html = join(tmp, `${name}.html`);
  run(["analyze-generate", "--bundle", "fixtures/automotive.json", "-o", logs, ...generate]);
  const r = run(["analyze", logs, "--bundle", "fixtures/automotive.json", "-o", html, "--json"]);
  return { html, json: JSON.parse(r.stdout), stderr: r.stderr };
}

// The page's wording, from the JSON's numbers.
const signed = (x) => (x < 0 ? `\u2212${(-x * 100).toFixed(1)} %` : `+${(x * 100).toFixed(1)} %`);
const chance = (x) => {
  const p = Math.round(x * 100);
  return p >= 100 ? "> 99 %" : p <= 0 ? "< 1 %" : `${p} %`;
};
const sentence = (v, control) =>
  `${v.variant} ${v.lift >= 0 ? "beats" : "trails"} ${control}: ${signed(v.lift)} [${signed(v.ci[0])}, ${signed(v.ci[1])}], ${chance(v.chance_to_win)} chance to win`;

async function open(file) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const external = [];
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("about:") || url.startsWith("data:")) return route.continue();
    external.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(file).href);
  return { page, external };
}

test("the results page says who won, in words and as a chart, and shows attribution by model", { skip: !haveChromium && "Chromium is not installed" }, async () => {
  const { html, json } = analyze("plain", "--people", "6000", "--seed", "4");
  assert.ok(statSync(html).size < 512 * 1024, "a small page");
  const { page, external } = await open(html);

  const purchase = json.experiments.find((e) => e.experiment === "hero-test" && e.goal === "purchase");
  assert.equal(purchase.srm, false);
  const [control, variant, holdout] = purchase.variants;
  assert.deepEqual([control.variant, variant.variant, holdout.variant], ["suv-teaser", "ev-teaser", "holdout"]);
  const section = page.locator("section.experiment[data-experiment='hero-test'][data-goal='purchase']");
  const verdicts = await section.locator("p.verdict").allTextContents();
  assert.ok(verdicts.includes(sentence(variant, control.variant)), `${verdicts.join("\n")}\nlacks: ${sentence(variant, control.variant)}`);
  assert.ok(verdicts.includes(sentence(holdout, control.variant)), verdicts.join("\n"));
  assert.match(verdicts.join("\n"), /ev-teaser earns (more|less) than suv-teaser per person: [+\u2212]\d+\.\d %/);
  assert.equal(await section.locator("p.srm").count(), 0, "no SRM warning");

  // One point and interval per arm, in order, titled with its rate.
  const arms = await section.locator("svg.rates g.arm").evaluateAll((gs) => gs.map((g) => ({
    variant: g.dataset.variant, title: g.querySelector("title").textContent, lines: g.querySelectorAll("line").length,
  })));
  assert.deepEqual(arms.map((a) => a.variant), ["suv-teaser", "ev-teaser", "holdout"]);
  for (const [a, v] of arms.map((a, i) => [a, purchase.variants[i]])) {
    assert.ok(a.title.startsWith(`${v.variant}: ${(v.rate * 100).toFixed(1)} % of ${v.people} people, 95 % interval`), a.title);
    assert.equal(a.lines, 3, "interval and its two caps");
  }

  // Attribution per goal: a tab per slot, in each a tab per model; the data-driven tab
  // shows the Markov bars.
  const attribution = page.locator("section.attribution[data-goal='purchase']");
  const slotTabs = await attribution.locator(".tabs.slots button").allTextContents();
  assert.deepEqual(slotTabs, [...new Set(json.attribution.filter((a) => a.goal === "purchase").map((a) => a.slot))]);
  assert.equal(slotTabs[0], "hero");
  const hero = attribution.locator("div.slot[data-slot='hero']");
  const sidebar = attribution.locator("div.slot[data-slot='sidebar']");
  assert.ok(await hero.isVisible());
  assert.ok(!(await sidebar.isVisible()));
  const tabs = await hero.locator(".tabs.models button").allTextContents();
  assert.deepEqual(tabs, ["Last touch", "First touch", "Linear", "Time decay (7-day half-life)", "Position-based (40/20/40)", "Data-driven (Markov removal effect)"]);
  assert.ok(await hero.locator(".model[data-model='last_touch']").isVisible());
  assert.ok(!(await hero.locator(".model[data-model='markov']").isVisible()));
  await hero.locator(".tabs button[data-model='markov']").click();
  assert.ok(await hero.locator(".model[data-model='markov']").isVisible());
  assert.ok(!(await hero.locator(".model[data-model='last_touch']").isVisible()));
  const markov = json.attribution.find((a) => a.goal === "purchase" && a.slot === "hero" && a.model === "markov");
  const top = markov.rows[0];
  const first = await hero.locator(".model[data-model='markov'] ol.bars li").first().textContent();
  assert.ok(first.startsWith(`${top.content} · ${top.candidate ?? "default"} · ${top.channel}`), first);
  assert.ok(first.includes(`${top.conversions.toFixed(1)} conv`), first);
  await attribution.locator(".tabs.slots button[data-slot='sidebar']").click();
  assert.ok(await sidebar.isVisible());
  assert.ok(!(await hero.isVisible()));
  assert.ok(await sidebar.locator(".model[data-model='last_touch']").isVisible());
  await attribution.locator(".tabs.slots button[data-slot='hero']").click();
  await hero.locator(".tabs button[data-model='last_touch']").click();

  assert.match(await page.locator("header").textContent(), new RegExp(`${json.people} people exposed`));
  await page.screenshot({ path: join(ROOT, "docs", "results.png"), fullPage: true });
  assert.deepEqual(external, [], "no network requests");
  await page.close();
});

test("a planted sample-ratio mismatch is a warning the marketer cannot miss", { skip: !haveChromium && "Chromium is not installed" }, async () => {
  const { html, json } = analyze("srm", "--people", "6000", "--seed", "4", "--drop", "0:0.2");
  const purchase = json.experiments.find((e) => e.goal === "purchase");
  assert.equal(purchase.srm, true, `srm_p ${purchase.srm_p}`);
  const { page } = await open(html);
  const warning = page.locator("section.experiment[data-goal='purchase'] p.srm");
  assert.ok(await warning.isVisible());
  const text = await warning.textContent();
  assert.match(text, /^⚠ Sample ratio mismatch: the people per arm are not the split the bundle configured/);
  assert.match(text, new RegExp(`suv-teaser ${purchase.variants[0].people} \\(expected 45\\.0 %\\)`));
  assert.match(text, /do not trust this result until that is fixed/);
  await page.close();
});
