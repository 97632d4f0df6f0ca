// The studio's app (docs/studio.md): a draft of the authoring format edited through
// forms, checked by the engine after every edit, previewed, compared, saved as
// revisions, published and rolled back.
import { render } from "preact";
import { useEffect, useMemo, useState, useCallback } from "preact/hooks";
import { html, Problems, edited, fieldId } from "./common.js";
import { load, validate, engine } from "./engine.js";
import { Catalogue, valuesUsed } from "./rules.js";
import {
  JourneyEditor, ContentsEditor, SlotsEditor, CampaignsEditor, GoalsEditor, DestinationsEditor, TriggersEditor,
} from "./editors.js";
import { PreviewPanel } from "./preview.js";
import { PublishPanel, HistoryPanel, JsonPanel } from "./publish.js";

/** A check slower than this waits for a pause in typing. */
const SLOW_CHECK_MS = 40;
/** The pause, in milliseconds. */
const CHECK_PAUSE_MS = 300;

const TABS = ["Journey", "Contents", "Slots", "Campaigns", "Goals", "Destinations", "Triggers", "Preview", "Publish", "History", "JSON"];
const TAB_OF = { journey: "Journey", content: "Contents", slots: "Slots", campaigns: "Campaigns", goals: "Goals", destinations: "Destinations", triggers: "Triggers" };

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (r.status === 401) {
    location.href = "/login";
    throw new Error("signed out");
  }
  const data = await r.json();
  return { ok: r.ok, status: r.status, data };
}

/** The variables of the catalogue plus those the draft adds (its intents and contents). */
function catalogue(doc) {
  const own = [
    ...Object.keys(doc.journey?.intents ?? {}).map((t) => `intent.${t}`),
    ...Object.keys(doc.content ?? {}).map((c) => `seen.${c}`),
  ];
  return { variables: [...engine.variables(), ...own], values: valuesUsed(doc) };
}

function Start({ onStart }) {
  return html`<main class="start"><h1>Start a workspace</h1>
    <p>The workspace has no draft yet. Start from the example bundle (Acme Autos, the one the demo site shows), or import your JSON from the JSON tab afterwards.</p>
    <button type="button" class="primary" onClick=${onStart}>Start from the example bundle</button>
  </main>`;
}

function ProblemList({ problems, go }) {
  if (!problems.length) return html`<p class="ok" role="status">No problems: the draft compiles.</p>`;
  return html`<details class="problems" open><summary role="status">${problems.length} problem${problems.length > 1 ? "s" : ""} in the draft</summary>
    <ul>${problems.map((p) => html`<li><button type="button" class="link" onClick=${() => go(p)}>${p.path || "document"}</button>: ${p.message}</li>`)}</ul>
  </details>`;
}

