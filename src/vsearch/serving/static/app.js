// vsearch web page: upload / drop / pick a photo, POST /search, draw the candidate boxes
// (objects found in the photo; click one to search it) and the searched box, show results.
// Plain browser JavaScript, no external libraries (the service may run without internet).
"use strict";

const $ = (id) => document.getElementById(id);
// candidate: the index (into the answer's candidates) the user picked; null = the best one.
const state = { blob: null, userBox: null, candidate: null, maxK: 100 };

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

async function loadInfo() {
  try {
    const r = await fetch("/info", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    const info = await r.json();
    const status = $("status");
    if (info.serving) {
      const m = info.serving.model || {};
      status.textContent = `release ${info.serving.release} · model ${m.version || "?"} ` +
        `(${String(m.fingerprint || "").slice(0, 12)}) · ${info.serving.items} items`;
      const select = $("category");
      for (const c of info.serving.categories) {
        const opt = document.createElement("option");
        opt.value = c;
        opt.textContent = c;
        select.appendChild(opt);
      }
    } else {
      status.textContent = info.error || "no release loaded";
      status.classList.add("bad");
    }
    if (info.limits) {
      state.maxK = info.limits.max_k;
      $("k").max = String(info.limits.max_k);
      $("k").value = String(info.limits.default_k);
    }
  } catch (e) {
    $("status").textContent = `service unreachable: ${e}`;
    $("status").classList.add("bad");
  }
}

async function loadSamples() {
  try {
    const r = await fetch("/samples");
    const { samples } = await r.json();
    const box = $("samples");
    for (const s of samples) {
      const img = document.createElement("img");
      img.src = s.image_url;
      img.alt = `sample query ${s.query_id}`;
      img.title = s.query_id;
      img.tabIndex = 0;
      const pick = async () => {
        const resp = await fetch(s.image_url);
        setPhoto(await resp.blob());
      };
      img.addEventListener("click", pick);
      img.addEventListener("keydown", (ev) => { if (ev.key === "Enter") pick(); });
      box.appendChild(img);
    }
  } catch (e) {
    /* samples are optional */
  }
}

function setPhoto(blob) {
  state.blob = blob;
  state.userBox = null;
  state.candidate = null;
  $("cands").textContent = "";
  $("user-box").hidden = true;
  $("clear-box").disabled = true;
  $("photo").src = URL.createObjectURL(blob);
  $("drop-hint").hidden = true;
  $("stage").hidden = false;
  $("again").disabled = false;
  search();
}

function placeBox(el, box) {
  const [x0, y0, x1, y1] = box;
  el.style.left = `${x0 * 100}%`;
  el.style.top = `${y0 * 100}%`;
  el.style.width = `${(x1 - x0) * 100}%`;
  el.style.height = `${(y1 - y0) * 100}%`;
  el.hidden = false;
}

async function search() {
  if (!state.blob) return;
  showError("");
  const form = new FormData();
  form.append("image", state.blob, "query");
  const category = $("category").value;
  if (category) form.append("category", category);
  form.append("k", $("k").value || "10");
  // Filters are applied inside the search (k matching results when k matching listings exist).
  if ($("price-min").value) form.append("price_min", $("price-min").value);
  if ($("price-max").value) form.append("price_max", $("price-max").value);
  for (const s of $("sellers").value.split(",")) {
    if (s.trim()) form.append("seller", s.trim());
  }
  if ($("in-stock").checked) form.append("in_stock", "true");
  // The box is normalised to the photo as displayed: the browser shows a JPEG turned by its
  // EXIF orientation (CSS image-orientation: from-image, set in style.css), and the service
  // applies the same orientation when it decodes, so both describe the same pixels.
  // A drawn box wins over a picked candidate (the service takes one or the other).
  if (state.userBox) form.append("box", state.userBox.map((v) => v.toFixed(4)).join(","));
  else if (state.candidate !== null) form.append("candidate", String(state.candidate));
  $("results").textContent = "searching…";
  let body;
  try {
    const r = await fetch("/search", { method: "POST", body: form });
    body = await r.json();
    if (!r.ok) {
      $("results").textContent = "";
      $("summary").hidden = true;
      $("box").hidden = true;
      $("look").hidden = true;
      showError(`${r.status}: ${body.error || "search failed"}`);
      return;
    }
  } catch (e) {
    $("results").textContent = "";
    showError(`request failed: ${e}`);
    return;
  }
  render(body);
}

function pct(x) {
  return `${(100 * x).toFixed(1)}%`;
}

// The objects the model found, most confident first; each has a button that searches it.
function renderCandidates(body) {
  const layer = $("cands");
  layer.textContent = "";
  (body.candidates || []).forEach((c, i) => {
    const el = document.createElement("div");
    el.className = i === body.candidate ? "cand active" : "cand";
    placeBox(el, c.box);
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "pick";
    pick.dataset.index = String(i);
    pick.textContent = `${i + 1} · ${pct(c.score)}`;
    pick.title = `search object ${i + 1} (objectness ${pct(c.score)})`;
    pick.setAttribute("aria-pressed", String(i === body.candidate));
    pick.addEventListener("mousedown", (ev) => ev.stopPropagation()); // not a box drag
    pick.addEventListener("click", (ev) => {
      ev.stopPropagation();
      chooseCandidate(i);
    });
    el.appendChild(pick);
    layer.appendChild(el);
  });
}

function chooseCandidate(i) {
  state.candidate = i;
  state.userBox = null;
  $("user-box").hidden = true;
  $("clear-box").disabled = true;
  search();
}

function render(body) {
  renderCandidates(body);
  placeBox($("box"), body.box);
  if (body.second_box) placeBox($("look"), body.second_box);
  else $("look").hidden = true;
  $("box-label").textContent = `${body.category} ${pct(body.confidence)}`;
  $("cat").textContent = body.category;
  $("conf").textContent = body.category_forced ? "(chosen)" : pct(body.confidence);
  const probs = $("probs");
  probs.textContent = "";
  for (const [name, p] of Object.entries(body.category_probs || {})) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = name;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = pct(p);
    const value = document.createElement("span");
    value.textContent = pct(p);
    li.append(label, bar, value);
    probs.appendChild(li);
  }
  const t = body.timings_ms || {};
  $("meta").textContent =
    `searched ${body.searched_categories.join(", ")} · ` +
    `${(t.total || 0).toFixed(0)} ms (model ${(t.model || 0).toFixed(0)}, ` +
    `index ${(t["hamming+rerank"] || 0).toFixed(1)}) · release ${body.release}` +
    (Object.keys(body.filters || {}).length ? ` · filters ${JSON.stringify(body.filters)}` : "");
  $("summary").hidden = false;

  const grid = $("results");
  grid.textContent = "";
  if (!body.results.length) grid.textContent = "no results";
  body.results.forEach((hit, i) => {
    const card = $("card").content.firstElementChild.cloneNode(true);
    if (i === 0) card.classList.add("first");
    const img = card.querySelector("img");
    if (hit.image_url) img.src = hit.image_url;
    img.alt = hit.title;
    card.querySelector(".title").textContent = hit.title || hit.item_id;
    card.querySelector(".price").textContent =
      hit.price == null ? "" : `$${Number(hit.price).toFixed(2)}`;
    card.querySelector(".seller").textContent = `seller ${hit.seller_id} · ${hit.category}`;
    card.querySelector(".scores").textContent =
      `score ${hit.score.toFixed(3)} · sim ${hit.similarity.toFixed(3)} · hamming ${hit.hamming}`;
    const more = hit.more_sellers.length;
    card.querySelector(".more").textContent =
      more ? `${more} more seller${more > 1 ? "s" : ""}` : "";
    card.title = hit.item_id;
    grid.appendChild(card);
  });
}

