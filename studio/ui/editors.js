// The editors of the authoring format (docs/format.md), one per part: the journey, the
// content bank, slots (with their candidates and experiments), campaigns, goals,
// destinations and triggers. Each edits the draft through `update(fn)`, which applies
// `fn` to a copy; every field shows the engine's problems at its path.
import { useEffect, useRef, useState } from "preact/hooks";
import Sortable from "sortablejs";
import {
  html, edited, tidy, move, period, pathOf, Field, TextField, NumberField, SelectField, TextArea, Checks,
  SectionProblems, useAllProblems, under, PERIOD_UNITS,
} from "./common.js";
import { RuleBuilder } from "./rules.js";
import { CodeEditor } from "./code.js";
import { SandboxedPreview, samplePlaceholders } from "./preview.js";

const stagesOf = (doc) => doc.journey?.stages ?? [];
const contentsOf = (doc) => Object.keys(doc.content ?? {});

/** A name for a new item: `base`, or `base-2`, `base-3`… when taken. */
function fresh(base, taken) {
  if (!taken.includes(base)) return base;
  for (let n = 2; ; n++) if (!taken.includes(`${base}-${n}`)) return `${base}-${n}`;
}

function CapFields({ path, cap, onChange, legend = "Cap" }) {
  const p = period(cap?.per);
  const set = (max, n, unit) => onChange(max === undefined && n === undefined ? undefined : { max, per: n === undefined ? undefined : `${n}${unit}` });
  return html`<fieldset class="inline"><legend>${legend}</legend>
    <${NumberField} label="At most (impressions)" path=${[...path, "max"]} also=${[pathOf(path)]} value=${cap?.max} step="1"
      onInput=${(v) => set(v, p.n, p.unit)} />
    <${NumberField} label="Per" path=${[...path, "per"]} value=${p.n} step="1" onInput=${(v) => set(cap?.max, v, p.unit)} />
    <${SelectField} label="Period unit" value=${p.unit} options=${PERIOD_UNITS} onChange=${(u) => set(cap?.max, p.n, u ?? "d")} />
  </fieldset>`;
}

/** `2026-12-01T00:00:00Z` as a `datetime-local` value in UTC, and back. */
const toLocal = (rfc) => (rfc ? rfc.replace(/:00Z$|Z$/, "").slice(0, 16) : "");
const toRfc = (local) => (local ? `${local.length === 16 ? `${local}:00` : local}Z` : undefined);

/** A schedule's window, in UTC: either end may be left empty (open). */
function ScheduleFields({ path, schedule, onChange }) {
  const set = (key, local) => {
    const next = { ...(schedule ?? {}), [key]: toRfc(local) };
    tidy(next);
    onChange(Object.keys(next).length ? next : undefined);
  };
  const field = (key, label) => html`<${Field} label=${label} path=${[...path, key]} control=${(id, d, bad) => html`
    <input id=${id} type="datetime-local" value=${toLocal(schedule?.[key])} aria-invalid=${bad ? "true" : undefined}
      aria-describedby=${d} onChange=${(e) => set(key, e.currentTarget.value)} />`} />`;
  return html`<fieldset class="inline"><legend>Schedule (UTC; empty: no limit)</legend>
    ${field("from", "Shows from")}
    ${field("until", "Shows until")}
    <${SectionProblems} path=${pathOf(path)} />
  </fieldset>`;
}

// ---------------------------------------------------------------- journey

