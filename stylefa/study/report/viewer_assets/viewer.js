/* stylefa report viewer: synchronised panels over the study's embedded arrays; no network. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const index = JSON.parse($("sfv-index").textContent);
  const scanSelect = $("sfv-scan"), conditionSelect = $("sfv-condition"), slider = $("sfv-level");
  const zLabel = $("sfv-z"), status = $("sfv-status"), readout = $("sfv-readout"), panelBox = $("sfv-panels");
  const DISPLAY = 256;
  const PANELS = [["flair", "FLAIR"], ["input", "input"], ["projection", "projection"],
                  ["difference", "projection \u2212 input"]];
  const cache = new Map();
  const state = { scan: 0, condition: 0, level: 0, cursor: null, buffer: null, arrays: null };
  const panels = {};

  for (const [key, title] of PANELS) {
    const wrap = document.createElement("div");
    wrap.className = "sfv-panel";
    const canvas = document.createElement("canvas");
    canvas.width = DISPLAY; canvas.height = DISPLAY; canvas.dataset.panel = key;
    const caption = document.createElement("div");
    caption.textContent = title;
    wrap.appendChild(canvas); wrap.appendChild(caption); panelBox.appendChild(wrap);
    const off = document.createElement("canvas");
    panels[key] = { wrap, canvas, ctx: canvas.getContext("2d"), off, offCtx: off.getContext("2d") };
  }
  index.scans.forEach((entry, i) => {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = entry.scan + " (" + Math.round(entry.bytes / 1024) + " KiB)";
    scanSelect.appendChild(option);
  });

  function base64Bytes(text) {
    const binary = atob(text.replace(/\s+/g, ""));
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }
  function load(i) {
    if (!cache.has(i)) {
      if (typeof DecompressionStream === "undefined") {
        return Promise.reject(new Error("this browser lacks DecompressionStream (Chrome 80+, Firefox 113+, Safari 16.4+)"));
      }
      const bytes = base64Bytes($("sfv-data-" + i).textContent);
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
      cache.set(i, new Response(stream).arrayBuffer());
    }
    return cache.get(i);
  }
  const manifest = () => index.scans[state.scan].manifest;
  const condition = () => manifest().conditions[state.condition];
  const level = () => condition().levels[state.level];

  function views(buffer, entry, n) {
    const out = {
      input: new Uint16Array(buffer, entry.input, n), projection: new Uint16Array(buffer, entry.projection, n),
      lesion: entry.lesion == null ? null : new Uint8Array(buffer, entry.lesion, n),
      flair: entry.flair == null ? null : new Uint8Array(buffer, entry.flair, n),
    };
    return out;
  }
  function value(key, i) {
    const a = state.arrays;
    if (key === "input" || key === "projection") return a[key][i] / 65535;
    if (key === "difference") return (a.projection[i] - a.input[i]) / 65535;
    if (key === "flair") return a.flair ? a.flair[i] / 255 : NaN;
    if (key === "lesion") return a.lesion ? a.lesion[i] : NaN;
    return NaN;
  }
  function colour(key, v) {
    if (!Number.isFinite(v)) return [0, 0, 0];
    let t = v;
    if (key === "difference") {
      const limit = manifest().diff_limit;
      t = (v / limit + 1) / 2;
    }
    const k = Math.max(0, Math.min(255, Math.round(t * 255)));
    return (key === "difference" ? index.luts.diff : index.luts.gray)[k];
  }
  function renderImages() {
    const n = manifest().resolution;
    for (const [key] of PANELS) {
      const panel = panels[key];
      const hasFlair = condition().levels.some((lv) => lv.flair != null);
      if (key === "flair") panel.wrap.style.display = hasFlair ? "" : "none";
      panel.off.width = n; panel.off.height = n;
      const image = panel.offCtx.createImageData(n, n);
      for (let i = 0; i < n * n; i++) {
        const c = colour(key, value(key, i));
        image.data[4 * i] = c[0]; image.data[4 * i + 1] = c[1]; image.data[4 * i + 2] = c[2]; image.data[4 * i + 3] = 255;
      }
      panel.offCtx.putImageData(image, 0, 0);
    }
  }
  function outline(ctx, lesion, n) {
    const s = DISPLAY / n;
    ctx.beginPath();
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        if (!lesion[r * n + c]) continue;
        if (r === 0 || !lesion[(r - 1) * n + c]) { ctx.moveTo(c * s, r * s); ctx.lineTo((c + 1) * s, r * s); }
        if (r === n - 1 || !lesion[(r + 1) * n + c]) { ctx.moveTo(c * s, (r + 1) * s); ctx.lineTo((c + 1) * s, (r + 1) * s); }
        if (c === 0 || !lesion[r * n + c - 1]) { ctx.moveTo(c * s, r * s); ctx.lineTo(c * s, (r + 1) * s); }
        if (c === n - 1 || !lesion[r * n + c + 1]) { ctx.moveTo((c + 1) * s, r * s); ctx.lineTo((c + 1) * s, (r + 1) * s); }
      }
    }
    ctx.strokeStyle = "#00ffff"; ctx.lineWidth = 1.2; ctx.stroke();
  }
  function paint() {
    const n = manifest().resolution;
    for (const [key] of PANELS) {
      const { ctx, off } = panels[key];
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, 0, 0, DISPLAY, DISPLAY);
      if (state.arrays.lesion && key !== "projection") outline(ctx, state.arrays.lesion, n);
      if (state.cursor) {
        const s = DISPLAY / n, x = (state.cursor.col + 0.5) * s, y = (state.cursor.row + 0.5) * s;
        ctx.strokeStyle = "#ffd700"; ctx.lineWidth = 1;
        ctx.beginPath(); ctx.moveTo(x - 6, y); ctx.lineTo(x + 6, y); ctx.moveTo(x, y - 6); ctx.lineTo(x, y + 6); ctx.stroke();
      }
    }
    showReadout();
  }
  function showReadout() {
    if (!state.cursor) return;
    const m = manifest(), n = m.resolution, { row, col } = state.cursor, i = row * n + col;
    const x = m.x_mm[0] + col * m.x_mm[1], y = m.y_mm[0] + row * m.y_mm[1];
    const parts = ["x " + x.toFixed(1) + " mm, y " + y.toFixed(1) + " mm, z " + level().z.toFixed(1) + " mm (row " + row + ", column " + col + ")",
                   "input " + value("input", i).toFixed(4), "projection " + value("projection", i).toFixed(4),
                   "difference " + value("difference", i).toFixed(4)];
    if (state.arrays.lesion) parts.push("lesion " + (state.arrays.lesion[i] ? "yes" : "no"));
    if (state.arrays.flair) parts.push("FLAIR " + value("flair", i).toFixed(3));
    readout.textContent = parts.join("  |  ");
  }
  function drawBars() {
    for (const [id, lut] of [["sfv-bar-fa", index.luts.gray], ["sfv-bar-diff", index.luts.diff]]) {
      const canvas = $(id), ctx = canvas.getContext("2d");
      for (let k = 0; k < 256; k++) {
        ctx.fillStyle = "rgb(" + lut[k].join(",") + ")";
        ctx.fillRect(k * canvas.width / 256, 0, canvas.width / 256 + 1, canvas.height);
      }
    }
  }
  function writeHash() {
    const text = "#scan=" + encodeURIComponent(manifest().scan) + "&condition=" +
      encodeURIComponent(condition().name) + "&level=" + state.level;
    try { history.replaceState(null, "", text); } catch (e) { /* some file:// contexts refuse */ }
  }
  async function show(scan, conditionIndex, levelIndex) {
    status.textContent = "loading\u2026";
    const buffer = await load(scan);
    state.scan = scan;
    const m = manifest();
    state.condition = Math.max(0, Math.min(conditionIndex, m.conditions.length - 1));
    state.level = Math.max(0, Math.min(levelIndex, condition().levels.length - 1));
    state.buffer = buffer;
    state.arrays = views(buffer, level(), m.resolution * m.resolution);
    scanSelect.value = String(scan);
    conditionSelect.replaceChildren(...m.conditions.map((c, i) => {
      const option = document.createElement("option");
      option.value = String(i); option.textContent = c.name + " (" + c.levels.length + ")";
      return option;
    }));
    conditionSelect.value = String(state.condition);
    slider.max = String(condition().levels.length - 1);
    slider.value = String(state.level);
    zLabel.textContent = "z = " + level().z.toFixed(1) + " mm (" + level().slice + ")";
    $("sfv-bar-diff-lo").textContent = "\u0394FA \u2212" + m.diff_limit.toFixed(3);
    $("sfv-bar-diff-hi").textContent = "+" + m.diff_limit.toFixed(3);
    if (state.cursor && (state.cursor.row >= m.resolution || state.cursor.col >= m.resolution)) state.cursor = null;
    renderImages();
    paint();
    writeHash();
    status.textContent = "";
  }
  function fail(error) {
    status.textContent = "viewer error: " + error.message;
    throw error;
  }
  const go = (scan, c, lv) => show(scan, c, lv).catch(fail);
  function fromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    let scan = index.scans.findIndex((s) => s.manifest.scan === params.get("scan"));
    if (scan < 0) scan = 0;
    let c = index.scans[scan].manifest.conditions.findIndex((x) => x.name === params.get("condition"));
    if (c < 0) c = 0;
    const lv = parseInt(params.get("level") || "0", 10);
    return [scan, c, Number.isFinite(lv) ? lv : 0];
  }

  scanSelect.addEventListener("change", () => go(parseInt(scanSelect.value, 10), 0, 0));
  conditionSelect.addEventListener("change", () => go(state.scan, parseInt(conditionSelect.value, 10), state.level));
  slider.addEventListener("input", () => go(state.scan, state.condition, parseInt(slider.value, 10)));
  window.addEventListener("hashchange", () => go(...fromHash()));
  for (const [key] of PANELS) {
    const canvas = panels[key].canvas;
    canvas.addEventListener("mousemove", (event) => {
      const rect = canvas.getBoundingClientRect(), n = manifest().resolution;
      const col = Math.min(n - 1, Math.max(0, Math.floor((event.clientX - rect.left) / rect.width * n)));
      const row = Math.min(n - 1, Math.max(0, Math.floor((event.clientY - rect.top) / rect.height * n)));
      state.cursor = { row, col };
      paint();
    });
    canvas.addEventListener("wheel", (event) => {
      event.preventDefault();
      go(state.scan, state.condition, state.level + (event.deltaY > 0 ? 1 : -1));
    }, { passive: false });
  }
  // Arrow keys step through the levels once the panels have focus (click an image), as on the slider.
  panelBox.tabIndex = 0;
  panelBox.addEventListener("keydown", (event) => {
    const step = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1 }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    go(state.scan, state.condition, state.level + step);
  });
  drawBars();
  const ready = show(...fromHash()).catch(fail);
  window.stylefaViewer = { ready, show: go, state, value, index, decoded: () => [...cache.keys()] };
})();
