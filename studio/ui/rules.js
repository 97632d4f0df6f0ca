// The visual rule builder: a rule as "all of" or "any of" a list of conditions, each a
// variable of the catalogue, an operator and a value, written as the JSON Logic the
// format takes (docs/format.md). A rule of another shape (nested groups, arithmetic) is
// kept as it is and shown as such, with a way to replace it: the builder never
// rewrites what it cannot show.
import { useContext } from "preact/hooks";
import { createContext } from "preact";
import { html, useProblems, fieldId } from "./common.js";

/** The catalogue of variables and the values the bundle already compares them to. */
export const Catalogue = createContext({ variables: [], values: new Map() });

const OPERATORS = [
  ["==", "is"],
  ["!=", "is not"],
  ["in", "is one of"],
  ["not in", "is not one of"],
  [">=", "is at least"],
  ["<=", "is at most"],
  [">", "is more than"],
  ["<", "is less than"],
  ["starts_with", "starts with"],
  ["glob", "matches the pattern"],
  ["known", "is known"],
  ["unknown", "is unknown"],
];
const BINARY = new Set(["==", "!=", ">=", "<=", ">", "<", "starts_with", "glob"]);

const NUMERIC = /^(intent\.|seen\.|visits|geo\.(lat|lon)$|time\.hour$|days_in_stage$|stage_index$|profile\.devices$|store\.(distance_km|qty)$)/;
const FLAGS = new Set(["returning", "consent.personalization", "profile.linked", "prefetch"]);

const varName = (x) => (x && typeof x === "object" && !Array.isArray(x) && typeof x.var === "string" ? x.var : null);

/** One condition of a rule, or null when it is not one the builder shows. */
function condition(node) {
  if (!node || typeof node !== "object" || Array.isArray(node)) return null;
  const [op, ...extra] = Object.keys(node);
  if (extra.length) return null;
  const args = node[op];
  if (BINARY.has(op) && Array.isArray(args) && args.length === 2 && varName(args[0]) && !(args[1] && typeof args[1] === "object")) {
    return { var: varName(args[0]), op, value: args[1] };
  }
  if (op === "in" && Array.isArray(args) && args.length === 2 && varName(args[0]) && Array.isArray(args[1])) {
    return { var: varName(args[0]), op: "in", value: args[1] };
  }
  if (op === "!!" && Array.isArray(args) && args.length === 1 && varName(args[0])) return { var: varName(args[0]), op: "known" };
  if (op === "!") {
    const inner = Array.isArray(args) && args.length === 1 ? args[0] : args;
    if (varName(inner)) return { var: varName(inner), op: "unknown" };
    const c = condition(inner);
    if (c?.op === "in") return { ...c, op: "not in" };
  }
  return null;
}

/** A rule as the builder shows it: `{mode, conditions}`, or null for another shape. */
export function parse(rule) {
  if (rule === undefined) return { mode: "all", conditions: [] };
  const [op, ...extra] = rule && typeof rule === "object" ? Object.keys(rule) : [];
  if (!extra.length && (op === "and" || op === "or") && Array.isArray(rule[op])) {
    const conditions = rule[op].map(condition);
    return conditions.every(Boolean) ? { mode: op === "and" ? "all" : "any", conditions } : null;
  }
  const one = condition(rule);
  return one ? { mode: "all", conditions: [one] } : null;
}

function node(c) {
  const v = { var: c.var };
  switch (c.op) {
    case "known": return { "!!": [v] };
    case "unknown": return { "!": [v] };
    case "in": return { in: [v, c.value ?? []] };
    case "not in": return { "!": [{ in: [v, c.value ?? []] }] };
    default: return { [c.op]: [v, c.value ?? null] };
  }
}

/** The JSON Logic of a builder's rule; undefined with no conditions (always true). */
export function write(model) {
  const nodes = model.conditions.filter((c) => c.var).map(node);
  if (!nodes.length) return undefined;
  if (nodes.length === 1) return nodes[0];
  return { [model.mode === "any" ? "or" : "and"]: nodes };
}

/** A value typed in the builder, as the variable takes it. */
function typed(name, text) {
  if (FLAGS.has(name)) return text === "true" ? true : text === "false" ? false : text;
  if (NUMERIC.test(name) && text.trim() !== "" && !Number.isNaN(Number(text))) return Number(text);
  return text;
}

function listText(value) {
  return Array.isArray(value) ? value.join(", ") : "";
}