export function JourneyEditor({ doc, update }) {
  const stages = stagesOf(doc);
  const transitions = doc.journey?.transitions ?? [];
  const intents = doc.journey?.intents ?? {};
  const j = (fn) => update((d) => { d.journey ??= { stages: [] }; fn(d.journey); });
  const [newIntent, setNewIntent] = useState("");
  return html`<section aria-labelledby="journey-h"><h2 id="journey-h">Journey</h2>
    <fieldset><legend>Bundle</legend>
      <${TextField} label="Bundle id" path=${["id"]} value=${doc.id} onInput=${(v) => update((d) => { d.id = v; })}
        hint="the edge keeps the versions of one id; the studio numbers them" />
      <${TextField} label="Bundle description" path=${["description"]} value=${doc.description}
        onInput=${(v) => update((d) => { d.description = v; tidy(d); })} />
    </fieldset>
    <${SectionProblems} path="journey" />
    <h3>Stages, in order</h3>
    <ol class="stages">${stages.map((s, i) => html`<li key=${i}>
      <${TextField} label=${`Stage ${i + 1}`} path=${["journey", "stages", i]} value=${s} onInput=${(v) => j((jj) => { jj.stages[i] = v; })} />
      <button type="button" class="small" disabled=${i === 0} onClick=${() => j((jj) => move(jj.stages, i, i - 1))}>Move stage ${s} up</button>
      <button type="button" class="small" onClick=${() => j((jj) => jj.stages.splice(i, 1))}>Remove stage ${s}</button>
    </li>`)}</ol>
    <button type="button" onClick=${() => j((jj) => jj.stages.push(fresh("stage", jj.stages)))}>Add stage</button>

    <h3>Transitions</h3>
    ${transitions.map((t, i) => html`<div class="card" role="group" aria-label=${`Transition ${i + 1} to ${t.to}`}>
      <${SelectField} label="To stage" path=${["journey", "transitions", i, "to"]} value=${t.to} options=${stages}
        onChange=${(v) => j((jj) => { jj.transitions[i].to = v; })} />
      <${Checks} legend="Only from (none: from any)" path=${["journey", "transitions", i, "from"]} options=${stages} value=${t.from ?? []}
        onChange=${(v) => j((jj) => { jj.transitions[i].from = v; tidy(jj.transitions[i]); })} />
      <${RuleBuilder} legend="When" path=${["journey", "transitions", i, "when"]} value=${t.when}
        onChange=${(v) => j((jj) => { jj.transitions[i].when = v; tidy(jj.transitions[i]); })} />
      <button type="button" class="small" onClick=${() => j((jj) => jj.transitions.splice(i, 1))}>Remove transition ${i + 1}</button>
    </div>`)}
    <button type="button" onClick=${() => j((jj) => { (jj.transitions ??= []).push({ to: stages[0] }); })}>Add transition</button>

    <h3>Intents</h3>
    ${Object.entries(intents).map(([name, intent]) => html`<div class="card" role="group" aria-label=${`Intent ${name}`}>
      <h4>${name}</h4>
      <${NumberField} label="Cap (highest score)" path=${["journey", "intents", name, "cap"]} value=${intent.cap}
        onInput=${(v) => j((jj) => { jj.intents[name].cap = v; tidy(jj.intents[name]); })} />
      <${NumberField} label="Half-life (days)" path=${["journey", "intents", name, "half_life_days"]} value=${intent.half_life_days}
        onInput=${(v) => j((jj) => { jj.intents[name].half_life_days = v; tidy(jj.intents[name]); })} />
      ${(intent.signals ?? []).map((s, k) => html`<div class="card inner" role="group" aria-label=${`Signal ${k + 1} of ${name}`}>
        <${NumberField} label="Adds" path=${["journey", "intents", name, "signals", k, "add"]} value=${s.add}
          onInput=${(v) => j((jj) => { jj.intents[name].signals[k].add = v; })} />
        <${RuleBuilder} legend="When" path=${["journey", "intents", name, "signals", k, "when"]} value=${s.when}
          onChange=${(v) => j((jj) => { jj.intents[name].signals[k].when = v; })} />
        <button type="button" class="small" onClick=${() => j((jj) => jj.intents[name].signals.splice(k, 1))}>Remove signal ${k + 1} of ${name}</button>
      </div>`)}
      <button type="button" class="small" onClick=${() => j((jj) => { (jj.intents[name].signals ??= []).push({ when: { "==": [{ var: "event" }, ""] }, add: 10 }); })}>Add signal to ${name}</button>
      <button type="button" class="small" onClick=${() => j((jj) => { delete jj.intents[name]; })}>Remove intent ${name}</button>
    </div>`)}
    <div class="row">
      <${TextField} label="New intent" value=${newIntent} onInput=${setNewIntent} />
      <button type="button" disabled=${!newIntent.trim()} onClick=${() => { j((jj) => { (jj.intents ??= {})[newIntent.trim()] = { signals: [], cap: 100, half_life_days: 14 }; }); setNewIntent(""); }}>Add intent</button>
    </div>
  </section>`;
}

// ---------------------------------------------------------------- contents

