// What every editor shares: markup (Preact + htm), JSON paths as the engine writes them,
// the problems found at a field, and the small controls every form uses.
import { h, createContext } from "preact";
import { useContext, useId } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

/** The engine's path of a field: `slots.hero.candidates[2].cap.max`, `content["x y"].html`. */
export function pathOf(steps) {
  let out = "";
  for (const step of steps) {
    if (typeof step === "number") out += `[${step}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(step)) out += (out ? "." : "") + step;
    else out += `[${JSON.stringify(step)}]`;
  }
  return out;
}

/** The diagnostics of the draft, for fields to find theirs. */
export const Problems = createContext([]);

/** The problems at exactly these paths. */
export function useProblems(...paths) {
  const all = useContext(Problems);
  const wanted = paths.filter(Boolean).map((p) => (Array.isArray(p) ? pathOf(p) : p));
  return all.filter((d) => wanted.includes(d.path));
}

/** Every problem of the draft. */
export const useAllProblems = () => useContext(Problems);

/** The problems at or under a path (a section's), of `all`. */
export function under(all, path) {
  const p = Array.isArray(path) ? pathOf(path) : path;
  return all.filter((d) => d.path === p || d.path.startsWith(`${p}.`) || d.path.startsWith(`${p}[`));
}

/** The element id of a field, from its path, so a problem can be jumped to. */
export const fieldId = (path) => `f:${Array.isArray(path) ? pathOf(path) : path}`;

function ProblemText({ id, problems }) {
  if (!problems.length) return null;
  return html`<div class="problem" id=${id} role="alert">${problems.map((p) => html`<div>${p.message}</div>`)}</div>`;
}

/**
 * A labelled field: `control(id, describedBy, invalid)` renders the input; the problems
 * at `path` (and `also`) show under it and make it invalid for assistive technology.
 */
export function Field({ label, path, also = [], hint, control }) {
  const problems = useProblems(path, ...also);
  const anonymous = useId();
  const id = path ? fieldId(path) : anonymous;
  const errId = `${id}:problem`;
  const hintId = `${id}:hint`;
  const described = [problems.length ? errId : null, hint ? hintId : null].filter(Boolean).join(" ") || undefined;
  return html`<div class=${`field${problems.length ? " invalid" : ""}`}>
    <label for=${id}>${label}</label>
    ${control(id, described, problems.length > 0)}
    ${hint ? html`<div class="hint" id=${hintId}>${hint}</div>` : null}
    <${ProblemText} id=${errId} problems=${problems} />
  </div>`;
}

export function TextField({ label, path, value, onInput, hint, also, placeholder, list }) {
  return html`<${Field} label=${label} path=${path} hint=${hint} also=${also} control=${(id, d, bad) => html`
    <input id=${id} type="text" value=${value ?? ""} placeholder=${placeholder} list=${list}
      aria-invalid=${bad ? "true" : undefined} aria-describedby=${d}
      onInput=${(e) => onInput(e.currentTarget.value)} />`} />`;
}

export function NumberField({ label, path, value, onInput, hint, min, max, step, also }) {
  return html`<${Field} label=${label} path=${path} hint=${hint} also=${also} control=${(id, d, bad) => html`
    <input id=${id} type="number" value=${value ?? ""} min=${min} max=${max} step=${step ?? "any"}
      aria-invalid=${bad ? "true" : undefined} aria-describedby=${d}
      onInput=${(e) => {
        const text = e.currentTarget.value;
        onInput(text === "" ? undefined : Number(text));
      }} />`} />`;
}

export function SelectField({ label, path, value, options, onChange, hint, also, empty }) {
  return html`<${Field} label=${label} path=${path} hint=${hint} also=${also} control=${(id, d, bad) => html`
    <select id=${id} aria-invalid=${bad ? "true" : undefined} aria-describedby=${d}
      onChange=${(e) => onChange(e.currentTarget.value || undefined)}>
      ${empty !== undefined ? html`<option value="" selected=${!value}>${empty}</option>` : null}
      ${options.map((o) => {
        const [v, text] = Array.isArray(o) ? o : [o, o];
        return html`<option value=${v} selected=${v === value}>${text}</option>`;
      })}
    </select>`} />`;
}

export function TextArea({ label, path, value, onInput, rows = 3, hint }) {
  return html`<${Field} label=${label} path=${path} hint=${hint} control=${(id, d, bad) => html`
    <textarea id=${id} rows=${rows} aria-invalid=${bad ? "true" : undefined} aria-describedby=${d}
      onInput=${(e) => onInput(e.currentTarget.value)}>${value ?? ""}</textarea>`} />`;
}

/** A group of checkboxes: the chosen values of `options`. */
export function Checks({ legend, path, options, value = [], onChange }) {
  const problems = useProblems(path);
  return html`<fieldset class=${`checks${problems.length ? " invalid" : ""}`} id=${path ? fieldId(path) : undefined}>
    <legend>${legend}</legend>
    ${options.map((o) => html`<label class="check"><input type="checkbox" checked=${value.includes(o)}
      onChange=${(e) => onChange(e.currentTarget.checked ? options.filter((x) => x === o || value.includes(x)) : value.filter((x) => x !== o))} /> ${o}</label>`)}
    <${ProblemText} id=${path ? `${fieldId(path)}:problem` : undefined} problems=${problems} />
  </fieldset>`;
}

/** The problems at or under a section, listed at its top. */
export function SectionProblems({ path }) {
  const problems = useProblems(path);
  return html`<${ProblemText} id=${`${fieldId(path)}:problem`} problems=${problems} />`;
}

/** A copy of `value` with `fn` applied, for immutable edits. */
export function edited(value, fn) {
  const copy = structuredClone(value);
  fn(copy);
  return copy;
}

/** Removes keys whose value is undefined, empty text or an empty list. */
export function tidy(object) {
  for (const [k, v] of Object.entries(object)) {
    if (v === undefined || v === "" || (Array.isArray(v) && v.length === 0)) delete object[k];
  }
  return object;
}

/** Moves an item of a list from one index to another. */
export function move(list, from, to) {
  const [item] = list.splice(from, 1);
  list.splice(to, 0, item);
}

export const DEVICES = ["mobile", "tablet", "desktop", "tv", "bot"];
export const CHANNELS = ["web", "app", "email", "store", "push"];
export const PERIOD_UNITS = [["h", "hours"], ["d", "days"], ["w", "weeks"]];

/** `7d` → `{n: 7, unit: "d"}`. */
export function period(text) {
  const m = /^(\d+)\s*([a-z]+)$/.exec(text ?? "");
  return m ? { n: Number(m[1]), unit: m[2] } : { n: undefined, unit: "d" };
}
