// What a worker says about a run, made safe on the page's side, where the
// job's code cannot reach.
//
// Inside its worker a job owns everything Python and JavaScript can touch:
// plotfarm_capture's limits (`sys.stdout.limit = 10**9`), the JSON it sends
// back, even the worker's built-ins (`js.JSON`, `js.performance`). So the
// limits of OutputLimits (shared/page_contract.py) are applied here, again,
// to the one message the worker's module code sends: its size before it is
// parsed, its shape, every text cut to its limit with a marker, the figures
// counted, measured and their nesting bounded. The renderer service checks
// the page's answer once more (shared/page_contract.py, bounded_answer).

import { failedRun } from "./contract.mjs";
import { ERROR } from "./vocabulary.mjs";

// Warnings and package names come from the worker too: a job may forge any number.
const MAX_WARNINGS = 50;
const MAX_WARNING_CHARS = 1000;
const MAX_PACKAGES = 100;
const MAX_PACKAGE_NAME_CHARS = 100;

/**
 * The worker's answer to one run ({output, timings, packages, heapBytes}), bounded:
 * `output` a RunOutput within `limits` (or a failed one saying why), the
 * numbers finite. `elapsedMs`: the run as this page timed it, which bounds
 * what the worker may claim.
 */
export function boundedRun(data, limits, elapsedMs) {
  const runMs = finiteBetween(data && data.timings && data.timings.run_ms, 0, elapsedMs);
  const loadMs = finiteBetween(data && data.timings && data.timings.load_ms, 0, elapsedMs - runMs);
  return {
    output: boundedOutput(data ? data.output : undefined, limits),
    timings: { load_ms: loadMs, run_ms: elapsedMs - loadMs },
    packages: boundedStrings(data && data.packages, MAX_PACKAGES, MAX_PACKAGE_NAME_CHARS),
    heapBytes: finiteBetween(data && data.heapBytes, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** The RunOutput in `text` (one JSON document), within `limits`; a failed RunOutput when it cannot be. */
export function boundedOutput(text, limits) {
  if (typeof text !== "string") {
    return failedRun(ERROR.INTERPRETER_ERROR, "the interpreter's answer carried no output document");
  }
  if (text.length > limits.max_answer_chars) {
    return failedRun(
      ERROR.OUTPUT_LIMIT_EXCEEDED,
      `the job's output is ${text.length} characters of JSON; the limit is ${limits.max_answer_chars}`,
    );
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return failedRun(ERROR.INTERPRETER_ERROR, `the interpreter's output is not valid JSON: ${String(err.message || err)}`);
  }
  if (!isPlainObject(parsed)) return failedRun(ERROR.INTERPRETER_ERROR, "the interpreter's output is not a JSON object");
  const stdout = cut(parsed.stdout, limits.max_output_chars, "output");
  const stderr = cut(parsed.stderr, limits.max_output_chars, "output");
  const error = boundedError(parsed.error, limits);
  const warnings = boundedStrings(parsed.warnings, MAX_WARNINGS, MAX_WARNING_CHARS);
  if (error) return { figures: [], stdout, stderr, error, warnings };
  const figures = Array.isArray(parsed.figures) ? parsed.figures : [];
  const problem = figureProblem(figures, limits);
  if (problem) return failedRun(ERROR.OUTPUT_LIMIT_EXCEEDED, problem, { stdout, stderr });
  const kept = figures.slice(0, limits.max_figures);
  if (figures.length > kept.length) {
    warnings.push(`${figures.length} figures were shown; the first ${kept.length} were kept (the limit per job)`);
  }
  return { figures: kept, stdout, stderr, error: null, warnings };
}

/** Why these figures cannot be drawn within `limits`, or null. */
function figureProblem(figures, limits) {
  let total = 0;
  for (const [n, figure] of figures.slice(0, limits.max_figures).entries()) {
    if (!isPlainObject(figure)) return `figure ${n + 1} is not a JSON object`;
    const depth = nestingBeyond(figure, limits.max_figure_depth);
    if (depth) return `figure ${n + 1} is nested more than ${limits.max_figure_depth} levels deep`;
    const size = JSON.stringify(figure).length;
    if (size > limits.max_figure_bytes) {
      return `figure ${n + 1} is ${size} bytes of JSON; the limit is ${limits.max_figure_bytes}`;
    }
    total += size;
    if (total > limits.max_total_figure_bytes) {
      return `the figures add up to more than ${limits.max_total_figure_bytes} bytes of JSON`;
    }
  }
  return null;
}

/** True when `value` nests arrays and objects more than `limit` deep (walked without recursion). */
export function nestingBeyond(value, limit) {
  const stack = [[value, 1]];
  while (stack.length) {
    const [node, depth] = stack.pop();
    if (depth > limit) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
  return false;
}

function boundedError(error, limits) {
  if (error === null || error === undefined) return null;
  if (!isPlainObject(error)) return { type: ERROR.INTERPRETER_ERROR, message: "the run failed (its error was unreadable)", traceback: "" };
  const type = typeof error.type === "string" && /^[A-Za-z_][\w.]{0,99}$/.test(error.type) ? error.type : "Error";
  return {
    type,
    message: cut(error.message, limits.max_error_chars, "message"),
    traceback: cut(error.traceback, limits.max_error_chars, "traceback"),
  };
}

/** `text` as a string of at most `limit` characters and a marker that says how many went. */
export function cut(text, limit, what) {
  const value = typeof text === "string" ? text : "";
  if (value.length <= limit) return value;
  return `${value.slice(0, limit)}\n[plotfarm: ${what} truncated, ${value.length - limit} more characters dropped]\n`;
}

function boundedStrings(list, count, chars) {
  if (!Array.isArray(list)) return [];
  return list
    .slice(0, count)
    .filter((item) => typeof item === "string")
    .map((item) => (item.length > chars ? `${item.slice(0, chars)}…` : item));
}

function finiteBetween(value, low, high) {
  return typeof value === "number" && Number.isFinite(value) ? Math.min(Math.max(value, low), Math.max(low, high)) : low;
}

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
