// Renders Adaptive Cards with the adaptivecards library in headless Chromium, one host config
// per theme, and measures what a person would see: the renderer's parse warnings, text that is
// cut off or runs past the card's edge, and the contrast of every text on its real background.
//
//   node tools/gallery/render.mjs JOB.json
//
// JOB.json: {"cards": [{"name", "card"}], "themes": {"light": HOSTCONFIG, ...}, "width": 640,
//            "screenshots": {"light": ["name", ...] | "all", ...}, "out": "DIR"}
// Prints one JSON report on stdout: {"results": [{name, theme, warnings, clipped, overflow,
// contrast: {min, failures}, systemFonts, png, height}]}.
//
// Fonts: Teams draws cards in Segoe UI, which may not be redistributed. The page draws them in
// fonts that the pinned npm packages ship instead, so a card measures the same on every machine,
// whatever fonts that machine has: Arimo (Arial's metrics) for text, then Noto Sans Math (arrows
// and symbols), Noto Sans JP and Noto Color Emoji for what Arimo lacks (@fontsource/*, all SIL
// OFL 1.1). Any text the browser still draws with a font of the machine is reported
// (systemFonts): its measurements would differ from one machine to the next. A Show card
// button's chevron is an icon font's (FabricMDL2Icons) in the renderer's CSS, which no package
// ships: an arrow from Noto Sans Math stands in, about as wide.

import { existsSync, readFileSync, readdirSync } from "node:fs";
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

// Runs in the page: render one card (its parse warnings are kept for measure()).
function render({ card, hostConfig, width }) {
  // Teams draws a mention entity's "<at>Name</at>" as the name, highlighted; the renderer
  // knows no mentions and would show the tags: each becomes the name in bold here.
  function mentionsAsTeamsShowsThem(card) {
    const tags = ((card.msteams || {}).entities || []).filter((e) => e.type === "mention").map((e) => e.text);
    if (!tags.length) return card;
    let text = JSON.stringify(card);
    for (const tag of tags) {
      const name = tag.slice(4, -5);
      text = text.split(JSON.stringify(tag).slice(1, -1)).join(`**${name}**`);
    }
    return JSON.parse(text);
  }
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
  adaptive.parse(mentionsAsTeamsShowsThem(card), context);
  const warnings = [];
  for (let i = 0; i < context.eventCount; i++) {
    const event = context.getEventAt(i);
    warnings.push(`${AC.ValidationEvent[event.event] || event.event}: ${event.message}`);
  }
  const element = adaptive.render();
  host.appendChild(element);
  host.getBoundingClientRect();  // lay out now, so the fonts it needs start loading
  window.renderWarnings = warnings;
}

// Runs in the page, once the fonts are loaded: measure the card render() drew.
function measure() {
  const host = document.getElementById("host");
  const element = host.firstElementChild;
  const warnings = window.renderWarnings;

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

// The shipped fonts: each package's @font-face rules, their files served to the page from
// node_modules under an address that never reaches the network. Arimo's faces take the name
// 'Segoe UI', the family both the host config and the renderer's stylesheet (buttons, inputs)
// ask for; the others follow it in the host config's font stack. The emoji are COLRv1, which
// Chromium draws (@fontsource's Noto Color Emoji is OpenType-SVG, which it does not).
const FONT_ORIGIN = "https://gallery-fonts.invalid/";
const FONTS = [
  { pkg: "@fontsource/arimo", family: "Segoe UI", sheets: /^\d{3}(-italic)?\.css$/ },
  // Its subsets do not hold every glyph their unicode-range claims (U+21BB is in its "latin"
  // file only): its faces are offered for every character, and the browser looks through them
  // in turn. They are small (600 KB together).
  { pkg: "@fontsource/noto-sans-math", family: "Noto Sans Math", sheets: /^400\.css$/, wholeRange: true },
  { pkg: "@fontsource/noto-sans-jp", family: "Noto Sans JP", sheets: /^\d{3}\.css$/ },
  { pkg: "@infolektuell/noto-color-emoji", family: "Noto Color Emoji", sheets: /^index\.css$/ },
];
const FONT_STACK = FONTS.map(({ family }) => `'${family}'`).join(", ");
function fontFaces() {
  const rules = [];
  FONTS.forEach(({ pkg, family, sheets, wholeRange }, index) => {
    const dir = path.join(root, "node_modules", pkg);
    const found = existsSync(dir) ? readdirSync(dir).filter((f) => sheets.test(f)).sort() : [];
    if (!found.length) throw new Error(`no font faces in ${dir}: run npm ci`);
    for (const sheet of found) {
      let css = readFileSync(path.join(dir, sheet), "utf8");
      if (wholeRange) css = css.replace(/\n\s*unicode-range:[^;]*;/g, "");
      rules.push(css
        .replace(/font-family: '[^']+'/g, `font-family: '${family}'`)
        .replace(/font-display: swap/g, "font-display: block")
        .replace(/url\(\.\/files\/([^)]+)\)/g, (_, file) => `url(${FONT_ORIGIN}${index}/${file})`));
    }
  });
  return rules.join("\n");
}

