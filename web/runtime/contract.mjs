// The shapes the runtime hands around, as in shared/page_contract.py (the one
// definition; page-result.schema.json is generated from it, and the renderer
// service rejects any answer that does not match).
//
// RunOutput: what running the code gave. Made by plotfarm_capture.run inside
// the interpreter; made here only when there was no interpreter to ask.
/**
 * @typedef {{type: string, message: string, traceback: string}} JobError
 * @typedef {{figures: object[], stdout: string, stderr: string, error: JobError|null, warnings: string[]}} RunOutput
 * @typedef {{wait_ms: number, load_ms: number, run_ms: number, svg_ms: number}} PageTimings
 * @typedef {{svg?: string, png?: string, spec?: object}} Figure  (png: base64)
 * @typedef {{figures: Figure[], stdout: string, stderr: string, error: JobError|null,
 *            warnings: string[], packages: string[], timings: PageTimings}} PageResult
 */

import { ERROR } from "./vocabulary.mjs";

/** @returns {RunOutput} a run that produced `error` instead of figures, keeping any output. */
export function failedRun(type, message, { traceback = "", stdout = "", stderr = "" } = {}) {
  return { figures: [], stdout, stderr, error: { type, message, traceback }, warnings: [] };
}

/** @returns {RunOutput} the run that hit its time limit (`partial`: what it said when interrupted, if it did). */
export function timedOutRun(timeoutMs, partial) {
  const limit = `its ${(timeoutMs / 1000).toFixed(1)} s time limit`;
  if (!partial) {
    return failedRun(ERROR.TIMEOUT, `the job exceeded ${limit} and did not stop when interrupted; its interpreter was terminated`);
  }
  return failedRun(ERROR.TIMEOUT, `the job exceeded ${limit} and was interrupted`, {
    traceback: partial.error ? partial.error.traceback : "",
    stdout: partial.stdout,
    stderr: partial.stderr,
  });
}

/** @returns {RunOutput} the run whose interpreter was terminated under it (Stop, a crash). */
export function terminatedRun() {
  return failedRun(ERROR.INTERPRETER_TERMINATED, "the interpreter was terminated while running the job");
}