function PlaceholderPicker({ variables, onPick }) {
  const [chosen, setChosen] = useState("geo.city");
  return html`<div class="row">
    <label>Placeholder <select onChange=${(e) => setChosen(e.currentTarget.value)}>
      ${variables.map((v) => html`<option value=${v} selected=${v === chosen}>${v}</option>`)}
    </select></label>
    <button type="button" class="small" onClick=${() => onPick(`{{${chosen}}}`)}>Insert placeholder</button>
  </div>`;
}

export function ContentsEditor({ doc, update, variables, selected, select }) {
  const names = contentsOf(doc);
  const [name, setName] = useState("");
  const current = selected && doc.content?.[selected] ? selected : null;
  const c = current ? doc.content[current] : null;
  const htmlEditor = useRef(null);
  const problems = useAllProblems();
  const set = (fn) => update((d) => { fn(d.content[current]); tidy(d.content[current]); });
  const taken = name.trim() && names.includes(name.trim());
  return html`<section aria-labelledby="contents-h"><h2 id="contents-h">Contents</h2>
    <div class="split">
      <nav aria-label="Contents">
        <ul class="list">${names.map((n) => html`<li><button type="button" aria-current=${n === current ? "true" : undefined}
          class=${under(problems, ["content", n]).length ? "has-problem" : ""} onClick=${() => select(n)}>${n}</button></li>`)}</ul>
        <${TextField} label="New content name" value=${name} onInput=${setName} hint=${taken ? "a content has this name" : "letters, digits and dashes"} />
        <button type="button" disabled=${!name.trim() || taken} onClick=${() => {
          const n = name.trim();
          update((d) => { (d.content ??= {})[n] = { html: "" }; });
          select(n);
          setName("");
        }}>Create content</button>
      </nav>
      ${c ? html`<div class="editor" role="group" aria-label=${`Content ${current}`}>
        <h3>${current}</h3>
        <${SectionProblems} path=${pathOf(["content", current])} />
        <${TextField} label="Description" path=${["content", current, "description"]} value=${c.description} onInput=${(v) => set((x) => { x.description = v; })} />
        <${PlaceholderPicker} variables=${variables} onPick=${(text) => htmlEditor.current?.insert(text)} />
        <${CodeEditor} handle=${htmlEditor} label="HTML rendition" language="html" path=${["content", current, "html"]} value=${c.html ?? ""}
          onChange=${(v) => set((x) => { x.html = v; })} />
        <${CodeEditor} label="JSON rendition (apps)" language="json" path=${["content", current, "json"]}
          value=${c.json === undefined ? "" : JSON.stringify(c.json, null, 2)}
          onChange=${(v) => { try { const parsed = v.trim() ? JSON.parse(v) : undefined; set((x) => { x.json = parsed; }); } catch {} }} />
        <${TextArea} label="Text rendition (e-mail, push)" path=${["content", current, "text"]} value=${c.text} onInput=${(v) => set((x) => { x.text = v; })} />
        <h4>Rendered</h4>
        <${SandboxedPreview} title=${`Rendered preview of ${current}`} html=${samplePlaceholders(c.html ?? "")} />
        <button type="button" class="danger" onClick=${() => { update((d) => { delete d.content[current]; }); select(null); }}>Delete content ${current}</button>
      </div>` : html`<p>Choose a content, or create one.</p>`}
    </div>
  </section>`;
}

// ---------------------------------------------------------------- slots

function candidateLabel(c) {
  const what = c.experiment ? `experiment ${c.experiment.variants.map((v) => v.content).join(" / ")}` : c.content ?? "?";
  const when = c.schedule ? ` · scheduled ${c.schedule.from ? `from ${c.schedule.from}` : ""}${c.schedule.from && c.schedule.until ? " " : ""}${c.schedule.until ? `until ${c.schedule.until}` : ""}` : "";
  return `${c.id}: ${what}${when}`;
}

/**
 * The priority that puts a moved candidate between its new neighbours: halfway, the
 * neighbours' own when they tie (ties go in list order), 10 above the first; `null` when
 * there is no whole number between them.
 */
function priorityBetween(above, below) {
  const hi = above?.priority ?? 0;
  const lo = below?.priority ?? 0;
  if (!above) return below ? lo + 10 : 0;
  if (!below) return hi - 10;
  if (hi === lo) return hi;
  if (hi - lo >= 2) return Math.floor((hi + lo) / 2);
  return null;
}

