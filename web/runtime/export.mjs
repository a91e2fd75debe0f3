// A figure (as in a RunOutput, runtime/contract.mjs) to the formats a job
// asked for, with plotly.js: an SVG, raster images made from that SVG (PNG,
// JPEG, WebP), and the figure itself as plotly.js received it (for JSON and
// for the interactive HTML page, which the gateway makes from it). Runs on a
// page's main thread, where plotly.js is loaded as a global.
//
// plotly.js draws a figure once, to SVG; every raster format is that SVG
// drawn on a canvas (what Plotly.toImage does for PNG, once per format), so a
// job asking for several formats pays for one plot. The PDF is printed from
// the *sanitised* SVG by the renderer service (services/renderer/page.py,
// with printSvg below), so it is not made here: a PDF asks for the SVG.

import { CONTENT_TYPES, ERROR, FORMAT, RASTER_FORMATS } from "./vocabulary.mjs";

export { RASTER_FORMATS };

export class PngTooLarge extends Error {
  get type() {
    return ERROR.OUTPUT_LIMIT_EXCEEDED;
  }
}

/** Pixels of a `size` figure at `scale`: rounded, at least one each way (plotly's write_image rounds too). */
export function pixelSize(size, scale) {
  return { width: Math.max(1, Math.round(size.width * scale)), height: Math.max(1, Math.round(size.height * scale)) };
}

/**
 * One figure in `formats` (shared/vocabulary.py Format): {svg?, png?, jpeg?,
 * webp?, spec?}, images base64 without a data: prefix. The figure's own
 * layout.width/height win over the job's; raster pixels are that size times
 * `scale` (any positive number), at most `maxPngPixels`, checked before
 * anything is drawn. The SVG is returned when "svg" or "pdf" is asked for.
 */
export async function exportFigure(Plotly, figure, { width, height, formats, scale = 1, maxPngPixels = Infinity }) {
  const layout = figure.layout || {};
  // Only data and layout, no config, as Kaleido: plotly.js makes the export static itself.
  const plot = { data: figure.data || [], layout };
  const size = { width: layout.width || width, height: layout.height || height };
  const rasters = RASTER_FORMATS.filter((fmt) => formats.includes(fmt));
  const out = {};
  if (rasters.length) {
    const pixels = pixelSize(size, scale);
    if (pixels.width * pixels.height > maxPngPixels) {
      throw new PngTooLarge(
        `a ${size.width}x${size.height} figure at scale ${scale} is ${pixels.width}x${pixels.height} = ` +
          `${pixels.width * pixels.height} pixels of ${rasters.map((fmt) => fmt.toUpperCase()).join("/")}; ` +
          `the limit is ${maxPngPixels}`,
      );
    }
  }
  if (rasters.length || formats.includes(FORMAT.SVG) || formats.includes(FORMAT.PDF)) {
    const svg = await Plotly.toImage(plot, { format: "svg", ...size, imageDataOnly: true });
    if (formats.includes(FORMAT.SVG) || formats.includes(FORMAT.PDF)) out.svg = svg;
    if (rasters.length) Object.assign(out, await rasterise(svg, pixelSize(size, scale), rasters));
  }
  if (formats.includes(FORMAT.JSON) || formats.includes(FORMAT.HTML)) {
    out.spec = { data: plot.data, layout, ...(figure.frames ? { frames: figure.frames } : {}) };
  }
  return out;
}

/**
 * `svg` drawn at `pixels` once per format: {png?, jpeg?, webp?} as base64.
 * JPEG has no transparency: it is drawn on white, so a translucent
 * paper_bgcolor comes out blended with white, as Kaleido's JPEGs (plotly.js's
 * setBackground "opaque"). Encoders at their browser defaults, as plotly.js.
 */
async function rasterise(svg, pixels, rasters) {
  const image = await loadSvg(svg);
  const out = {};
  for (const fmt of rasters) {
    const canvas = document.createElement("canvas");
    canvas.width = pixels.width;
    canvas.height = pixels.height;
    const context = canvas.getContext("2d");
    if (fmt === FORMAT.JPEG) {
      context.fillStyle = "#ffffff";
      context.fillRect(0, 0, pixels.width, pixels.height);
    }
    context.drawImage(image, 0, 0, pixels.width, pixels.height);
    const url = canvas.toDataURL(CONTENT_TYPES[fmt]);
    const prefix = `data:${CONTENT_TYPES[fmt]};base64,`;
    if (!url.startsWith(prefix)) throw new Error(`this browser cannot encode ${fmt} (it answered ${url.slice(0, 30)})`);
    out[fmt] = url.slice(prefix.length);
  }
  return out;
}

/** An <img> holding `svg`, once it has loaded (an SVG as an image runs nothing and loads nothing). */
export function loadSvg(svg) {
  const url = URL.createObjectURL(new Blob([svg], { type: CONTENT_TYPES[FORMAT.SVG] }));
  const image = new Image();
  return new Promise((resolve, reject) => {
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the figure's SVG could not be drawn as an image"));
    image.src = url;
  }).finally(() => URL.revokeObjectURL(url));
}
