// Fault injection under `wrangler dev` (local workerd), with the real Worker: KV that
// throws, hangs or returns garbage (through tests/e2e/faults/entry.mjs, which wraps
// only the KV binding), a bundle in KV whose decoded size is over budget, an origin
// that resets, hangs, fails or dribbles, and a malformed JOURNEY_KEYS secret. Each
// gets a defined answer (the page as the origin sent it, or defaults), never a 5xx of
// ours, a log line, and a report in /v1/bundle's health; the isolate stays up.
//
// And a 100 MB chunked body against workerd itself (Miniflare, no wrangler proxy): the
// 413 goes out at the limit. Under `wrangler dev`, its development proxy turns any
// answer sent before the request body is whole into "503 Your worker restarted
// mid-request", so that one case is checked where the proxy is not.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import net from "node:net";
import { execFileSync } from "node:child_process";
import { ROOT, WRANGLER, freePort, tempDir, cli, tokenFrom, startWorker, cleanup, eventually as until } from "./harness.mjs";

// A desktop Chrome, as a visitor's browser sends it.
const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const BROKEN_KEYS = JSON.stringify({ current: "k1", keys: { k1: "c2hvcnQ=" } });
const PAGE = `<!doctype html><html><head><title>Faults</title></head><body>
<div data-mm-slot="hero"><p>origin hero</p></div><p>${"filler ".repeat(2000)}</p><footer>end</footer></body></html>`;

let tmp, origin, worker, base;

before(async () => {
  tmp = tempDir("faults");
  origin = createServer((req, res) => {
    const path = req.url.split("?")[0];
    if (path === "/reset") {
      req.socket.destroy();
    } else if (path === "/hang") {
      // Never answers.
    } else if (path === "/500") {
      res.writeHead(500, { "content-type": "text/html", "x-origin": "down" });
      res.end('<h1>origin error</h1><div data-mm-slot="hero">kept</div>');
    } else if (path === "/dribble") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      const parts = PAGE.match(/[\s\S]{1,700}/g);
      let i = 0;
      const timer = setInterval(() => {
        if (i < parts.length) res.write(parts[i++]);
        else {
          clearInterval(timer);
          res.end();
        }
      }, 60);
    } else {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(PAGE);
    }
  });
  const originPort = await freePort();
  await new Promise((r) => origin.listen(originPort, "127.0.0.1", r));
  worker = await startWorker({
    dir: tmp,
    main: join(ROOT, "tests", "e2e", "faults", "entry.mjs"),
    vars: {
      ORIGIN: `http://127.0.0.1:${originPort}`, MM_DEV: "1", MM_BUNDLE_RECHECK_SECS: "1",
      MM_KV_TIMEOUT_MS: "400", MM_ORIGIN_TIMEOUT_MS: "1500", JOURNEY_KEYS: BROKEN_KEYS, MM_PREVIEW_SECRET: "short",
    },
  });
  base = worker.base;
});

after(async () => {
  await worker?.stop();
  origin?.close();
  cleanup(tmp);
});

const eventually = (condition, ms) => until(condition, ms, () => worker.log());
const faults = (kv) => fetch(`${base}/__faults?kv=${kv}`).then((r) => r.text());
/** `/v1/bundle`; `{}` when a request did not go through (`wrangler kv key put
 * --local` can make the local runtime drop a connection). */
const info = () =>
  fetch(`${base}/v1/bundle`, { signal: AbortSignal.timeout(5000) })
    .then((r) => r.json())
    .catch((e) => {
      console.log(`/v1/bundle: ${e.cause?.code ?? e.message}`);
      return { health: { bundle: {} } };
    });
const decide = async (headers = {}) => {
  const r = await fetch(`${base}/v1/decide?slots=hero`, { headers });
  return { status: r.status, body: await r.json(), cookie: r.headers.get("set-cookie") };
};

test("a malformed JOURNEY_KEYS serves defaults without tokens, logs once, and shows in the health", async () => {
  const r = await decide();
  assert.equal(r.status, 200);
  assert.equal(r.body.decisions[0].content, "brand-film");
  assert.equal(r.body.token, null);
  assert.equal(r.cookie, null);
  await decide();
  const health = (await info()).health;
  assert.equal(health.ok, false);
  assert.equal(health.keys.status, "invalid");
  assert.equal(health.keys.error, "key #1 is 5 bytes, fewer than the 32 required");
  assert.equal(health.preview, "too short");
  const logged = () => worker.log().split("\n").filter((l) => l.includes("JOURNEY_KEYS does not load")).length;
  await eventually(() => logged() > 0, 10000);
  // A browser's request (Node's fetch is an HTTP library, whose requests count as
  // nobody's exposure) is logged as an exposure after its response: once that line is
  // in, whatever the request logged before it is in too.
  const exposures = () => worker.log().split("\n").filter((l) => l.includes('"type":"exposure"')).length;
  const before = exposures();
  assert.equal((await decide({ "User-Agent": CHROME })).status, 200);
  await eventually(() => exposures() > before, 10000);
  assert.equal(logged(), 1, "logged once per isolate, not per request");
});