/**
 * Puts a slot's candidates in the order a person arranged them, setting the moved one's
 * priority so the engine ranks them so (ties keep list order); when no whole number
 * fits between its neighbours, every candidate is renumbered 10 apart.
 */
function reorder(list, from, to) {
  move(list, from, to);
  const p = priorityBetween(list[to - 1], list[to + 1]);
  if (p !== null) list[to].priority = p;
  else list.forEach((c, i) => { c.priority = (list.length - i) * 10; });
}

function ExperimentFields({ path, experiment, contents, onChange }) {
  const total = experiment.variants.reduce((s, v) => s + (Number(v.weight) || 0), 0) || 1;
  const set = (fn) => onChange(edited(experiment, fn));
  return html`<fieldset><legend>Experiment</legend>
    ${experiment.variants.map((v, k) => html`<div class="variant" role="group" aria-label=${`Variant ${k + 1}`}>
      <${SelectField} label=${`Variant ${k + 1} content`} path=${[...path, "variants", k, "content"]} value=${v.content} options=${contents}
        onChange=${(x) => set((e) => { e.variants[k].content = x; })} />
      <label>Variant ${k + 1} weight <input type="range" min="1" max="100" step="1" value=${v.weight}
        onInput=${(e) => set((x) => { x.variants[k].weight = Number(e.currentTarget.value); })} /></label>
      <output>${Math.round((v.weight / total) * 100 * (1 - (experiment.holdout ?? 0)))} % of visitors</output>
      <button type="button" class="small" disabled=${experiment.variants.length < 2} onClick=${() => set((e) => e.variants.splice(k, 1))}>Remove variant ${k + 1}</button>
    </div>`)}
    <button type="button" class="small" onClick=${() => set((e) => e.variants.push({ content: contents[0], weight: 50 }))}>Add variant</button>
    <label>Holdout (%) <input type="range" min="0" max="50" step="1" value=${Math.round((experiment.holdout ?? 0) * 100)}
      onInput=${(e) => set((x) => { x.holdout = Number(e.currentTarget.value) / 100; if (!x.holdout) delete x.holdout; })} /></label>
    <output>${Math.round((experiment.holdout ?? 0) * 100)} % held out: they see the default</output>
  </fieldset>`;
}

function CandidateEditor({ doc, slot, i, c, update, renamed }) {
  const path = ["slots", slot, "candidates", i];
  const set = (fn) => update((d) => { const x = d.slots[slot].candidates[i]; fn(x); tidy(x); });
  const contents = contentsOf(doc);
  const campaigns = Object.keys(doc.campaigns ?? {});
  return html`<div class="candidate-editor">
    <${TextField} label="Candidate id" path=${[...path, "id"]} value=${c.id} onInput=${(v) => { set((x) => { x.id = v; }); renamed(v); }} />
    <${SelectField} label="Shows" value=${c.experiment ? "experiment" : "content"} options=${[["content", "one content"], ["experiment", "an experiment"]]}
      onChange=${(v) => set((x) => {
        if (v === "experiment" && !x.experiment) { x.experiment = { variants: [{ content: x.content ?? contents[0], weight: 50 }, { content: contents[1] ?? contents[0], weight: 50 }] }; delete x.content; }
        if (v === "content" && x.experiment) { x.content = x.experiment.variants[0]?.content; delete x.experiment; }
      })} />
    ${c.experiment
      ? html`<${ExperimentFields} path=${[...path, "experiment"]} experiment=${c.experiment} contents=${contents} onChange=${(e) => set((x) => { x.experiment = e; })} />`
      : html`<${SelectField} label="Content" path=${[...path, "content"]} value=${c.content} options=${contents} onChange=${(v) => set((x) => { x.content = v; })} />`}
    <${NumberField} label="Priority" path=${[...path, "priority"]} value=${c.priority} onInput=${(v) => set((x) => { x.priority = v; })}
      hint="higher first; dragging sets it" />
    <${Checks} legend="Stages (none: every stage)" path=${[...path, "stages"]} options=${stagesOf(doc)} value=${c.stages ?? []}
      onChange=${(v) => set((x) => { x.stages = v; })} />
    <${RuleBuilder} legend="When" path=${[...path, "when"]} value=${c.when} onChange=${(v) => set((x) => { x.when = v; })} />
    <${CapFields} path=${[...path, "cap"]} cap=${c.cap} onChange=${(v) => set((x) => { x.cap = v; })} />
    <${Checks} legend="After (shown only once these were seen)" path=${[...path, "after"]} options=${contents} value=${c.after ?? []}
      onChange=${(v) => set((x) => { x.after = v; })} />
    <${SelectField} label="Campaign" path=${[...path, "campaign"]} value=${c.campaign} options=${campaigns} empty="none"
      onChange=${(v) => set((x) => { x.campaign = v; })} />
    <${ScheduleFields} path=${[...path, "schedule"]} schedule=${c.schedule} onChange=${(v) => set((x) => { x.schedule = v; })} />
  </div>`;
}

