// MathJax state scoped to one job.
//
// plotly.js typesets a figure's "$...$" text through one MathJax document it
// makes on first use and keeps for the page's life, with MathJax's TeX input
// inside. TeX input keeps what a formula defines: `\def`, `\newcommand`,
// `\let`, `\newenvironment`, colours, `\require`d extensions, labels. On a
// page that draws many jobs' figures, one job's `\def\alpha{...}` would
// change how the next job's formulas look. So plotly.js gets a stand-in for
// that document, and behind it a document with a TeX input of its own for
// each job that typesets: made on the job's first formula, dropped when the
// job ends (endJob). Jobs without LaTeX pay nothing.

/**
 * Scope `MathJax` (3.x, its components loaded: input/tex, output/svg) to
 * jobs; returns {endJob}, to call once a job's figures are drawn.
 */
export function scopeMathJax(MathJax) {
  const mathjax = MathJax._.mathjax.mathjax;
  const makeDocument = mathjax.document.bind(mathjax);
  const SVG = MathJax._.output.svg_ts.SVG;
  const TeX = MathJax.startup.constructors.tex;
  let options = null; // what plotly.js asked its document to be made with
  let current = null; // this job's document, once it typeset something

  const jobDocument = () => {
    if (current === null) {
      // As plotly.js makes its own (svg_text_utils.js), with a TeX input and an SVG output of the job's own.
      const output = new SVG({ ...MathJax.config.svg, fontCache: "local" });
      current = makeDocument(document, { ...options, InputJax: [new TeX({ ...(MathJax.config.tex || {}) })], OutputJax: output });
    }
    return current;
  };
  const standIn = new Proxy(
    {},
    {
      get(_target, name) {
        const doc = jobDocument();
        const value = doc[name];
        return typeof value === "function" ? value.bind(doc) : value;
      },
    },
  );
  mathjax.document = (root, given) => {
    if (root === document && given && given.InputJax === MathJax.startup.input) {
      options = given; // plotly.js's call: it keeps what it gets for the page's life
      return standIn;
    }
    return makeDocument(root, given);
  };
  return {
    endJob() {
      current = null;
    },
  };
}
