// Renders Adaptive Cards with the adaptivecards library in headless Chromium, one host config
// per theme, and measures what a person would see: the renderer's parse warnings, text that is
// cut off or runs past the card's edge, and the contrast of every text on its real background.
//
//   node tools/gallery/render.mjs JOB.json
//
// JOB.json: {"cards": [{"name", "card"}], "themes": {"light": HOSTCONFIG, ...}, "width": 640,
//            "screenshots": {"light": ["name", ...] | "all", ...}, "out": "DIR"}
// Prints one JSON report on stdout: {"results": [{name, theme, warnings, clipped, overflow,
// contrast: {min, failures}, png, height}]}.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");
const moduleFile = (p) => readFileSync(path.join(root, "node_modules", p), "utf8");

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--font-render-hinting=none"],
});

// Runs in the page: render one card and measure it.
function renderAndMeasure({ card, hostConfig, width }) {
  const AC = window.AdaptiveCards;
  const host = document.getElementById("host");
  host.innerHTML = "";
  const background = hostConfig.containerStyles.default.backgroundColor;
  host.style.width = `${width}px`;
  host.style.background = "#" + background.replace("#", "").slice(-6);
  // Teams colours links with its theme's accent colour, not the renderer's stylesheet blue.
  const accent = hostConfig.containerStyles.default.foregroundColors.accent.default.replace("#", "").slice(-6);
  document.getElementById("links").textContent = `#host a { color: #${accent}; }`;
  const adaptive = new AC.AdaptiveCard();
  adaptive.hostConfig = new AC.HostConfig(hostConfig);
  const context = new AC.SerializationContext();
  adaptive.parse(card, context);
  const warnings = [];
  for (let i = 0; i < context.eventCount; i++) {
    const event = context.getEventAt(i);
    warnings.push(`${AC.ValidationEvent[event.event] || event.event}: ${event.message}`);
  }
  const element = adaptive.render();
  host.appendChild(element);

  // Colours: "rgb(r, g, b)" or "rgba(r, g, b, a)"; alpha is composed over what is behind.
  const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(",").map(Number); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
  const over = (top, bottom) => ({ r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a), b: top.b * top.a + bottom.b * (1 - top.a), a: 1 });
  const backgroundOf = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let colour = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const luminance = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const ratio = (a, b) => { const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };

  const edge = element.getBoundingClientRect().right + 0.5;
  let min = 21;
  const failures = [], clipped = [], overflow = [];
  const seen = new Set();
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const value = text.textContent.trim();
    const el = text.parentElement;
    if (!value || !el || seen.has(el)) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") continue;
    const fg = over(parse(style.color), backgroundOf(el));
    const r = ratio(fg, backgroundOf(el));
    min = Math.min(min, r);
    if (r < 4.5) failures.push({ text: value.slice(0, 60), ratio: Math.round(r * 100) / 100, color: style.color, background: getComputedStyle(el).backgroundColor });
    const range = document.createRange();
    range.selectNodeContents(text);
    for (const rect of range.getClientRects()) {
      if (rect.right > edge) { overflow.push(value.slice(0, 60)); break; }
    }
    // Text cut off with an ellipsis or hidden by overflow: a block narrower than its content.
    for (let node = el; node && node !== element; node = node.parentElement) {
      const s = getComputedStyle(node);
      if ((s.overflow === "hidden" || s.textOverflow === "ellipsis") && node.scrollWidth > node.clientWidth + 1) { clipped.push(value.slice(0, 60)); break; }
    }
  }
  for (const button of element.querySelectorAll("button")) {
    if (button.scrollWidth > button.clientWidth + 1) clipped.push(`button: ${button.textContent.trim()}`);
    if (button.getBoundingClientRect().right > edge) overflow.push(`button: ${button.textContent.trim()}`);
  }
  return { warnings, clipped, overflow, contrast: { min: Math.round(min * 100) / 100, failures }, height: Math.ceil(host.getBoundingClientRect().height) };
}

const page = await browser.newPage({ viewport: { width: (job.width || 640) + 40, height: 800 }, deviceScaleFactor: 1 });
await page.setContent(`<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0;padding:20px;font-family:'Segoe UI',system-ui,sans-serif}</style></head><body><style id="links"></style><div id="host"></div></body></html>`);
await page.addScriptTag({ content: moduleFile("markdown-it/dist/browser/markdown-it.umd.min.js") });
await page.addScriptTag({ content: moduleFile("adaptivecards/dist/adaptivecards.min.js") });
await page.addStyleTag({ content: moduleFile("adaptivecards/dist/adaptivecards.css") });

const results = [];
for (const [theme, hostConfig] of Object.entries(job.themes)) {
  const wanted = (job.screenshots || {})[theme] || [];
  for (const { name, card } of job.cards) {
    const measured = await page.evaluate(renderAndMeasure, { card, hostConfig, width: job.width || 640 });
    let png = null;
    if (job.out && (wanted === "all" || wanted.includes(name))) {
      png = path.join(job.out, `${name}.${theme}.png`);
      await page.locator("#host").screenshot({ path: png });
    }
    results.push({ name, theme, png, ...measured });
  }
}
await browser.close();
process.stdout.write(JSON.stringify({ results }) + "\n");
