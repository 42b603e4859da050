// Load stack (building + EV, stacked areas) against the site limit (line), drawn on a canvas.
// No library: a few dozen lines keep the dashboard offline and free of a build step.
"use strict";

function drawLoadChart(canvas, h) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 56, R = 12, T = 12, B = 28;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#4a5568";
  const n = h.at.length;
  if (n === 0) {
    ctx.fillText("no load data yet: waiting for the building meter or charger meter values", L, H / 2);
    return;
  }
  const t = h.at.map((s) => Date.parse(s));
  const building = h.building_kw.map((v) => (v === null ? 0 : v));
  const top = building.map((b, i) => b + h.ev_kw[i]);
  const yMax = Math.max(1, ...top, ...h.limit_kw) * 1.1;
  const t0 = t[0], t1 = Math.max(t[n - 1], t0 + 60000);
  const x = (ti) => L + ((ti - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / yMax) * (H - T - B);
  // grid and axes
  ctx.strokeStyle = "#e2e8f0";
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(W - R, y(v)); ctx.stroke();
    ctx.fillText(v.toFixed(0) + " kW", 4, y(v) + 4);
  }
  const fmt = (ms) => new Date(ms).toISOString().slice(11, 16);
  ctx.fillText(fmt(t0), L, H - 8);
  ctx.fillText(fmt(t1) + " UTC", W - R - 70, H - 8);
  const area = (lower, upper, colour) => {
    ctx.beginPath();
    ctx.moveTo(x(t[0]), y(upper[0]));
    for (let i = 1; i < n; i++) { ctx.lineTo(x(t[i]), y(upper[i - 1])); ctx.lineTo(x(t[i]), y(upper[i])); }
    ctx.lineTo(W - R, y(upper[n - 1]));
    ctx.lineTo(W - R, y(lower[n - 1]));
    for (let i = n - 1; i > 0; i--) { ctx.lineTo(x(t[i]), y(lower[i])); ctx.lineTo(x(t[i]), y(lower[i - 1])); }
    ctx.lineTo(x(t[0]), y(lower[0]));
    ctx.closePath();
    ctx.fillStyle = colour;
    ctx.fill();
  };
  area(building.map(() => 0), building, "#a0aec0");
  area(building, top, "#38a169");
  ctx.strokeStyle = "#e53e3e"; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(x(t[0]), y(h.limit_kw[0]));
  for (let i = 1; i < n; i++) { ctx.lineTo(x(t[i]), y(h.limit_kw[i - 1])); ctx.lineTo(x(t[i]), y(h.limit_kw[i])); }
  ctx.lineTo(W - R, y(h.limit_kw[n - 1]));
  ctx.stroke(); ctx.lineWidth = 1;
}
