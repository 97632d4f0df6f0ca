// Before and after a publish: the changes in words and the audiences that will see
// something different (the engine's `changes` and `impact`), publishing, the history of
// revisions and versions with restore, compare and roll back, and the JSON for engineers.
import { useMemo, useState } from "preact/hooks";
import { html, TextField } from "./common.js";
import { changes, impact, validate } from "./engine.js";
import { CodeEditor } from "./code.js";

const when = (ms) => new Date(ms).toLocaleString();
/** The most changed cells listed per slot (the count says how many there are). */
const SHOWN_CELLS = 200;

export function Changes({ before, after }) {
  const list = useMemo(() => {
    if (!before) return [];
    try {
      return changes(before, after);
    } catch (e) {
      return [{ text: `the changes cannot be listed: ${e.message ?? e}` }];
    }
  }, [before, after]);
  if (!before) return html`<p>Nothing to compare with.</p>`;
  if (!list.length) return html`<p>No change.</p>`;
  return html`<ul class="changes" aria-label="Changes">${list.map((c) => html`<li>${c.text}</li>`)}</ul>`;
}

function Impact({ live, draft }) {
  const [shown, setShown] = useState(false);
  const [started, setStarted] = useState(0);
  const data = useMemo(() => {
    if (!shown) return null;
    const t = performance.now();
    try {
      const out = impact(live, draft, Date.now());
      out.ms = Math.round(performance.now() - t);
      return out;
    } catch (e) {
      return { error: String(e.message ?? e) };
    }
  }, [shown, live, draft, started]);
  if (!shown) return html`<button type="button" onClick=${() => { setShown(true); setStarted(Date.now()); }}>Show who will see something different</button>`;
  if (data.error) return html`<p class="problem" role="alert">The impact cannot be computed: ${data.error}</p>`;
  const bySlot = new Map();
  for (const c of data.changed) {
    if (!bySlot.has(c.slot)) bySlot.set(c.slot, []);
    bySlot.get(c.slot).push(c);
  }
  return html`<div class="impact">
    <p role="status">${data.cells} audience cells change, of ${data.audiences} audiences decided with both versions (${data.ms} ms). Each row below is the most general audience of the cells it stands for.</p>
    ${[...bySlot].map(([slot, cells]) => html`<h4>${slot}: ${cells.length} audience${cells.length > 1 ? "s see" : " sees"} something different</h4>
      <table aria-label=${`Audiences that see something different in ${slot}`}>
        <thead><tr><th scope="col">Stage</th><th scope="col">Device / channel</th><th scope="col">Audience</th><th scope="col">Now</th><th scope="col">After publishing</th></tr></thead>
        <tbody>${cells.slice(0, SHOWN_CELLS).map((c) => html`<tr><td>${c.stage}</td><td>${c.column}</td>
          <td>${c.values.map(([k, v]) => `${k} = ${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ") || "anyone"}</td>
          <td>${c.before || "—"}</td><td>${c.after}</td></tr>`)}</tbody>
      </table>
      ${cells.length > SHOWN_CELLS ? html`<p>…and ${cells.length - SHOWN_CELLS} more in ${slot}.</p>` : null}`)}
  </div>`;
}

export function PublishPanel({ doc, live, problems, publish, busy, result }) {
  const [message, setMessage] = useState("");
  return html`<section aria-labelledby="publish-h"><h2 id="publish-h">Publish</h2>
    <p>${live?.version != null ? html`The studio last had the edge serve version <strong>${live.version}</strong>.` : "Nothing is published from the studio yet: the changes are counted from the workspace's starting document."}
      A publish compiles and signs the draft, and the edge serves it within its recheck period.</p>
    <h3>What changed</h3>
    <${Changes} before=${live?.doc ?? null} after=${doc} />
    <h3>Who will see something different</h3>
    ${problems.length ? html`<p>Fix the problems first.</p>` : live?.doc ? html`<${Impact} live=${live.doc} draft=${doc} />` : null}
    <h3>Publish the draft</h3>
    ${problems.length ? html`<div class="problem" role="alert">Publishing is refused: the draft has ${problems.length} problem${problems.length > 1 ? "s" : ""}.
      <ul>${problems.map((p) => html`<li>${p.path || "document"}: ${p.message}</li>`)}</ul></div>` : null}
    <${TextField} label="Publish message" value=${message} onInput=${setMessage} />
    <button type="button" class="primary" disabled=${busy || problems.length > 0} onClick=${() => publish(message)}>Publish</button>
    ${result ? html`<p role="status" class=${result.error ? "problem" : "ok"}>${result.error ?? `Published version ${result.version} (${result.hash.slice(0, 12)}…).`}</p>` : null}
  </section>`;
}

export function HistoryPanel({ overview, open, doc, rollback, busy, result }) {
  const [compare, setCompare] = useState(null);
  return html`<section aria-labelledby="history-h"><h2 id="history-h">History</h2>
    <h3>Published versions</h3>
    <table aria-label="Published versions">
      <thead><tr><th scope="col">Version</th><th scope="col">What</th><th scope="col">By</th><th scope="col">When</th><th scope="col">Message</th><th scope="col"></th></tr></thead>
      <tbody>${overview.published.map((p) => html`<tr>
        <td>${p.version}</td><td>${p.kind === "rollback" ? "rolled back to" : p.kind === "baseline" ? "starting document" : "published"}${overview.live?.seq === p.seq ? " (served)" : ""}</td>
        <td>${p.author}</td><td>${when(p.at)}</td><td>${p.message}</td>
        <td>${p.kind !== "rollback" && overview.live?.hash !== p.hash ? html`<button type="button" disabled=${busy} onClick=${() => rollback(p.version)}>Roll back to version ${p.version}</button>` : null}</td>
      </tr>`)}</tbody>
    </table>
    ${result ? html`<p role="status" class=${result.error ? "problem" : "ok"}>${result.error ?? `The edge is told to serve version ${result.version} again.`}</p>` : null}
    <h3>Revisions</h3>
    <table aria-label="Revisions">
      <thead><tr><th scope="col">Revision</th><th scope="col">By</th><th scope="col">When</th><th scope="col">Message</th><th scope="col"></th></tr></thead>
      <tbody>${overview.revisions.map((r) => html`<tr>
        <td>${r.id}</td><td>${r.author}</td><td>${when(r.at)}</td><td>${r.message}</td>
        <td><button type="button" onClick=${() => open(r.id)}>Open revision ${r.id}</button>
          <button type="button" onClick=${async () => setCompare({ id: r.id, doc: JSON.parse((await (await fetch(`/api/revisions/${r.id}`)).json()).doc) })}>Compare revision ${r.id} with the draft</button></td>
      </tr>`)}</tbody>
    </table>
    ${compare ? html`<div role="region" aria-label=${`Revision ${compare.id} compared with the draft`}><h3>From revision ${compare.id} to the draft</h3><${Changes} before=${compare.doc} after=${doc} /></div>` : null}
  </section>`;
}

export function JsonPanel({ doc, replace }) {
  const [text, setText] = useState(() => JSON.stringify(doc, null, 2));
  const [error, setError] = useState(null);
  return html`<section aria-labelledby="json-h"><h2 id="json-h">JSON (for engineers)</h2>
    <p>The draft in the authoring format, for git and review. Importing replaces the draft; it is checked like any edit.</p>
    <${CodeEditor} label="Authoring JSON" language="json" value=${text} onChange=${setText} rows=${20} />
    <button type="button" onClick=${() => setText(JSON.stringify(doc, null, 2))}>Export the draft</button>
    <button type="button" onClick=${() => {
      try {
        const parsed = JSON.parse(text);
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("a bundle is a JSON object");
        replace(parsed);
        const found = validate(parsed);
        setError(found.length ? `Imported with ${found.length} problem(s): see the problems list.` : null);
      } catch (e) {
        setError(`Not imported: ${e.message}`);
      }
    }}>Import into the draft</button>
    ${error ? html`<p class="problem" role="alert">${error}</p>` : null}
  </section>`;
}
