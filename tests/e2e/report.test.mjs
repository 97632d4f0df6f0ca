// The coverage report as a marketer opens it: rendered in headless Chromium with the
// network cut off, screenshotted, its matrix checked in the DOM, and its preview panel
// driven by a real selection. Chromium is required (scripts/test.sh installs it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { launchChromium } from "./harness.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "target", "debug", "micromoment");
const SHOTS = join(ROOT, "target", "report-screenshots");
let tmp, browser;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "mm-report-"));
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function report(bundle, out, ...extra) {
  return spawnSync(CLI, ["report", bundle, "-o", out, "--now", "2026-11-23T12:00:00Z", ...extra], { cwd: ROOT, encoding: "utf8" });
}

for (const [name, stages, changed] of [
  ["automotive", 5, ["awareness", "purchase"]],
  ["retail", null, null],
]) {
  test(`the ${name} report renders offline, has a full matrix, and its preview follows the stage`, async () => {
    const file = join(tmp, `${name}.html`);
    const run = report(`fixtures/${name}.json`, file);
    assert.equal(run.status, 0, run.stderr);
    assert.ok(statSync(file).size < 1024 * 1024, "under 1 MB");
    const source = JSON.parse(readFileSync(join(ROOT, "fixtures", `${name}.json`), "utf8"));
    const stageCount = stages ?? source.journey.stages.length;

    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const external = [];
    await page.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith("file:") || url.startsWith("about:") || url.startsWith("data:")) return route.continue();
      external.push(url);
      return route.abort();
    });
    await page.goto(pathToFileURL(file).href);
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

    // A cell per stage x device (x channel) in every slot's matrix.
    const matrices = await page.$$eval("table.matrix", (tables) =>
      tables.map((t) => ({ slot: t.dataset.slot, cells: t.querySelectorAll("td.cell").length, stages: new Set([...t.querySelectorAll("td.cell")].map((c) => c.dataset.stage)).size })));
    assert.equal(matrices.length, Object.keys(source.slots).length);
    for (const m of matrices) {
      assert.equal(m.stages, stageCount, m.slot);
      assert.equal(m.cells, stageCount * 5 * 2, `${m.slot}: 5 device types x 2 channels per stage`);
    }

    if (changed) {
      const [from, to] = changed;
      const hero = () => page.$eval("#slot-0", (e) => e.dataset.content);
      await page.selectOption("select[name=stage]", { label: from });
      const before = await hero();
      await page.selectOption("select[name=stage]", { label: to });
      const after = await hero();
      assert.notEqual(after, before, `hero changes from ${from} to ${to}`);
      assert.equal(after, "order-tracker");
      const frame = await page.$eval("#slot-0 iframe", (f) => f.srcdoc);
      assert.match(frame, /order/i);
      await page.frameLocator("#slot-0 iframe").locator("body").waitFor();
      await page.locator("#preview").screenshot({ path: join(SHOTS, `${name}-preview-${to}.png`) });
    }
    assert.deepEqual(external, [], "no network requests");
    await page.close();
  });
}

test("a shadowed candidate is flagged in the HTML and the JSON, and --strict fails", async () => {
  // `always-a` has no conditions and a higher priority than `never-b` in the same slot.
  // Its content is also the default of a later slot, so `validate` cannot call it a
  // certain winner; only running the engine shows that it is.
  const bundle = {
    id: "planted", version: 1,
    journey: { stages: ["new", "known"] },
    content: { a: { html: "<p>A</p>" }, b: { html: "<p>B</p>" }, d: { html: "<p>D</p>" } },
    slots: {
      first: { default: "d", candidates: [{ id: "always-a", content: "a", priority: 10 }, { id: "never-b", content: "b", priority: 5 }] },
      second: { default: "a" },
    },
  };
  const source = join(tmp, "planted.json");
  writeFileSync(source, JSON.stringify(bundle, null, 2));
  assert.equal(spawnSync(CLI, ["validate", source], { encoding: "utf8" }).status, 0);
  const json = JSON.parse(execFileSync(CLI, ["report", source, "--json"], { encoding: "utf8" }));
  assert.deepEqual(json.unreachable.map((u) => u.candidate), ["never-b"]);
  assert.match(json.unreachable[0].why, /earlier candidate won|higher-priority/);
  assert.deepEqual(json.never_shown, ["b", "d"], "b is shadowed, and the default d never shows");
  const strict = spawnSync(CLI, ["report", source, "--json", "--strict"], { encoding: "utf8" });
  assert.equal(strict.status, 1);
  assert.match(strict.stderr, /unreachable: never-b in first/);
  const html = join(tmp, "planted.html");
  assert.equal(report(source, html).status, 0);
  assert.match(readFileSync(html, "utf8"), /<li data-candidate='never-b'><b>never-b<\/b> in first:/);
  // The fixtures have no such findings: --strict passes.
  assert.equal(spawnSync(CLI, ["report", "fixtures/automotive.json", "--json", "--strict"], { cwd: ROOT }).status, 0);
});

test("the triggers section shows, in Chromium, which moments start which conversation", async () => {
  const file = join(tmp, "triggers.html");
  const run = report("fixtures/triggers.json", file);
  assert.equal(run.status, 0, run.stderr);
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(pathToFileURL(file).href);
  await page.locator("#triggers").screenshot({ path: join(SHOTS, "triggers.png") });
  const rows = await page.$$eval("#triggers tbody tr", (trs) =>
    trs.map((tr) => ({ id: tr.dataset.trigger, cells: [...tr.querySelectorAll("td")].map((td) => td.innerText) })));
  assert.deepEqual(rows.map((r) => r.id), ["test-drive-follow-up", "basket-rescue", "suv-keen"]);
  const [followUp, rescue, keen] = rows;
  assert.equal(followUp.cells[1], "stage decision");
  assert.equal(followUp.cells[4], "1 per 30d");
  assert.match(followUp.cells[5], /^\d+ audiences/);
  assert.match(followUp.cells[5], /→ decision · .*event = test_drive_booked/);
  assert.equal(rescue.cells[3], "1h, unless order_completed");
  assert.match(keen.cells[5], /request 2 in a row/);
  assert.ok(await page.locator("#triggers").isVisible());
  await page.close();
});
