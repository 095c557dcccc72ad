// arcscan label: the page. Plain JS, no build step. The server holds the truth (the labels
// CSV); the page draws the frame from its raw counts, shows every label of the frame as a box
// of the patch size, and sends each change at once. Undo replays the inverse change.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("arcscan-token");
if (token) sessionStorage.setItem("arcscan-token", token);

const S = {
  state: null, files: [], order: [], file: null, frame: 0, meta: null, pixels: null,
  labels: [], revision: null, suggestions: [], selected: null, undo: [], probability: null, target: null,
};
const saved = JSON.parse(localStorage.getItem("arcscan-label") || "{}");

async function api(method, path, body) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  if (body) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  if (!answer.ok) {
    let message = answer.statusText;
    try { message = (await answer.json()).error; } catch (_) { /* not JSON */ }
    throw new Error(`${answer.status}: ${message}`);
  }
  return answer;
}
const query = (params) => new URLSearchParams(params).toString();
const here = () => ({ file: S.file, frame: S.frame });

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}
async function guarded(work) {
  try { await work(); } catch (err) { status(err.message, true); }
}
function remember() {
  localStorage.setItem("arcscan-label", JSON.stringify({
    file: S.file, frame: S.frame, low: $("low").value, high: $("high").value, gamma: $("gamma").value,
    zoom: $("zoom").value, who: $("who").value, model: $("show-model").checked, opacity: $("opacity").value,
  }));
}

// ---- frames -------------------------------------------------------------------------------
function stretch(pixels, width, height) {
  const histogram = new Uint32Array(65536);
  for (const v of pixels) histogram[v]++;
  const at = (percent) => {
    const goal = Math.min(pixels.length - 1, Math.max(0, Math.floor((percent / 100) * pixels.length)));
    let sum = 0;
    for (let v = 0; v < 65536; v++) { sum += histogram[v]; if (sum > goal) return v; }
    return 65535;
  };
  const low = at(+$("low").value), high = Math.max(at(+$("high").value), low + 1), gamma = +$("gamma").value;
  const lut = new Uint8ClampedArray(65536);
  for (let v = 0; v < 65536; v++) lut[v] = 255 * Math.pow(Math.min(1, Math.max(0, (v - low) / (high - low))), 1 / gamma);
  const image = new ImageData(width, height);
  for (let i = 0; i < pixels.length; i++) {
    const g = lut[pixels[i]];
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = g;
    image.data[4 * i + 3] = 255;
  }
  return image;
}

function drawFrame() {
  if (!S.meta) return;
  const { width, height } = S.meta, zoom = +$("zoom").value;
  $("gamma-value").textContent = (+$("gamma").value).toFixed(2);
  for (const canvas of [$("frame"), $("probability")]) {
    canvas.width = width; canvas.height = height;
    canvas.style.width = `${width * zoom}px`; canvas.style.height = `${height * zoom}px`;
  }
  $("frame").getContext("2d").putImageData(stretch(S.pixels, width, height), 0, 0);
  drawProbability();
  const svg = $("boxes");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width * zoom); svg.setAttribute("height", height * zoom);
  drawBoxes();
}

function drawProbability() {
  const canvas = $("probability"), context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!$("show-model").checked || !S.probability) return;
  const { width, height } = S.meta, p = S.probability, opacity = +$("opacity").value;
  const image = new ImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    image.data[4 * i] = 255; image.data[4 * i + 1] = 150; image.data[4 * i + 2] = 0;
    image.data[4 * i + 3] = p[4 * i] * opacity;
  }
  context.putImageData(image, 0, 0);
}

let overlayLoad = 0;  // only the latest overlay request paints
async function loadProbability() {
  S.probability = null;
  const ticket = ++overlayLoad;
  if (!$("show-model").checked || !S.state.model || !S.meta) return drawProbability();
  const scanning = "model: scanning the frame…";
  status(scanning);
  const at = here();
  const blob = await (await api("GET", "/api/probability?" + query(at))).blob();
  const bitmap = await createImageBitmap(blob);
  if (ticket !== overlayLoad || at.file !== S.file || at.frame !== S.frame) return;
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height), context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  S.probability = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  drawProbability();
  if ($("status").textContent === scanning) status(`model ${S.state.model}: arc probability shown`);  // not over a newer message (suggestions)
}

