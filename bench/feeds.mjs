// Live data under `wrangler dev` (local workerd, real KV and the `Feed` Durable Object):
// 10,000 stores and 1,000,000 sku × store rows pushed with `micromoment feed push`
// (its wall time), then the product page of the retail fixture asked for: the same
// item again and again (warm: its shard and the stores' grid kept by the isolate) and
// a new item each time whose shard the isolate has not read (cold: one KV read), each
// against the same page without an item (no feed read at all), interleaved. Client-side
// latency, p50 and p95; the difference is what the feeds cost a page.
//   node bench/feeds.mjs        (ROWS=1000000 STORES=10000 N=300)
// Needs the built Worker (scripts/build-worker.sh) and the CLI (cargo build). Prints
// figures; asserts nothing.
import { createServer } from "node:http";
import { createWriteStream, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { ROOT, CLI, KEYS, cleanup, freePort, publishedBundle, startWorker } from "../tests/e2e/harness.mjs";

const ROWS = Number(process.env.ROWS ?? 1_000_000);
const STORES = Number(process.env.STORES ?? 10_000);
const N = Number(process.env.N ?? 300);
const TOKEN = "bench-feeds-token-0123456789";
const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";
const LYON = { "X-MM-Geo-City": "Lyon", "X-MM-Geo-Country": "FR", "X-MM-Geo-Lat": "45.764", "X-MM-Geo-Lon": "4.8357" };

let seed = 0x2545f491;
const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);

const { tmp } = publishedBundle("bench-feeds", "fixtures/retail.json");
const storesFile = join(tmp, "stores.csv");
const stockFile = join(tmp, "stock.ndjson");
{
  let csv = "store,name,lat,lon,pickup\n";
  for (let i = 0; i < STORES; i++) {
    csv += `s${i},Store ${i},${(42.3 + random() * 8.8).toFixed(4)},${(-4.5 + random() * 12.5).toFixed(4)},ready in ${1 + (i % 3)} hours\n`;
  }
  writeFileSync(storesFile, csv);
  const out = createWriteStream(stockFile);
  const perSku = 50;
  for (let r = 0; r < ROWS; r++) {
    const sku = Math.floor(r / perSku);
    const store = r % perSku === 0 ? "online" : `s${Math.floor(random() * STORES)}`;
    const qty = r % perSku === 0 ? 0 : Math.floor(random() * 4);
    if (!out.write(`{"sku":"sku-${sku}","store":"${store}","qty":${qty}}\n`)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}
console.log(`stores: ${STORES} rows, ${statSync(storesFile).size} bytes; stock: ${ROWS} rows, ${statSync(stockFile).size} bytes`);

const origin = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(`<!doctype html><html><head><title>p</title></head><body><div data-mm-slot="hero">hero</div><main>${"item ".repeat(200)}</main></body></html>`);
});
const originPort = await freePort();
await new Promise((r) => origin.listen(originPort, "127.0.0.1", r));
const worker = await startWorker({
  dir: tmp,
  vars: { ORIGIN: `http://127.0.0.1:${originPort}`, MM_DEV: "1", MM_BACKEND_TOKEN: TOKEN, JOURNEY_KEYS: JSON.stringify(KEYS), ...(process.env.HOT_MS ? { MM_FEED_HOT_MS: process.env.HOT_MS } : {}) },
});
const push = (file, feed) => {
  const start = performance.now();
  const out = JSON.parse(execFileSync(CLI, ["feed", "push", file, "--feed", feed, "--url", worker.base], {
    cwd: ROOT, encoding: "utf8", env: { ...process.env, MM_BACKEND_TOKEN: TOKEN }, maxBuffer: 1 << 24,
  }));
  return { ...out, wall_secs: ((performance.now() - start) / 1000).toFixed(1) };
};
console.log("push stores:", JSON.stringify(push(storesFile, "stores")));
console.log("push stock:", JSON.stringify(push(stockFile, "stock")));

async function page(sku) {
  const url = sku ? `${worker.base}/p/${sku}?sku=${sku}` : `${worker.base}/p/none`;
  const start = performance.now();
  const r = await fetch(url, { headers: { "User-Agent": UA, ...LYON } });
  const html = await r.text();
  return { ms: performance.now() - start, html };
}
// The first asks load the manifest, the stores feed whole and its grid.
for (let i = 0; i < 50; i++) { await page("sku-1"); await page(null); }
const first = (await page("sku-1")).html;
console.log("hero for sku-1 in Lyon:", /<h1>([^<]*)<\/h1>/.exec(first)?.[1] ?? "(default)");

const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const skus = Math.floor(ROWS / 50);
const times = { none: [], warm: [], cold: [] };
for (let i = 0; i < N; i++) {
  times.none.push((await page(null)).ms);
  times.warm.push((await page("sku-1")).ms);
  // A new item each time, spread over the shards: most are not read yet.
  if (process.env.COLD !== "0") times.cold.push((await page(`sku-${2 + Math.floor(random() * (skus - 2))}`)).ms);
}
for (const [k, v] of Object.entries(times).filter(([, v]) => v.length)) {
  console.log(`${k.padEnd(5)} p50 ${pct(v, 50).toFixed(2)} ms, p95 ${pct(v, 95).toFixed(2)} ms`);
}
console.log(`warm lookup over no lookup: p50 +${(pct(times.warm, 50) - pct(times.none, 50)).toFixed(2)} ms; cold: p50 +${(pct(times.cold, 50) - pct(times.none, 50)).toFixed(2)} ms, p95 +${(pct(times.cold, 95) - pct(times.none, 95)).toFixed(2)} ms`);
await worker.stop();
origin.close();
cleanup(tmp);