/** The candidates' positions by priority, highest first, ties in list order: the engine's order. */
function byPriority(candidates) {
  return candidates.map((_, i) => i).sort((a, b) => (candidates[b].priority ?? 0) - (candidates[a].priority ?? 0) || a - b);
}

/** Puts the list itself in the engine's order, so positions on screen are list positions. */
function sortInPlace(list) {
  const sorted = byPriority(list).map((i) => list[i]);
  list.splice(0, list.length, ...sorted);
}

function SlotEditor({ doc, name, update }) {
  const slot = doc.slots[name];
  const candidates = slot.candidates ?? [];
  const listRef = useRef(null);
  const [open, setOpen] = useState(null);
  const contents = contentsOf(doc);
  const problems = useAllProblems();
  const s = (fn) => update((d) => { fn(d.slots[name]); });
  const shift = (from, to) => s((x) => { sortInPlace(x.candidates); reorder(x.candidates, from, to); });
  const shown = byPriority(candidates);
  useEffect(() => {
    if (!listRef.current) return undefined;
    const sortable = Sortable.create(listRef.current, {
      handle: ".drag",
      onEnd: (e) => {
        if (e.oldIndex === e.newIndex) return;
        // Let Preact own the DOM: put the node back, then re-render from the new order.
        const { item, from, oldIndex } = e;
        from.removeChild(item);
        from.insertBefore(item, from.children[oldIndex] ?? null);
        shift(e.oldIndex, e.newIndex);
      },
    });
    return () => sortable.destroy();
  }, [name, candidates.length]);
  const newId = fresh(`${name}-candidate`, candidates.map((c) => c.id));
  return html`<section class="slot" aria-labelledby=${`slot-${name}`}>
    <h3 id=${`slot-${name}`}>Slot ${name}</h3>
    <${SectionProblems} path=${pathOf(["slots", name])} />
    <${TextField} label="Description" path=${["slots", name, "description"]} value=${slot.description} onInput=${(v) => s((x) => { x.description = v; tidy(x); })} />
    <${SelectField} label="Default content" path=${["slots", name, "default"]} also=${[pathOf(["slots", name])]} value=${slot.default}
      options=${contents} empty="none" onChange=${(v) => s((x) => { x.default = v; if (v === undefined) delete x.default; })} />
    <h4>Candidates, highest priority first</h4>
    <ol class="candidates" ref=${listRef} aria-label=${`Candidates of ${name}`}>
      ${shown.map((i, pos) => {
        const c = candidates[i];
        return html`<li key=${i} class=${under(problems, ["slots", name, "candidates", i]).length ? "has-problem" : ""}>
        <div class="candidate-head">
          <span class="drag" title=${`Drag ${c.id} to reorder`}>⠿</span>
          <span class="summary">${candidateLabel(c)}${c.stages ? ` · ${c.stages.join(", ")}` : ""} · priority ${c.priority ?? 0}</span>
          <button type="button" class="small" aria-expanded=${open === c.id} onClick=${() => setOpen(open === c.id ? null : c.id)}>Edit ${c.id}</button>
          <button type="button" class="small" disabled=${pos === 0} onClick=${() => shift(pos, pos - 1)}>Move ${c.id} up</button>
          <button type="button" class="small" disabled=${pos === shown.length - 1} onClick=${() => shift(pos, pos + 1)}>Move ${c.id} down</button>
          <button type="button" class="small" onClick=${() => s((x) => x.candidates.splice(i, 1))}>Remove ${c.id}</button>
        </div>
        ${open === c.id ? html`<${CandidateEditor} doc=${doc} slot=${name} i=${i} c=${c} update=${update} renamed=${setOpen} />` : null}
      </li>`;
      })}
    </ol>
    <button type="button" onClick=${() => { s((x) => { (x.candidates ??= []).push({ id: newId, content: contents[0], priority: 0 }); }); setOpen(newId); }}>Add candidate to ${name}</button>
    <button type="button" onClick=${() => {
      const id = fresh(`${name}-test`, candidates.map((c) => c.id));
      s((x) => {
        const lowest = Math.min(0, ...(x.candidates ?? []).map((c) => c.priority ?? 0));
        (x.candidates ??= []).push({
          id, priority: lowest - 10,
          experiment: { variants: [{ content: x.default, weight: 50 }, { content: contents.find((c) => c !== x.default), weight: 50 }], holdout: 0.1 },
        });
      });
      setOpen(id);
    }}>Turn the default of ${name} into an experiment</button>
  </section>`;
}