function App() {
  const [me, setMe] = useState(null);
  const [overview, setOverview] = useState(null);
  const [doc, setDoc] = useState(null);
  const [base, setBase] = useState(null);
  const [dirty, setDirty] = useState(false);
  const [tab, setTab] = useState("Slots");
  const [content, setContent] = useState(null);
  const [live, setLive] = useState(null);
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const [status, setStatus] = useState("");
  const [published, setPublished] = useState(null);
  const [rolled, setRolled] = useState(null);

  const refresh = useCallback(async () => {
    const { data } = await api("/api/workspace");
    setOverview(data);
    if (data.liveDoc) {
      setLive({ version: data.liveDoc.version, doc: JSON.parse(data.liveDoc.doc) });
    } else if (data.revisions.length) {
      const first = data.revisions[data.revisions.length - 1];
      const { data: rev } = await api(`/api/revisions/${first.id}`);
      setLive({ version: null, doc: JSON.parse(rev.doc) });
    }
    return data;
  }, []);

  useEffect(() => {
    (async () => {
      await load();
      setMe((await api("/api/me")).data);
      const data = await refresh();
      if (data.head) {
        const { data: rev } = await api(`/api/revisions/${data.head.id}`);
        setDoc(JSON.parse(rev.doc));
        setBase(data.head.id);
      }
    })();
  }, []);

  // The engine checks the draft after every edit; a draft that takes it long (thousands
  // of candidates) is checked once typing pauses, so keys never wait for it.
  const [checked, setChecked] = useState({ problems: [], ms: 0 });
  useEffect(() => {
    if (!doc) return undefined;
    const run = () => {
      const t = performance.now();
      let problems;
      try {
        problems = validate(doc);
      } catch (e) {
        problems = [{ path: "", message: `the draft cannot be checked: ${e.message ?? e}` }];
      }
      setChecked({ problems, ms: performance.now() - t });
    };
    if (checked.ms < SLOW_CHECK_MS) {
      run();
      return undefined;
    }
    const timer = setTimeout(run, CHECK_PAUSE_MS);
    return () => clearTimeout(timer);
  }, [doc]);
  const cat = useMemo(() => (doc ? catalogue(doc) : { variables: [], values: new Map() }), [doc]);

  const update = useCallback((fn) => {
    setDoc((d) => edited(d, fn));
    setDirty(true);
  }, []);

  async function save(message) {
    const { ok, status: code, data } = await api("/api/revisions", { doc: JSON.stringify(doc, null, 2), message, parent: base });
    if (!ok) {
      setStatus(code === 409 ? `Not saved: ${data.head?.author} saved revision ${data.head?.id} since. Open it from History, then redo your change.` : `Not saved: ${data.error}`);
      return null;
    }
    setBase(data.revision.id);
    setDirty(false);
    setStatus(`Saved as revision ${data.revision.id}.`);
    await refresh();
    return data.revision.id;
  }

  async function start() {
    const example = await (await fetch("/assets/example.json")).json();
    const { ok, data } = await api("/api/revisions", { doc: JSON.stringify(example, null, 2), message: "Started from the example bundle", parent: null });
    if (ok) {
      setDoc(example);
      setBase(data.revision.id);
      await refresh();
    }
  }

  async function publish(message) {
    setBusy(true);
    setPublished(null);
    try {
      const revision = dirty || base === null ? await save(message || "Published") : base;
      if (revision === null) return;
      const { ok, data } = await api("/api/publish", { revision, message });
      setPublished(ok ? data : { error: `Refused: ${data.error}` });
      await refresh();
    } finally {
      setBusy(false);
    }
  }

  async function rollback(version) {
    setBusy(true);
    try {
      const { ok, data } = await api("/api/rollback", { version });
      setRolled(ok ? data : { error: `Refused: ${data.error}` });
      await refresh();
    } finally {
      setBusy(false);
    }
  }

  async function open(id) {
    const { data } = await api(`/api/revisions/${id}`);
    setDoc(JSON.parse(data.doc));
    setDirty(true);
    setStatus(`Revision ${id} opened as the draft: save it to restore it.`);
    setTab("Slots");
  }

  function go(problem) {
    const [head] = problem.path.split(/[.[]/);
    setTab(TAB_OF[head] ?? "JSON");
    const named = /^content(?:\.([A-Za-z0-9_-]+)|\[("(?:[^"\\]|\\.)*")\])/.exec(problem.path);
    if (named) setContent(named[1] ?? JSON.parse(named[2]));
    requestAnimationFrame(() => document.getElementById(fieldId(problem.path))?.focus());
  }

  if (!me || !overview) return html`<main><p role="status">Loading the studio…</p></main>`;
  if (!doc) return html`<${Start} onStart=${start} />`;
  const problems = checked.problems;
  const panel = {
    Journey: () => html`<${JourneyEditor} doc=${doc} update=${update} />`,
    Contents: () => html`<${ContentsEditor} doc=${doc} update=${update} variables=${cat.variables} selected=${content} select=${setContent} />`,
    Slots: () => html`<${SlotsEditor} doc=${doc} update=${update} />`,
    Campaigns: () => html`<${CampaignsEditor} doc=${doc} update=${update} />`,
    Goals: () => html`<${GoalsEditor} doc=${doc} update=${update} />`,
    Destinations: () => html`<${DestinationsEditor} doc=${doc} update=${update} />`,
    Triggers: () => html`<${TriggersEditor} doc=${doc} update=${update} />`,
    Preview: () => html`<${PreviewPanel} doc=${doc} valid=${problems.length === 0} />`,
    Publish: () => html`<${PublishPanel} doc=${doc} live=${live} problems=${problems} publish=${publish} busy=${busy} result=${published} />`,
    History: () => html`<${HistoryPanel} overview=${overview} open=${open} doc=${doc} rollback=${rollback} busy=${busy} result=${rolled} />`,
    JSON: () => html`<${JsonPanel} doc=${doc} replace=${(d) => { setDoc(d); setDirty(true); }} />`,
  }[tab];
  return html`<${Problems.Provider} value=${problems}><${Catalogue.Provider} value=${cat}>
    <header class="top">
      <strong>micromoment studio</strong>
      <span>${doc.id} · draft of version ${doc.version}</span>
      <span class="grow"></span>
      <span>Signed in as <strong>${me.name}</strong></span>
    </header>
    <div class="bar">
      <span role="status" class="save-state">${dirty ? "Unsaved changes" : base ? `Revision ${base}` : ""}${status ? ` · ${status}` : ""}</span>
      <label>Revision message <input type="text" value=${note} onInput=${(e) => setNote(e.currentTarget.value)} /></label>
      <button type="button" disabled=${!dirty} onClick=${async () => { if (await save(note)) setNote(""); }}>Save revision</button>
      <span class="hint">Checked in ${checked.ms.toFixed(1)} ms</span>
    </div>
    <${ProblemList} problems=${problems} go=${go} />
    <div role="tablist" aria-label="Parts of the bundle" class="tabs">
      ${TABS.map((t) => html`<button type="button" role="tab" id=${`tab-${t}`} aria-selected=${t === tab} aria-controls="panel" onClick=${() => setTab(t)}>${t}</button>`)}
    </div>
    <main role="tabpanel" id="panel" aria-labelledby=${`tab-${tab}`}>${panel()}</main>
  <//><//>`;
}

render(html`<${App} />`, document.getElementById("app"));
