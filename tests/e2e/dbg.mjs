import { startWorker, startStudio, launchChromium, tempDir } from "./harness.mjs";
const dir = tempDir("dbg");
const edge = await startWorker({ dir, vars: { MM_DEV: "1", MM_BUNDLE_RECHECK_SECS: "1" } });
const studio = await startStudio({ dir, persist: edge.persist, vars: { MM_DEV: "1", EDGE_URL: edge.base } });
console.log(edge.base, studio.base);
await new Promise(() => {});