// Teams' host config with the shipped fonts where it names Segoe UI.
function withShippedFonts(hostConfig) {
  const copy = structuredClone(hostConfig);
  for (const type of Object.values(copy.fontTypes || {})) {
    if (type.fontFamily && type.fontFamily.includes("'Segoe UI'")) type.fontFamily = type.fontFamily.replace("'Segoe UI'", FONT_STACK);
  }
  return copy;
}

const page = await browser.newPage({ viewport: { width: (job.width || 640) + 40, height: 800 }, deviceScaleFactor: 1 });
await page.route(`${FONT_ORIGIN}**`, (route) => {
  const [index, file] = route.request().url().slice(FONT_ORIGIN.length).split("/");
  const font = FONTS[Number(index)];
  if (!font || !/^[\w.-]+$/.test(file)) return route.abort();
  const type = file.endsWith(".woff2") ? "font/woff2" : "font/woff";
  return route.fulfill({ body: readFileSync(path.join(root, "node_modules", font.pkg, "files", file)), contentType: type });
});
await page.setContent(`<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0;padding:20px;font-family:${FONT_STACK}} button,input,select,textarea{font-family:inherit} .ac-pushButton.expandable:after{font-family:inherit !important;content:'\\2193' !important} .ac-pushButton.expandable.expanded:after{content:'\\2191' !important}</style></head><body><style id="links"></style><div id="host"></div></body></html>`);
await page.addScriptTag({ content: moduleFile("markdown-it/dist/browser/markdown-it.umd.min.js") });
await page.addScriptTag({ content: moduleFile("adaptivecards/dist/adaptivecards.min.js") });
await page.addStyleTag({ content: moduleFile("adaptivecards/dist/adaptivecards.css") });
await page.addStyleTag({ content: fontFaces() });

// Which fonts the browser drew each text with (Chrome DevTools Protocol, CSS.getPlatformFontsForNode):
// any that is not one of the shipped faces is a font of this machine.
const cdp = await page.context().newCDPSession(page);
await cdp.send("DOM.enable");
await cdp.send("CSS.enable");
async function systemFonts() {
  const { root: doc } = await cdp.send("DOM.getDocument", { depth: -1 });
  const { nodeIds } = await cdp.send("DOM.querySelectorAll", { nodeId: doc.nodeId, selector: "#host *" });
  const found = new Set();
  for (const nodeId of nodeIds) {
    const { fonts } = await cdp.send("CSS.getPlatformFontsForNode", { nodeId });
    for (const font of fonts) if (!font.isCustomFont) found.add(font.familyName);
  }
  return [...found].sort();
}

const results = [];
for (const [theme, hostConfig] of Object.entries(job.themes)) {
  const wanted = (job.screenshots || {})[theme] || [];
  for (const { name, card } of job.cards) {
    await page.evaluate(render, { card, hostConfig: withShippedFonts(hostConfig), width: job.width || 640 });
    // Layout asks for the faces its text needs; measure once they are loaded.
    await page.evaluate(() => document.fonts.ready);
    const measured = await page.evaluate(measure);
    measured.systemFonts = theme === "light" ? await systemFonts() : [];
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
