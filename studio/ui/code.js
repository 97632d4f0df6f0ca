// A code editor for renditions and for engineers' JSON (CodeMirror 6): labelled for
// assistive technology, its problems under it, and `handle.current.insert(text)` to put a
// placeholder at the cursor.
import { useEffect, useRef } from "preact/hooks";
import { EditorView, basicSetup } from "codemirror";
import { EditorState } from "@codemirror/state";
import { html as htmlLanguage } from "@codemirror/lang-html";
import { json as jsonLanguage } from "@codemirror/lang-json";
import { html, useProblems, fieldId } from "./common.js";

export function CodeEditor({ label, language, path, value, onChange, handle, rows = 8 }) {
  const host = useRef(null);
  const view = useRef(null);
  const latest = useRef(onChange);
  latest.current = onChange;
  const problems = useProblems(path);
  const id = path ? fieldId(path) : `code:${label}`;
  useEffect(() => {
    const state = EditorState.create({
      doc: value,
      extensions: [
        basicSetup,
        language === "json" ? jsonLanguage() : htmlLanguage(),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": label, id }),
        EditorView.updateListener.of((u) => { if (u.docChanged) latest.current(u.state.doc.toString()); }),
      ],
    });
    view.current = new EditorView({ state, parent: host.current });
    if (handle) {
      handle.current = {
        insert(text) {
          const v = view.current;
          const { from, to } = v.state.selection.main;
          v.dispatch({ changes: { from, to, insert: text }, selection: { anchor: from + text.length } });
          v.focus();
        },
      };
    }
    return () => view.current.destroy();
  }, [label]);
  // A change from elsewhere (another editor, an import, a restore) replaces the text.
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
  }, [value]);
  return html`<div class=${`field code${problems.length ? " invalid" : ""}`}>
    <div class="label" aria-hidden="true">${label}</div>
    <div class="cm-host" ref=${host} style=${`min-height:${rows * 1.4}em`}></div>
    ${problems.map((p) => html`<div class="problem" role="alert">${p.message}</div>`)}
  </div>`;
}