test("KV that throws, hangs or returns garbage keeps the bundle and says why", async () => {
  for (const [mode, why] of [
    ["throw", /KV get current: .*injected KV failure/],
    ["hang", /KV did not answer within 400 ms/],
    ["garbage", /bundle:0f0f.* is missing|bundle:0f0f.*: not a micromoment bundle/],
  ]) {
    await faults(mode);
    let health;
    await eventually(async () => {
      const started = Date.now();
      const r = await decide();
      assert.equal(r.status, 200, mode);
      assert.equal(r.body.decisions[0].content, "brand-film", mode);
      // A re-check runs after the response: no request waits on a hanging KV.
      assert.ok(Date.now() - started < 1000, `${mode}: answered in ${Date.now() - started} ms`);
      health = (await info()).health;
      return why.test(health.bundle.error ?? "");
    }, 20000);
    assert.equal(health.bundle.status, "stale", mode);
    await eventually(() => worker.log().includes("bundle refresh failed, keeping the last good bundle"), 10000);
  }
  await faults("ok");
  await eventually(async () => (await info()).health.bundle.status === "ok", 20000);
});

test("a bundle whose decoded size is over budget is refused at load and the last good one kept", async () => {
  // A real compiled bundle whose one literal list is rewritten, on the wire, to three
  // million nulls: 3 MB as `.mmb`, about 48 MB once decoded.
  const source = JSON.parse(readFileSync(join(ROOT, "fixtures", "automotive.json"), "utf8"));
  source.version = 99;
  source.slots.hero.candidates[0].when = { in: [{ var: "page.path" }, ["__BOMB__"]] };
  const json = join(tmp, "bomb.json");
  const mmb = join(tmp, "bomb.mmb");
  writeFileSync(json, JSON.stringify(source));
  cli("compile", json, "-o", mmb);
  const frame = readFileSync(mmb);
  const idLen = frame.readUInt16LE(6);
  const lenAt = 8 + idLen + 8 + 32;
  const payload = frame.subarray(lenAt + 4, lenAt + 4 + frame.readUInt32LE(lenAt));
  const marker = Buffer.concat([Buffer.from([4, 1, 3, 8]), Buffer.from("__BOMB__")]);
  const at = payload.indexOf(marker);
  assert.ok(at > 0 && payload.indexOf(marker, at + 1) < 0, "one literal list to rewrite");
  const count = 3_000_000;
  const length = Buffer.alloc(5);
  length[0] = 0xfc;
  length.writeUInt32LE(count, 1);
  const bomb = Buffer.concat([payload.subarray(0, at), Buffer.from([4]), length, Buffer.alloc(count, 0), payload.subarray(at + marker.length)]);
  const header = Buffer.from(frame.subarray(0, lenAt + 4));
  createHash("sha256").update(bomb).digest().copy(header, 8 + idLen + 8);
  header.writeUInt32LE(bomb.length, lenAt);
  writeFileSync(mmb, Buffer.concat([header, bomb]));
  const hash = createHash("sha256").update(bomb).digest("hex");
  const before = await info();
  // `publish` refuses it (it loads what it publishes); a value written to KV by other
  // means reaches the Worker all the same.
  assert.throws(() => cli("publish", mmb, "--local", "--persist-to", worker.persist), /decoded size over budget/);
  const kv = (...args) =>
    execFileSync(WRANGLER, ["kv", "key", "put", ...args, "--binding", "BUNDLES", "--local", "--persist-to", worker.persist, "--config", join(tmp, "wrangler.toml")], {
      cwd: ROOT, stdio: "ignore", env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    });
  kv(`bundle:${hash}`, "--path", mmb);
  kv("current", hash);
  await eventually(async () => /decoded size over budget/.test((await info()).health.bundle.error ?? ""), 30000);
  await eventually(() => /bundle refresh failed, keeping the last good bundle.*decoded size over budget/.test(worker.log()), 10000);
  const now = await info();
  assert.equal(now.hash, before.hash, "the last good bundle serves");
  assert.notEqual(now.hash, hash);
  assert.equal((await decide()).status, 200);
  assert.equal((await fetch(`${base}/healthz`)).status, 200, "the isolate is alive");
  // Judged once: later re-checks (one a second here) read `current`, not the same 3 MB.
  const reads = async () => (await fetch(`${base}/__faults/reads`)).json();
  const first = await reads();
  await eventually(async () => {
    await decide();
    return (await reads()).current >= first.current + 3;
  }, 20000);
  assert.equal((await reads())[`bundle:${hash}`], 1);
  assert.match((await info()).health.bundle.error, /decoded size over budget/);
});

