// Figure JSON (as captured by plotfarm_capture.py) to SVG text with plotly.js.
// Runs on a page's main thread, where plotly.js is loaded as a global.

export const DEFAULT_SIZE = { width: 700, height: 450 };

/**
 * Render one figure to SVG markup.
 * The figure's own layout.width/height win; otherwise the job's size is used.
 */
export async function figureToSvg(Plotly, figureJson, { width, height } = DEFAULT_SIZE) {
  const figure = typeof figureJson === "string" ? JSON.parse(figureJson) : figureJson;
  const layout = figure.layout || {};
  // No config, as Kaleido: plotly.js makes the export static itself.
  return Plotly.toImage(
    { data: figure.data || [], layout },
    {
      format: "svg",
      width: layout.width || width,
      height: layout.height || height,
      imageDataOnly: true,
    },
  );
}