let navigation = 0;  // the latest move wins when keys come faster than frames load
async function loadFrame(file, frame) {
  const at = { file, frame }, ticket = ++navigation;
  S.target = at;
  const [meta, raw] = await Promise.all([
    api("GET", "/api/frame?" + query(at)).then((r) => r.json()),
    api("GET", "/api/pixels?" + query(at)).then((r) => r.arrayBuffer()),
  ]);
  if (ticket !== navigation) return;
  Object.assign(S, { file, frame, meta, pixels: new Uint16Array(raw), suggestions: [], selected: null, probability: null });
  $("where").textContent = `${file} · frame ${frame}${meta.timestamp ? " · " + meta.timestamp.replace("T", " ").slice(0, 23) : ""}`;
  document.title = `arcscan label · ${file} ${frame}`;
  hideMenu();
  drawFrame(); listFiles(); listFrames(); listSuggestions(); remember();
  status(`${meta.width}x${meta.height}, patch box ${meta.box} px`);
  await loadProbability();
}

function step(delta) {
  const from = S.target || here();
  const at = S.order.findIndex((o) => o.file === from.file && o.frame === from.frame);
  const next = S.order[at + delta];
  if (next) return loadFrame(next.file, next.frame);
}

// ---- lists ----------------------------------------------------------------------------------
function button(text, current, onclick) {
  const li = document.createElement("li"), b = document.createElement("button");
  b.textContent = text; b.className = current ? "current" : ""; b.onclick = () => guarded(onclick);
  li.append(b);
  return li;
}
function countOn(file, frame) {
  const mine = S.labels.filter((l) => l.file === file && (frame === undefined || l.frame === frame));
  const arcs = mine.filter((l) => l.label === "arc").length;
  return mine.length ? ` (${arcs} arc, ${mine.length - arcs} other)` : "";
}
function listFiles() {
  $("files").replaceChildren(...S.files.map((f) =>
    button(`${f.file} · ${f.frames.length} frame${f.frames.length > 1 ? "s" : ""}${countOn(f.file)}`, f.file === S.file, () => loadFrame(f.file, 0))));
}
function listFrames() {
  const file = S.files.find((f) => f.file === S.file);
  $("frames").replaceChildren(...(file ? file.frames : []).map((f) =>
    button(`${f.index}${f.timestamp ? " · " + f.timestamp.slice(11, 19) : ""}${countOn(S.file, f.index)}`, f.index === S.frame, () => loadFrame(S.file, f.index))));
  const current = $("frames").querySelector(".current");
  if (current) current.scrollIntoView({ block: "nearest" });
}
function listSuggestions() {
  $("suggestions").replaceChildren(...S.suggestions.map((s, i) =>
    button(`${s.kind === "uncertain" ? "uncertain" : "disagrees with " + s.label} (${s.x}, ${s.y}) p=${s.probability.toFixed(2)}`, false, () => select({ suggestion: i }))));
}
function showCounts(counts) {
  const target = S.state.target;
  $("count-arc").textContent = `arc ${counts.arc}/${target.arc}`;
  $("count-other").textContent = `other ${counts.other}/${target.other}`;
}

// ---- boxes ----------------------------------------------------------------------------------
function group(kind, x, y, text, attributes) {
  const box = S.meta.box, g = document.createElementNS(SVG, "g");
  g.setAttribute("class", kind);
  for (const [k, v] of Object.entries(attributes)) g.dataset[k] = v;
  const rect = document.createElementNS(SVG, "rect");
  const half = Math.floor(box / 2);
  Object.entries({ class: "box", x: x - half, y: y - half, width: box, height: box }).forEach(([k, v]) => rect.setAttribute(k, v));
  const handle = document.createElementNS(SVG, "rect"), h = Math.max(3, Math.round(box / 2));
  Object.entries({ class: "handle", x: x - h / 2, y: y - h / 2, width: h, height: h }).forEach(([k, v]) => handle.setAttribute(k, v));
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", x - half + 1); label.setAttribute("y", y - half + Math.max(5, box / 5));
  label.style.fontSize = `${Math.max(5, box / 5)}px`; label.textContent = text;
  g.append(rect, label, handle);
  return g;
}
function drawBoxes() {
  if (!S.meta) return;
  const svg = $("boxes"), items = [];
  S.labels.forEach((l) => {
    if (l.file !== S.file || l.frame !== S.frame) return;
    const g = group(`label ${l.label}`, l.x, l.y, l.label, { file: l.file, frame: l.frame, x: l.x, y: l.y, label: l.label });
    if (S.selected && S.selected.x === l.x && S.selected.y === l.y && S.selected.suggestion === undefined) g.classList.add("selected");
    g.querySelector(".handle").addEventListener("click", (e) => { e.stopPropagation(); select({ x: l.x, y: l.y }); });
    items.push(g);
  });
  S.suggestions.forEach((s, i) => {
    const g = group(`suggestion ${s.kind}`, s.x, s.y, `? ${s.probability.toFixed(2)}`, { kind: s.kind, x: s.x, y: s.y, probability: s.probability });
    if (S.selected && S.selected.suggestion === i) g.classList.add("selected");
    g.querySelector(".handle").addEventListener("click", (e) => { e.stopPropagation(); select({ suggestion: i }); });
    items.push(g);
  });
  svg.replaceChildren(...items);
}

