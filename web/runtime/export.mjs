// A figure (as in a RunOutput, runtime/contract.mjs) to the formats a job
// asked for, with plotly.js: SVG and PNG images, and the figure itself as
// plotly.js received it (for JSON and for the interactive HTML page, which
// the gateway makes from it). Runs on a page's main thread, where plotly.js
// is loaded as a global.

import { ERROR, FORMAT } from "./vocabulary.mjs";

export class PngTooLarge extends Error {
  get type() {
    return ERROR.OUTPUT_LIMIT_EXCEEDED;
  }
}

/**
 * One figure in `formats` ("svg", "png", "json", "html"): {svg?, png?, spec?}.
 * The figure's own layout.width/height win over the job's; PNG pixels are
 * that size times `scale`, at most `maxPngPixels`.
 */
export async function exportFigure(Plotly, figure, { width, height, formats, scale = 1, maxPngPixels = Infinity }) {
  const layout = figure.layout || {};
  // Only data and layout, no config, as Kaleido: plotly.js makes the export static itself.
  const plot = { data: figure.data || [], layout };
  const size = { width: layout.width || width, height: layout.height || height };
  const out = {};
  if (formats.includes(FORMAT.SVG)) {
    out.svg = await Plotly.toImage(plot, { format: "svg", ...size, imageDataOnly: true });
  }
  if (formats.includes(FORMAT.PNG)) {
    const pixels = Math.round(size.width * scale) * Math.round(size.height * scale);
    if (pixels > maxPngPixels) {
      throw new PngTooLarge(
        `a ${size.width}x${size.height} figure at scale ${scale} is ${pixels} pixels of PNG; the limit is ${maxPngPixels}`,
      );
    }
    out.png = await Plotly.toImage(plot, { format: "png", ...size, scale, imageDataOnly: true });
  }
  if (formats.includes(FORMAT.JSON) || formats.includes(FORMAT.HTML)) {
    out.spec = { data: plot.data, layout, ...(figure.frames ? { frames: figure.frames } : {}) };
  }
  return out;
}
