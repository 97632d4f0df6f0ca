// Preview: the draft decided by the engine for an audience a person picks, slot by slot
// with the trace in words; the site's page personalized with the draft for that
// audience; and the coverage matrix of `micromoment report`. Content HTML is only ever
// shown in a sandboxed frame (no scripts, no same-origin) under its own strict policy.
import { useEffect, useMemo, useState } from "preact/hooks";
import { html, DEVICES, CHANNELS, Field, TextField, SelectField, NumberField } from "./common.js";
import { compile, report } from "./engine.js";

const FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline' https:; img-src https: data:; font-src https:";

/** A document for a sandboxed frame: the HTML under a policy that loads no script. */
function framed(body) {
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}">
<style>body{font-family:system-ui,sans-serif;margin:.5rem}</style></head><body>${body}</body></html>`;
}

/**
 * HTML shown in a frame that runs nothing and reaches nothing of the studio's: an empty
 * `sandbox` (no scripts, an opaque origin), under the studio's policy, which the frame
 * inherits, and for a fragment its own stricter one.
 */
export function SandboxedPreview({ title, html: body, tall }) {
  return html`<iframe class=${tall ? "frame tall" : "frame"} title=${title} sandbox="" referrerpolicy="no-referrer"
    srcdoc=${/^\s*<!doctype/i.test(body) ? body : framed(body)}></iframe>`;
}

/** A rendition with its placeholders marked, for a content's own preview. */
export function samplePlaceholders(text) {
  return text.replace(/\{\{\s*([^}]+?)\s*\}\}/g, (_, name) => `<mark title="placeholder">${name}</mark>`);
}

function randomKeys() {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  return { current: "studio", keys: { studio: btoa(String.fromCharCode(...raw)) } };
}

/** The request context and visitor state of an audience, as the engine takes them. */
export function requestOf(audience, doc) {
  const now = audience.time ? new Date(audience.time) : new Date();
  const iso = now.toISOString().replace(/\.\d+Z$/, "Z");
  const intents = {};
  for (const [topic, score] of Object.entries(audience.intents ?? {})) {
    if (score) intents[topic] = { score, updated_at: iso };
  }
  const geo = { country: audience.country || undefined, city: audience.city || undefined };
  const utm = { campaign: audience.utm_campaign || undefined, source: audience.utm_source || undefined, medium: audience.utm_medium || undefined };
  const state = {
    visitor: "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
    issued_at: iso, expires_at: new Date(now.getTime() + 30 * 864e5).toISOString().replace(/\.\d+Z$/, "Z"),
    stage: audience.stage || doc.journey?.stages?.[0], stage_since: new Date(now.getTime() - 864e5).toISOString().replace(/\.\d+Z$/, "Z"),
    visits: audience.returning ? 3 : 1, last_visit: iso, intents, impressions: {}, sequence: [], experiments: {},
    segments: (audience.segments ?? "").split(",").map((x) => x.trim()).filter(Boolean), consent: true,
  };
  const context = {
    channel: audience.channel, device: { type: audience.device }, geo, utm,
    page: { path: audience.path || "/" }, event: audience.event || undefined,
  };
  return { state, context, now: iso };
}

function AudienceForm({ doc, audience, setAudience }) {
  const set = (k) => (v) => setAudience({ ...audience, [k]: v });
  const topics = Object.keys(doc.journey?.intents ?? {});
  return html`<form class="audience" aria-label="Audience" onSubmit=${(e) => e.preventDefault()}>
    <${SelectField} label="Stage" value=${audience.stage} options=${doc.journey?.stages ?? []} onChange=${set("stage")} />
    <${SelectField} label="Device" value=${audience.device} options=${DEVICES} onChange=${set("device")} />
    <${SelectField} label="Channel" value=${audience.channel} options=${CHANNELS} onChange=${set("channel")} />
    <${TextField} label="Country (ISO code)" value=${audience.country} onInput=${set("country")} />
    <${TextField} label="City" value=${audience.city} onInput=${set("city")} />
    <${TextField} label="Page path" value=${audience.path} onInput=${set("path")} />
    <${TextField} label="UTM campaign" value=${audience.utm_campaign} onInput=${set("utm_campaign")} />
    <${TextField} label="UTM source" value=${audience.utm_source} onInput=${set("utm_source")} />
    <${TextField} label="Event" value=${audience.event} onInput=${set("event")} />
    ${topics.map((t) => html`<${NumberField} label=${`Intent ${t}`} value=${audience.intents?.[t]} step="1"
      onInput=${(v) => setAudience({ ...audience, intents: { ...audience.intents, [t]: v } })} />`)}
    <${TextField} label="Segments (comma-separated)" value=${audience.segments} onInput=${set("segments")} />
    <label class="check"><input type="checkbox" checked=${!!audience.returning} onChange=${(e) => set("returning")(e.currentTarget.checked)} /> Returning visitor</label>
    <${Field} label="Time (your time zone)" control=${(id) => html`<input id=${id} type="datetime-local" value=${audience.time ?? ""}
      onInput=${(e) => set("time")(e.currentTarget.value)} />`} />
  </form>`;
}


function Matrix({ doc }) {
  const [shown, setShown] = useState(false);
  const data = useMemo(() => (shown ? report(doc, Date.now()) : null), [shown, doc]);
  if (!shown) return html`<button type="button" onClick=${() => setShown(true)}>Show the coverage matrix</button>`;
  return html`<div class="matrix">
    <p>What each stage sees per device and channel, with no other signal (${data.contexts} audiences); the full report, with every audience the rules name, is <code>micromoment report</code>.</p>
    ${data.matrix.map((m) => html`<table aria-label=${`Coverage of ${m.slot}`}>
      <caption>${m.slot}</caption>
      <thead><tr><th scope="col">stage</th>${data.columns.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
      <tbody>${m.rows.map(([stage, cells]) => html`<tr><th scope="row">${stage}</th>${cells.map((c) => html`<td>${c.split ? c.split.arms.map((a) => `${a.content} ${Math.round(a.share * 100)} %`).join(" · ") : c.content}</td>`)}</tr>`)}</tbody>
    </table>`)}
  </div>`;
}

export function PreviewPanel({ doc, valid }) {
  const [audience, setAudience] = useState({ stage: doc.journey?.stages?.[0], device: "desktop", channel: "web", path: "/" });
  // The page path as typed, read from the edge once typing pauses.
  const [path, setPath] = useState(audience.path);
  useEffect(() => {
    const timer = setTimeout(() => setPath(audience.path || "/"), 400);
    return () => clearTimeout(timer);
  }, [audience.path]);
  const [page, setPage] = useState(null);
  const [pageError, setPageError] = useState(null);
  const bundle = useMemo(() => (valid ? compile(doc) : null), [doc, valid]);
  const keys = useMemo(randomKeys, []);
  const decision = useMemo(() => {
    if (!bundle) return null;
    const { state, context, now } = requestOf(audience, doc);
    try {
      return bundle.decide({ state, context, now, explain: true, keys }).toJSON();
    } catch (e) {
      return { error: String(e.message ?? e) };
    }
  }, [bundle, audience]);
  // The site's page for the audience's path, as the edge serves it to a new visitor.
  useEffect(() => {
    let stop = false;
    fetch(`/api/edge/page?path=${encodeURIComponent(path)}`)
      .then(async (r) => {
        const body = await r.json();
        if (stop) return;
        if (!r.ok) { setPage(null); setPageError(body.error); } else { setPage(body.html); setPageError(null); }
      })
      .catch((e) => { if (!stop) setPageError(String(e)); });
    return () => { stop = true; };
  }, [path]);
  const personalized = useMemo(() => {
    if (!bundle || !page || !decision?.token) return null;
    const { context, now } = requestOf(audience, doc);
    try {
      return bundle.personalize(page, { token: decision.token, keys, context, now })?.html ?? page;
    } catch (e) {
      return null;
    }
  }, [bundle, page, decision]);
  return html`<section aria-labelledby="preview-h"><h2 id="preview-h">Preview</h2>
    ${valid ? null : html`<p class="problem" role="alert">The draft has problems: fix them to preview.</p>`}
    <${AudienceForm} doc=${doc} audience=${audience} setAudience=${setAudience} />
    ${decision?.error ? html`<p class="problem" role="alert">${decision.error}</p>` : null}
    ${decision?.decisions ? html`<div class="decisions">
      <p>Stage after this request: <strong>${decision.stage}</strong></p>
      ${decision.decisions.map((d, i) => {
        const trace = decision.trace?.slots?.[i];
        return html`<article class="decision" aria-label=${`Slot ${d.slot}`}>
          <h3>${d.slot}: ${d.content}</h3>
          <p>${d.reason === "default" ? "the slot's default" : d.reason === "holdout" ? "held out of the experiment: the default" : `chosen by ${d.candidate}${d.variant ? ` (variant ${d.variant})` : ""}`}</p>
          ${d.html !== undefined ? html`<${SandboxedPreview} title=${`Slot ${d.slot} as shown`} html=${d.html} />` : null}
          ${d.json !== undefined ? html`<pre class="code">${JSON.stringify(d.json, null, 1)}</pre>` : null}
          ${trace ? html`<details><summary>Why (trace of ${d.slot})</summary><ol class="trace">${trace.candidates.map((c) => html`<li class=${c.kept ? "kept" : ""}>${c.candidate} (priority ${c.priority}): ${c.why}</li>`)}</ol></details>` : null}
        </article>`;
      })}
      ${decision.trace?.journey?.length ? html`<details><summary>Journey on this request</summary><ul>${decision.trace.journey.map((l) => html`<li>${l}</li>`)}</ul></details>` : null}
    </div>` : null}
    <h3>The page, decided for this audience with the draft</h3>
    ${pageError ? html`<p class="hint">The site's page could not be read: ${pageError}</p>` : null}
    ${personalized ? html`<${SandboxedPreview} tall title="Site page with the draft" html=${personalized} />` : null}
    <h3>Coverage</h3>
    ${valid ? html`<${Matrix} doc=${doc} />` : null}
  </section>`;
}