function labelAt(at, x, y) {
  return S.labels.find((l) => l.file === at.file && l.frame === at.frame && l.x === x && l.y === y);
}
function select(what) {
  if (what.suggestion !== undefined) {
    const s = S.suggestions[what.suggestion];
    S.selected = s.kind === "disagree" ? { x: s.x, y: s.y } : { ...what, x: s.x, y: s.y };
  } else S.selected = what;
  drawBoxes();
  const zoom = +$("zoom").value, menu = $("menu");
  menu.style.left = `${(S.selected.x + S.meta.box / 2) * zoom + 4}px`;
  menu.style.top = `${(S.selected.y - S.meta.box / 2) * zoom}px`;
  menu.querySelector("[data-act=delete]").textContent = S.selected.suggestion !== undefined ? "dismiss (x)" : "delete (x)";
  menu.hidden = false;
}
function hideMenu() { $("menu").hidden = true; S.selected = null; }

async function act(action) {
  if (!S.selected) return;
  const { x, y, suggestion } = S.selected;
  if (suggestion !== undefined) S.suggestions.splice(suggestion, 1);
  hideMenu();
  if (action === "delete") { if (suggestion === undefined) await remove(here(), x, y); else { drawBoxes(); listSuggestions(); } }
  else await put(here(), x, y, action);
  listSuggestions();
}

// ---- changes ----------------------------------------------------------------------------------
function applyLabels(answer) {
  if (answer.unchanged) return;
  S.labels = answer.labels; S.revision = answer.revision;
  S.suggestions = S.suggestions.filter((s) => s.kind !== "disagree" || (labelAt(here(), s.x, s.y) || {}).label === s.label);
  showCounts(answer.counts); drawBoxes(); listFiles(); listFrames(); listSuggestions();
}
async function put(at, x, y, label, record = true) {
  const before = labelAt(at, x, y);
  const answer = await (await api("PUT", "/api/labels", { ...at, x, y, label, who: $("who").value })).json();
  if (record && (!before || before.label !== label)) S.undo.push(before ? { ...at, x, y, label: before.label } : { ...at, x, y, label: null });
  applyLabels(answer);
  status(`${label} at (${x}, ${y}) saved`);
}
async function remove(at, x, y, record = true) {
  const before = labelAt(at, x, y);
  const answer = await (await api("DELETE", "/api/labels?" + query({ ...at, x, y }))).json();
  if (record && before) S.undo.push({ ...at, x, y, label: before.label });
  applyLabels(answer);
  status(`label at (${x}, ${y}) deleted`);
}
async function undo() {
  const last = S.undo.pop();
  if (!last) return status("nothing to undo");
  const at = { file: last.file, frame: last.frame };
  if (at.file !== S.file || at.frame !== S.frame) await loadFrame(at.file, at.frame);
  if (last.label === null) await remove(at, last.x, last.y, false);
  else await put(at, last.x, last.y, last.label, false);
  status(`undone: (${last.x}, ${last.y}) ${last.label === null ? "removed" : "is " + last.label + " again"}`);
}
async function suggest() {
  if (!S.state.model) return status("no model: start arcscan label with --checkpoint or --alias", true);
  status("model: looking for the patches that teach it most…");
  const answer = await (await api("GET", "/api/suggest?" + query({ ...here(), n: 8 }))).json();
  S.suggestions = [...answer.disagree, ...answer.uncertain];
  drawBoxes(); listSuggestions();
  const count = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  status(`${count(answer.uncertain.length, "uncertain patch", "uncertain patches")}, ${count(answer.disagree.length, "label", "labels")} the model disagrees with`);
}
async function poll() {
  if (document.hidden || !S.state) return;
  applyLabels(await (await api("GET", "/api/labels?" + query({ since: S.revision }))).json());
}

