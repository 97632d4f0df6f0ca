// The preview panel: the audience picked in the form (and, with experiments, the arm)
// selects precomputed cells; each slot shows its content in a sandboxed frame.
const data = JSON.parse(document.getElementById('mm-data').textContent);
// Previews load nothing from the network: the report works offline and leaks nothing.
const PREVIEW_HEAD = "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
  + "<style>body{font:14px system-ui,sans-serif;margin:8px}</style>";
const raw = atob(data.cells);
const wide = data.contents.length > 255;
function cellAt(i){ return wide ? raw.charCodeAt(2*i) | (raw.charCodeAt(2*i+1) << 8) : raw.charCodeAt(i); }
// Each experiment arm profile after the first: the cells where it differs, as pairs.
const arms = data.arms.map((pairs) => {
  const changed = new Map();
  for (let i = 0; i + 1 < pairs.length; i += 2) changed.set(pairs[i], pairs[i + 1]);
  return changed;
});
const form = document.querySelector('#preview form');
function pick(name){ return form.elements[name] ? Number(form.elements[name].value) : 0; }
function contentAt(i){ return arms[pick('arm')]?.get(i) ?? cellAt(i); }
function render(){
  const sizes = data.dims.map(d => d.values.length);
  const total = sizes.reduce((a, b) => a * b, 1);
  let combo = 0;
  data.dims.forEach((d, i) => { combo = combo * sizes[i] + pick('dim' + i); });
  const column = pick('device') * 2 + pick('channel');
  const base = ((pick('stage') * data.columns + column) * total + combo) * data.slots.length;
  data.slots.forEach((slot, s) => {
    const content = contentAt(base + s);
    const box = document.getElementById('slot-' + s);
    box.querySelector('h4').textContent = slot + ' \u2192 ' + data.contents[content];
    box.dataset.content = data.contents[content];
    box.querySelector('iframe').srcdoc = PREVIEW_HEAD + data.renditions[content];
  });
}
form.addEventListener('change', render);
render();