export function SlotsEditor({ doc, update }) {
  const names = Object.keys(doc.slots ?? {});
  const [name, setName] = useState("");
  return html`<section aria-labelledby="slots-h"><h2 id="slots-h">Slots</h2>
    ${names.map((n) => html`<${SlotEditor} key=${n} doc=${doc} name=${n} update=${update} />`)}
    <div class="row">
      <${TextField} label="New slot name" value=${name} onInput=${setName} />
      <button type="button" disabled=${!name.trim() || names.includes(name.trim())}
        onClick=${() => { update((d) => { (d.slots ??= {})[name.trim()] = { default: contentsOf(d)[0], candidates: [] }; }); setName(""); }}>Add slot</button>
    </div>
  </section>`;
}

// ---------------------------------------------------------------- campaigns, goals

function NamedCards({ title, id, items, kind, make, render, update, section }) {
  const [name, setName] = useState("");
  return html`<section aria-labelledby=${id}><h2 id=${id}>${title}</h2>
    ${Object.entries(items).map(([n, item]) => html`<div class="card" role="group" aria-label=${`${kind} ${n}`}>
      <h3>${n}</h3>${render(n, item)}
      <button type="button" class="small" onClick=${() => update((d) => { delete d[section][n]; })}>Remove ${kind.toLowerCase()} ${n}</button>
    </div>`)}
    <div class="row">
      <${TextField} label=${`New ${kind.toLowerCase()} name`} value=${name} onInput=${setName} />
      <button type="button" disabled=${!name.trim() || items[name.trim()]} onClick=${() => { update((d) => { (d[section] ??= {})[name.trim()] = make(); }); setName(""); }}>Add ${kind.toLowerCase()}</button>
    </div>
  </section>`;
}

export function CampaignsEditor({ doc, update }) {
  return html`<${NamedCards} title="Campaigns" id="campaigns-h" kind="Campaign" section="campaigns" items=${doc.campaigns ?? {}} update=${update}
    make=${() => ({ cap: { max: 2, per: "7d" } })}
    render=${(n, c) => html`<${CapFields} legend="Shared cap" path=${["campaigns", n, "cap"]} cap=${c.cap}
      onChange=${(v) => update((d) => { d.campaigns[n].cap = v; })} />
      <${ScheduleFields} path=${["campaigns", n, "schedule"]} schedule=${c.schedule}
        onChange=${(v) => update((d) => { d.campaigns[n].schedule = v; tidy(d.campaigns[n]); })} />`} />`;
}

export function GoalsEditor({ doc, update }) {
  return html`<${NamedCards} title="Goals" id="goals-h" kind="Goal" section="goals" items=${doc.goals ?? {}} update=${update}
    make=${() => ({ event: "" })}
    render=${(n, g) => html`
      <${TextField} label="Event" path=${["goals", n, "event"]} value=${g.event} onInput=${(v) => update((d) => { d.goals[n].event = v; })} />
      <label class="check"><input type="checkbox" checked=${!!g.value} onChange=${(e) => update((d) => { d.goals[n].value = e.currentTarget.checked; if (!d.goals[n].value) delete d.goals[n].value; })} /> Conversions carry a value (revenue)</label>
      <${TextField} label="Description" path=${["goals", n, "description"]} value=${g.description} onInput=${(v) => update((d) => { d.goals[n].description = v; tidy(d.goals[n]); })} />`} />`;
}

// ---------------------------------------------------------------- destinations, triggers