// ---- events -----------------------------------------------------------------------------------
$("boxes").addEventListener("click", (e) => guarded(async () => {
  if (!S.meta) return;
  if (S.selected) return hideMenu() || drawBoxes();
  const rect = $("boxes").getBoundingClientRect(), zoom = +$("zoom").value;
  const x = Math.floor((e.clientX - rect.left) / zoom), y = Math.floor((e.clientY - rect.top) / zoom);
  if (x < 0 || y < 0 || x >= S.meta.width || y >= S.meta.height) return;
  await put(here(), x, y, e.shiftKey ? "other" : "arc");
}));
$("menu").addEventListener("click", (e) => { if (e.target.dataset.act) guarded(() => act(e.target.dataset.act)); });
for (const id of ["low", "high", "gamma", "zoom"]) $(id).addEventListener("input", () => { drawFrame(); remember(); if (S.selected) select(S.selected); });
$("opacity").addEventListener("input", () => { drawProbability(); remember(); });
$("show-model").addEventListener("change", () => { remember(); guarded(loadProbability); });
$("who").addEventListener("change", remember);
$("prev").onclick = () => guarded(() => step(-1));
$("next").onclick = () => guarded(() => step(1));
$("suggest").onclick = () => guarded(suggest);
$("undo").onclick = () => guarded(undo);
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  const zoom = $("zoom"), key = e.key;
  const keys = {
    n: () => step(1), ArrowRight: () => step(1), p: () => step(-1), ArrowLeft: () => step(-1),
    a: () => act("arc"), o: () => act("other"), x: () => act("delete"), Delete: () => act("delete"), Backspace: () => act("delete"),
    u: undo, s: suggest, Escape: () => { hideMenu(); drawBoxes(); },
    m: () => { $("show-model").checked = !$("show-model").checked; remember(); return loadProbability(); },
    "+": () => { zoom.selectedIndex = Math.min(zoom.options.length - 1, zoom.selectedIndex + 1); drawFrame(); },
    "-": () => { zoom.selectedIndex = Math.max(0, zoom.selectedIndex - 1); drawFrame(); },
  };
  const run = (e.ctrlKey || e.metaKey) && key === "z" ? undo : !e.ctrlKey && !e.metaKey && !e.altKey && keys[key];
  if (run) { e.preventDefault(); guarded(run); }
});

async function start() {
  S.state = await (await api("GET", "/api/state")).json();
  $("source").textContent = `${S.state.frames_dir}/ → ${S.state.labels_file}${S.state.model ? " · model " + S.state.model : " · no model"}`;
  $("who").value = saved.who || S.state.who;
  for (const id of ["low", "high", "gamma", "opacity"]) if (saved[id] !== undefined) $(id).value = saved[id];
  $("show-model").checked = S.state.model !== null && saved.model !== false;
  $("show-model").disabled = $("suggest").disabled = S.state.model === null;
  const listing = await (await api("GET", "/api/files")).json();
  S.files = listing.files;
  S.order = S.files.flatMap((f) => f.frames.map((fr) => ({ file: f.file, frame: fr.index })));
  $("skipped").textContent = listing.skipped.length ? `not frames: ${listing.skipped.map((s) => s.file).join(", ")}` : "";
  applyLabels(await (await api("GET", "/api/labels")).json());
  if (!S.order.length) return status("no frame files in this folder", true);
  const first = S.files[0], fit = Math.max(first.frames[0].width, first.frames[0].height);
  $("zoom").value = saved.zoom || ["4", "3", "2", "1.5", "1"].find((z) => z * fit <= 900) || "0.5";
  const resume = S.order.find((o) => o.file === saved.file && o.frame === saved.frame) || S.order[0];
  await loadFrame(resume.file, resume.frame);
  setInterval(() => guarded(poll), 2000);
}
guarded(start);
