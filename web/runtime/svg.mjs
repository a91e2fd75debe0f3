// A figure (as in a RunOutput, runtime/contract.mjs) to SVG text with plotly.js.
// Runs on a page's main thread, where plotly.js is loaded as a global.

/**
 * Render one figure to SVG markup.
 * The figure's own layout.width/height win; otherwise the job's size is used.
 */
export async function figureToSvg(Plotly, figure, { width, height }) {
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
