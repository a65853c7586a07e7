// The recordings panel of a camera card: a day timeline of what was recorded, with every gap
// marked (even seconds-long ones, which would vanish on a day-wide bar), click to play,
// download a segment, export a span.
"use strict";

const DAY_MS = 24 * 3600 * 1000;

function localDayStart(dateValue) {
  const [y, m, d] = dateValue.split("-").map(Number);
  return new Date(y, m - 1, d);
}

function todayValue() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function timeAt(day, timeValue) {
  const [h, m, s] = timeValue.split(":").map(Number);
  return new Date(day.getFullYear(), day.getMonth(), day.getDate(), h, m || 0, s || 0);
}

class RecordingsPanel {
  constructor(card, camera) {
    this.el = card;
    this.camera = camera;
    this.segments = [];
    const q = (sel) => card.querySelector(sel);
    this.dayInput = q(".rec-day");
    this.timeline = q(".timeline");
    this.summary = q(".rec-summary");
    this.player = q(".playback");
    this.download = q(".download");
    this.from = q(".export-from");
    this.to = q(".export-to");
    this.exportLink = q(".export");
    q(".snapshot").href = `/api/cameras/${camera}/snapshot.jpg`;
    this.dayInput.value = todayValue();
    this.from.value = "00:00:00";
    this.to.value = "23:59:59";
    this.dayInput.addEventListener("change", () => this.load());
    this.from.addEventListener("change", () => this.updateExport());
    this.to.addEventListener("change", () => this.updateExport());
    this.timeline.addEventListener("click", (e) => this.playAt(e));
    card.querySelector(".recordings").addEventListener("toggle", (e) => { if (e.target.open) this.load(); });
    setInterval(() => { if (this.isOpen() && this.dayInput.value === todayValue()) this.load(); }, 30000);
    this.updateExport();
  }

  isOpen() {
    return this.el.querySelector(".recordings").open;
  }

  day() {
    return localDayStart(this.dayInput.value || todayValue());
  }

  async load() {
    const day = this.day();
    const from = day.toISOString();
    const to = new Date(day.getTime() + DAY_MS).toISOString();
    try {
      const res = await fetch(`/api/cameras/${this.camera}/recordings?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || res.statusText);
      this.segments = body.segments;
      this.draw(day, body);
    } catch (err) {
      this.summary.textContent = "Cannot list recordings: " + err.message;
    }
    this.updateExport();
  }

  draw(day, body) {
    this.timeline.querySelectorAll(".span, .gap").forEach((n) => n.remove());
    const t0 = day.getTime();
    for (const g of body.gaps) {
      const start = Math.max(new Date(g.start).getTime(), t0);
      const end = Math.min(new Date(g.end).getTime(), t0 + DAY_MS);
      if (end <= start) continue;
      const mark = document.createElement("div");
      mark.className = "gap";
      mark.style.left = ((start - t0) / DAY_MS) * 100 + "%";
      mark.style.width = ((end - start) / DAY_MS) * 100 + "%";
      mark.title = `Not recorded: ${new Date(g.start).toLocaleTimeString()} – ${new Date(g.end).toLocaleTimeString()}`;
      this.timeline.appendChild(mark);
    }
    for (const seg of body.segments) {
      const start = Math.max(new Date(seg.start).getTime(), t0);
      const end = Math.min(new Date(seg.end).getTime(), t0 + DAY_MS);
      if (end <= start) continue;
      const span = document.createElement("div");
      span.className = "span" + (seg.recording ? " live" : "") + (seg.partial ? " partial" : "");
      span.style.left = ((start - t0) / DAY_MS) * 100 + "%";
      span.style.width = Math.max(((end - start) / DAY_MS) * 100, 0.05) + "%";
      span.title = `${new Date(seg.start).toLocaleTimeString()} – ${new Date(seg.end).toLocaleTimeString()}`;
      this.timeline.appendChild(span);
    }
    const mb = body.segments.reduce((n, s) => n + s.size, 0) / 1e6;
    this.summary.textContent = body.segments.length
      ? `${body.segments.length} segments, ${mb.toFixed(1)} MB, ${body.gaps.length} gap(s)`
      : "Nothing recorded on this day.";
  }

  playAt(event) {
    const rect = this.timeline.getBoundingClientRect();
    const t = this.day().getTime() + ((event.clientX - rect.left) / rect.width) * DAY_MS;
    // A minute is under a pixel on a day's timeline: take the finished segment nearest to the
    // click (the one being written only when there is no other).
    const distance = (s) => Math.max(0, new Date(s.start).getTime() - t, t - new Date(s.end).getTime());
    const finished = this.segments.filter((s) => !s.recording);
    const pool = finished.length ? finished : this.segments;
    const seg = pool.reduce((best, s) => (best === null || distance(s) < distance(best) ? s : best), null);
    if (!seg) return;
    const url = `/api/cameras/${this.camera}/recordings/${seg.name}`;
    this.player.hidden = false;
    this.player.src = url;
    // Inside the segment: from the moment clicked. Beside it (a short segment is drawn wider
    // than it lasts, and a click may land in a gap): from its start, not its last frame.
    const offset = distance(seg) > 0 ? 0 : (t - new Date(seg.start).getTime()) / 1000;
    this.player.addEventListener("loadedmetadata", () => {
      const duration = this.player.duration || offset;
      this.player.currentTime = Math.max(0, Math.min(offset, duration - 1));
      this.player.play().catch(() => {});
    }, { once: true });
    this.download.hidden = false;
    this.download.href = url;
    this.download.download = seg.name;
  }

  updateExport() {
    const day = this.day();
    const from = timeAt(day, this.from.value || "00:00:00").toISOString();
    const to = timeAt(day, this.to.value || "23:59:59").toISOString();
    this.exportLink.href = `/api/cameras/${this.camera}/export?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
  }
}

window.RecordingsPanel = RecordingsPanel;