test("an origin that resets, hangs or fails gets a defined answer and a log line", async () => {
  const reset = await fetch(`${base}/reset`);
  assert.equal(reset.status, 502);
  assert.deepEqual(await reset.json(), { error: "origin unreachable" });
  await eventually(() => /"msg":"origin unreachable"/.test(worker.log()), 10000);

  const started = Date.now();
  const hang = await fetch(`${base}/hang`);
  assert.equal(hang.status, 504);
  assert.deepEqual(await hang.json(), { error: "origin timed out" });
  assert.ok(Date.now() - started < 10000, `gave up after ${Date.now() - started} ms`);
  await eventually(() => /"msg":"origin timed out","detail":"no response headers within 1500 ms"/.test(worker.log()), 10000);

  // The origin's own error page is the origin's: status, type and bytes.
  const failed = await fetch(`${base}/500`);
  assert.equal(failed.status, 500);
  assert.equal(failed.headers.get("content-type"), "text/html");
  assert.equal(failed.headers.get("x-origin"), "down");
  assert.equal(await failed.text(), '<h1>origin error</h1><div data-mm-slot="hero">kept</div>');
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
});

test("a page that dribbles in is personalized whole", async () => {
  const r = await fetch(`${base}/dribble`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8");
  const html = await r.text();
  assert.match(html, /<div data-mm-slot="hero" data-mm-content="brand-film">/);
  assert.ok(html.endsWith("<footer>end</footer></body></html>"));
  assert.equal(html.replace(/<div data-mm-slot="hero"[^>]*>[\s\S]*?<\/div>/, ""), PAGE.replace(/<div data-mm-slot="hero">[\s\S]*?<\/div>/, ""));
  // No keys: no token, and nothing fails for it.
  assert.equal(tokenFrom(r), null);
});

test("a 100 MB chunked body gets its 413 at the limit from workerd", async () => {
  const { Miniflare } = await import(join(ROOT, "node_modules", "miniflare", "dist", "src", "index.js"));
  const mf = new Miniflare({
    modules: true,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    scriptPath: join(ROOT, "build", "index.js"),
    compatibilityDate: "2026-04-20",
    bindings: { MM_DEV: "1" },
    host: "127.0.0.1",
    port: await freePort(),
  });
  try {
    const url = await mf.ready;
    // A raw client: it reads the answer while it still has 100 MB to send, as a
    // browser does, and counts what the Worker took before answering. Each megabyte is
    // handed to the kernel before the next, so the answer is read as it arrives. Once
    // the Worker has answered and stopped reading, the runtime closes the connection,
    // and the client's further writes make its kernel reset it, which throws away an
    // answer not read yet: on a busy host that can be the whole answer. That request
    // did reach the Worker and was answered; it is sent again (at most twice more).
    async function send() {
      const socket = net.connect(Number(url.port), "127.0.0.1");
      await new Promise((r) => socket.once("connect", r));
      let answer = "";
      socket.on("data", (d) => (answer += d));
      socket.on("error", () => {});
      const write = (data) => new Promise((r) => socket.write(data, () => r()));
      await write(`POST /v1/events HTTP/1.1\r\nHost: ${url.host}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n`);
      const chunk = Buffer.alloc(1024 * 1024, 120);
      let sent = 0;
      while (sent < 100 && !answer.includes("\r\n\r\n") && !socket.destroyed) {
        await write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]));
        sent += 1;
      }
      await until(() => answer.includes('"error"') || socket.destroyed, 10000);
      socket.destroy();
      return { answer, sent };
    }
    let { answer, sent } = await send();
    for (let attempt = 2; answer === "" && attempt <= 3; attempt++) {
      console.log(`# the answer was lost to the connection's reset after ${sent} MB: sent again (attempt ${attempt})`);
      ({ answer, sent } = await send());
    }
    console.log(`100 MB chunked: answered after ${sent} MB sent`);
    assert.match(answer, /^HTTP\/1\.1 413 /);
    assert.match(answer, /\{"error":"body is over the limit of 16384 bytes"\}/);
    assert.ok(sent < 100, `answered before the body was whole (${sent} MB of 100 sent)`);
    const alive = await fetch(new URL("/healthz", url));
    assert.equal(alive.status, 200);
  } finally {
    await mf.dispose();
  }
});