// -- photo input: click, drop, paste ---------------------------------------------------------
const drop = $("drop");
drop.addEventListener("click", (ev) => {
  if (!state.blob || ev.target === drop || ev.target.id === "drop-hint") $("file").click();
});
drop.addEventListener("keydown", (ev) => { if (ev.key === "Enter") $("file").click(); });
$("file").addEventListener("change", (ev) => {
  if (ev.target.files.length) setPhoto(ev.target.files[0]);
});
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  const file = ev.dataTransfer.files[0];
  if (file) setPhoto(file);
});

// -- drawing a box on the photo -------------------------------------------------------------
let dragStart = null;
function normPoint(ev) {
  const r = $("photo").getBoundingClientRect();
  return [
    Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)),
    Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height)),
  ];
}
$("stage").addEventListener("mousedown", (ev) => {
  ev.preventDefault();
  dragStart = normPoint(ev);
});
window.addEventListener("mousemove", (ev) => {
  if (!dragStart) return;
  const [x, y] = normPoint(ev);
  const box = [Math.min(dragStart[0], x), Math.min(dragStart[1], y),
    Math.max(dragStart[0], x), Math.max(dragStart[1], y)];
  placeBox($("user-box"), box);
  state.userBox = box;
});
window.addEventListener("mouseup", () => {
  if (!dragStart) return;
  dragStart = null;
  const b = state.userBox;
  if (b && b[2] - b[0] > 0.02 && b[3] - b[1] > 0.02) {
    $("clear-box").disabled = false;
    search();
  } else {
    state.userBox = null;
    $("user-box").hidden = true;
  }
});
$("clear-box").addEventListener("click", () => {
  state.userBox = null;
  $("user-box").hidden = true;
  $("clear-box").disabled = true;
  search();
});
$("options").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
$("category").addEventListener("change", search);
$("in-stock").addEventListener("change", search);

loadInfo();
loadSamples();