export function DestinationsEditor({ doc, update }) {
  return html`<${NamedCards} title="Destinations" id="destinations-h" kind="Destination" section="destinations" items=${doc.destinations ?? {}} update=${update}
    make=${() => ({ kind: "webhook", url: "MM_DEST_URL", secret: "MM_DEST_SECRET" })}
    render=${(n, x) => html`
      <${SelectField} label="Kind" path=${["destinations", n, "kind"]} value=${x.kind} options=${[["webhook", "Standard Webhooks"], ["segment", "Segment"]]}
        onChange=${(v) => update((d) => { d.destinations[n].kind = v; })} />
      <${TextField} label="URL (the Worker var holding it)" path=${["destinations", n, "url"]} value=${x.url} onInput=${(v) => update((d) => { d.destinations[n].url = v; tidy(d.destinations[n]); })} />
      <${TextField} label="Secret (the Worker secret holding it)" path=${["destinations", n, "secret"]} value=${x.secret} onInput=${(v) => update((d) => { d.destinations[n].secret = v; })} />`} />`;
}

function moment(on) {
  if (!on) return "stage";
  return Object.keys(on)[0];
}

export function TriggersEditor({ doc, update }) {
  const triggers = doc.triggers ?? [];
  const destinations = Object.keys(doc.destinations ?? {});
  const set = (i, fn) => update((d) => { fn(d.triggers[i]); tidy(d.triggers[i]); });
  return html`<section aria-labelledby="triggers-h"><h2 id="triggers-h">Triggers</h2>
    ${triggers.map((t, i) => {
      const kind = moment(t.on);
      const path = ["triggers", i];
      return html`<div class="card" role="group" aria-label=${`Trigger ${t.id}`}>
        <${TextField} label="Trigger id" path=${[...path, "id"]} value=${t.id} onInput=${(v) => set(i, (x) => { x.id = v; })} />
        <${SelectField} label="Fires when" value=${kind} options=${[["stage", "the visitor enters a stage"], ["event", "the request carries an event"], ["when", "a rule turns true"], ...(kind === "feed" ? [["feed", "a feed's row changes"]] : [])]}
          onChange=${(v) => set(i, (x) => { x.on = v === "stage" ? { stage: stagesOf(doc)[0] } : v === "event" ? { event: "" } : { when: { "==": [{ var: "event" }, ""] } }; })} />
        ${kind === "stage" ? html`<${SelectField} label="Stage" path=${[...path, "on", "stage"]} value=${t.on.stage} options=${stagesOf(doc)} onChange=${(v) => set(i, (x) => { x.on = { stage: v }; })} />` : null}
        ${kind === "event" ? html`<${TextField} label="Event" path=${[...path, "on", "event"]} value=${t.on.event} onInput=${(v) => set(i, (x) => { x.on = { event: v }; })} />` : null}
        ${kind === "when" ? html`<${RuleBuilder} legend="Rule" path=${[...path, "on", "when"]} value=${t.on.when} onChange=${(v) => set(i, (x) => { x.on = { when: v ?? { "!!": [{ var: "event" }] } }; })} />` : null}
        ${kind === "feed" ? html`<p>Fires on the feed <strong>${t.on.feed?.feed ?? ""}</strong>; its rule is kept as written.</p>` : null}
        <${Checks} legend="Send to" path=${[...path, "send"]} options=${destinations} value=${t.send ?? []} onChange=${(v) => set(i, (x) => { x.send = v; })} />
        <${TextField} label="Delay (e.g. 1h; empty: at once)" path=${[...path, "delay"]} value=${t.delay} onInput=${(v) => set(i, (x) => { x.delay = v; })} />
        <${TextField} label="Unless this event comes first" path=${[...path, "unless", "event"]} value=${t.unless?.event}
          onInput=${(v) => set(i, (x) => { x.unless = v ? { event: v } : undefined; })} />
        <${CapFields} path=${[...path, "cap"]} cap=${t.cap} onChange=${(v) => set(i, (x) => { x.cap = v; })} />
        <button type="button" class="small" onClick=${() => update((d) => d.triggers.splice(i, 1))}>Remove trigger ${t.id}</button>
      </div>`;
    })}
    <button type="button" disabled=${!destinations.length} onClick=${() => update((d) => { (d.triggers ??= []).push({ id: fresh("trigger", (d.triggers ?? []).map((t) => t.id)), on: { stage: stagesOf(d)[0] }, send: [destinations[0]] }); })}>Add trigger</button>
    ${destinations.length ? null : html`<p class="hint">Add a destination first.</p>`}
  </section>`;
}
