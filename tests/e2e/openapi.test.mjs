// The API's description (openapi.yaml, OpenAPI 3.1) against the real Worker under
// `wrangler dev`: the Worker serves it, and schemathesis (PyPI, in the venv
// scripts/test.sh makes at target/api-venv) generates requests from it for every
// operation, positive and negative, and checks every answer: no 5xx, no undocumented
// status, content type, headers and body as described, 405 with `Allow` for other
// methods, authentication enforced.
//
// One check is left out, `positive_data_acceptance` (a request the schema allows must
// succeed): what makes a valid slot name or a fresh `Idempotency-Key` is the published
// bundle and the calls before, which no schema of the API can say. Unknown slots and
// reused keys are described as the 400 and 422 they get.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { ROOT, KEYS, tempDir, startWorker, cleanup } from "./harness.mjs";

const SCHEMATHESIS = join(ROOT, "target", "api-venv", "bin", "schemathesis");
const BACKEND = "backend-token-0123456789abcdef";
const PREVIEW = "preview-secret-for-tests";
let tmp, worker;

before(async () => {
  tmp = tempDir("openapi");
  worker = await startWorker({
    dir: tmp,
    vars: { MM_DEV: "1", JOURNEY_KEYS: JSON.stringify(KEYS), MM_BACKEND_TOKEN: BACKEND, MM_PREVIEW_SECRET: PREVIEW },
  });
});

after(async () => {
  await worker?.stop();
  cleanup(tmp);
});

test("the Worker serves its description, as it is in the repository", async () => {
  const r = await fetch(`${worker.base}/openapi.yaml`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "application/yaml");
  assert.equal(await r.text(), readFileSync(join(ROOT, "openapi.yaml"), "utf8"));
  const post = await fetch(`${worker.base}/openapi.yaml`, { method: "POST" });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET");
});

test("schemathesis finds no 5xx and no answer the description does not admit", async () => {
  assert.ok(existsSync(SCHEMATHESIS), `schemathesis is required at ${SCHEMATHESIS} (scripts/test.sh installs it)`);
  const args = [
    "run", join(ROOT, "openapi.yaml"), "--url", worker.base,
    "--checks", "all", "--exclude-checks", "positive_data_acceptance",
    "--phases", "examples,coverage,fuzzing", "--max-examples", "40", "--seed", "20261207",
    "--workers", "1", "--no-color", "--request-timeout", "20", "--request-retries", "1",
    "-H", `Authorization: Bearer ${BACKEND}`, "-H", `X-MM-Preview: ${PREVIEW}`,
    "--generation-database", "none",
  ];
  const child = spawn(SCHEMATHESIS, args, { cwd: tmp, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const code = await new Promise((resolve) => child.on("close", resolve));
  const summary = output.split("SUMMARY").pop();
  assert.equal(code, 0, `schemathesis failed:\n${output.slice(-20000)}`);
  assert.match(summary, /Tested: 17/, summary);
  console.log(`# schemathesis: ${(/(\d+) generated/.exec(summary) ?? [])[0] ?? "?"} test cases`);
});