/** Every value a document compares each variable to, for the builder's suggestions. */
export function valuesUsed(doc) {
  const out = new Map();
  const note = (name, v) => {
    if (v === null || typeof v === "object") return;
    if (!out.has(name)) out.set(name, new Set());
    out.get(name).add(String(v));
  };
  const walk = (x) => {
    if (Array.isArray(x)) return x.forEach(walk);
    if (!x || typeof x !== "object") return;
    const c = condition(x);
    if (c && c.value !== undefined) (Array.isArray(c.value) ? c.value : [c.value]).forEach((v) => note(c.var, v));
    Object.values(x).forEach(walk);
  };
  walk(doc);
  return out;
}

function ConditionRow({ n, c, set, remove, variables, values }) {
  const list = `values:${c.var}`;
  const unary = c.op === "known" || c.op === "unknown";
  const isList = c.op === "in" || c.op === "not in";
  return html`<div class="condition" role="group" aria-label=${`Condition ${n}`}>
    <label>Variable <select value=${c.var} onChange=${(e) => set({ ...c, var: e.currentTarget.value })}>
      ${variables.map((v) => html`<option value=${v} selected=${v === c.var}>${v}</option>`)}
    </select></label>
    <label>Operator <select onChange=${(e) => {
      const op = e.currentTarget.value;
      const wasList = Array.isArray(c.value);
      const toList = op === "in" || op === "not in";
      const value = toList === wasList ? c.value : toList ? (c.value === undefined ? [] : [c.value]) : c.value?.[0];
      set({ ...c, op, value: op === "known" || op === "unknown" ? undefined : value });
    }}>${OPERATORS.map(([v, t]) => html`<option value=${v} selected=${v === c.op}>${t}</option>`)}</select></label>
    ${unary ? null : html`<label>${isList ? "Values (comma-separated)" : "Value"} <input type="text" list=${list}
      value=${isList ? listText(c.value) : c.value ?? ""}
      onChange=${(e) => {
        const text = e.currentTarget.value;
        const value = isList
          ? text.split(",").map((t) => t.trim()).filter(Boolean).map((t) => typed(c.var, t))
          : typed(c.var, text);
        set({ ...c, value });
      }} /></label>
      <datalist id=${list}>${[...(values.get(c.var) ?? [])].map((v) => html`<option value=${v} />`)}</datalist>`}
    <button type="button" class="small" onClick=${remove}>Remove condition ${n}</button>
  </div>`;
}

/**
 * The builder for the rule at `path` (a `when`): `value` is the rule, `onChange` gets
 * the new one (undefined when it has no condition left).
 */
export function RuleBuilder({ legend, path, value, onChange }) {
  const { variables, values } = useContext(Catalogue);
  const problems = useProblems(path);
  const model = parse(value);
  const id = fieldId(path);
  if (!model) {
    return html`<fieldset class="rule" id=${id}><legend>${legend}</legend>
      <p>This rule uses logic the builder does not show; it is kept as written:</p>
      <pre class="code">${JSON.stringify(value, null, 1)}</pre>
      <button type="button" onClick=${() => onChange(undefined)}>Replace with a new rule</button>
      ${problems.map((p) => html`<div class="problem" role="alert">${p.message}</div>`)}
    </fieldset>`;
  }
  const update = (conditions, mode = model.mode) => onChange(write({ mode, conditions }));
  return html`<fieldset class=${`rule${problems.length ? " invalid" : ""}`} id=${id}><legend>${legend}</legend>
    ${model.conditions.length > 1 ? html`<label>Show when <select onChange=${(e) => update(model.conditions, e.currentTarget.value)}>
      <option value="all" selected=${model.mode === "all"}>all of these hold</option>
      <option value="any" selected=${model.mode === "any"}>any of these holds</option>
    </select></label>` : null}
    ${model.conditions.length === 0 ? html`<p class="hint">No condition: always.</p>` : null}
    ${model.conditions.map((c, i) => html`<${ConditionRow} key=${i} n=${i + 1} c=${c} variables=${variables} values=${values}
      set=${(next) => update(model.conditions.map((x, j) => (j === i ? next : x)))}
      remove=${() => update(model.conditions.filter((_, j) => j !== i))} />`)}
    <button type="button" class="small" onClick=${() => update([...model.conditions, { var: variables.includes("geo.country") ? "geo.country" : variables[0], op: "==", value: "" }])}>Add condition</button>
    ${problems.map((p) => html`<div class="problem" role="alert">${p.message}</div>`)}
  </fieldset>`;
}

