// MathJax 3 (npm mathjax, served from our assets) for LaTeX in figures' text:
// loaded before mathjax/startup.js; plotly.js typesets "$...$" strings with it.
//
// Only the TeX input and SVG output are loaded (and TeX extensions on demand,
// from the same place): not the combined tex-svg.js, whose right-click menu and
// hidden screen-reader MathML write HTML from strings (innerHTML, DOMParser)
// and inline <style> sheets, which the client page's Trusted Types and style
// policy refuse, rightly. Nothing on the page itself is typeset.
// `window.plotfarmMathJax` resolves once MathJax is ready, or rejects with why not.
window.plotfarmMathJax = new Promise((resolve, reject) => {
  window.MathJax = {
    loader: {
      load: ["input/tex", "output/svg"],
      failed: (error) => reject(new Error(`MathJax did not load: ${error.message}`)),
    },
    startup: {
      typeset: false,
      ready: () => {
        window.MathJax.startup.defaultReady();
        resolve(window.MathJax);
      },
    },
  };
});
