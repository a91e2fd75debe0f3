// The renderer's headless page: one interpreter, driven by services/renderer
// through `window.plotfarm` (Playwright's page.evaluate).

import { PyodideWorker } from "../runtime/host.mjs";
import { figureToSvg } from "../runtime/svg.mjs";

const interpreter = new PyodideWorker({ assetBase: new URL("../", import.meta.url) });

// A tiny job run once per boot: it proves the interpreter works end to end
// and pays the first-call costs (Python's and plotly.js's) before a user does.
const WARM_UP = {
  code: "import plotly.graph_objects as go\ngo.Figure(go.Scatter(x=[1, 2], y=[1, 2])).show()\n",
  width: 200,
  height: 150,
  timeoutMs: 30000,
  graceMs: 1000,
  limits: { max_figures: 1, max_figure_bytes: 1e6, max_svg_bytes: 1e6, max_output_chars: 1000 },
};

async function boot() {
  const timings = await interpreter.boot();
  const started = performance.now();
  const warm = await render(WARM_UP);
  if (warm.error || warm.figures.length !== 1) {
    throw new Error(`warm-up job failed: ${JSON.stringify(warm.error)}`);
  }
  return { ...timings, warm_up_ms: performance.now() - started };
}

/**
 * Run one job and turn its figures into SVG.
 * Resolves with {figures, stdout, stderr, error, timings, needsBoot}.
 */
async function render({ code, width, height, timeoutMs, graceMs, limits }) {
  const started = performance.now();
  const { result, execMs, timedOut, terminated } = await interpreter.run(code, { timeoutMs, graceMs, limits });
  const figures = [];
  let error = result.error;
  const svgStarted = performance.now();
  if (!error) {
    try {
      for (const figure of result.figures) {
        const svg = await figureToSvg(window.Plotly, figure, { width, height });
        if (svg.length > limits.max_svg_bytes) {
          throw new Error(`figure ${figures.length + 1} is ${svg.length} bytes of SVG; the limit is ${limits.max_svg_bytes}`);
        }
        figures.push(svg);
      }
    } catch (err) {
      figures.length = 0;
      error = { type: "SvgRenderError", message: String(err.message || err), traceback: "" };
    }
  }
  const finished = performance.now();
  return {
    figures,
    stdout: result.stdout,
    stderr: result.stderr,
    error,
    timedOut,
    needsBoot: terminated,
    timings: { exec_ms: execMs, svg_ms: finished - svgStarted, page_ms: finished - started },
  };
}

window.plotfarm = { boot, render };
