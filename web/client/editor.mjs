// The client page's code editor: CodeMirror 6 (npm, pinned, served by the gateway under
// /assets/BUILD/editor/), with Python highlighting, indentation, bracket matching and
// history. Its bare imports ("@codemirror/view") resolve through the page's import map.
//
// client.mjs imports this module dynamically: if it (or one of CodeMirror's files) fails
// to load, the page keeps its plain textarea, which knows Tab and Python's indentation.
//
// The editor lives in a shadow root: CodeMirror then puts its styles in constructed
// stylesheets of that root (style-mod's adoptedStyleSheets), which the page's CSP allows,
// where in the document it would write a <style> element whose text no hash can foresee.

import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import {
  bracketMatching,
  defaultHighlightStyle,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
} from "@codemirror/language";
import { EditorState, Prec } from "@codemirror/state";
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
} from "@codemirror/view";

const theme = EditorView.theme({
  "&": { height: "100%", fontSize: "0.85rem", backgroundColor: "#fff" },
  "&.cm-focused": { outline: "2px solid #2563eb", outlineOffset: "-1px" },
  ".cm-scroller": { fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace', lineHeight: "1.45" },
  ".cm-gutters": { backgroundColor: "#f6f7f9", color: "#8a949e", borderRight: "1px solid #dde2e7" },
  ".cm-activeLine": { backgroundColor: "#f3f7ff" },
  ".cm-activeLineGutter": { backgroundColor: "#e6eefc" },
});

/**
 * A CodeMirror editor in `host` (its shadow root), holding `doc`.
 * `onRun` is called on Ctrl+Enter / Cmd+Enter. Returns {get, set, focus, view}.
 */
export function createEditor(host, { doc = "", onRun = () => {}, label = "Python code" } = {}) {
  const root = host.shadowRoot || host.attachShadow({ mode: "open" });
  const run = () => {
    onRun();
    return true; // handled: no blank line inserted (the default keymap's Mod-Enter)
  };
  const view = new EditorView({
    root,
    parent: root,
    state: EditorState.create({
      doc,
      extensions: [
        // Before every other binding: Ctrl+Enter runs, on every platform; Cmd+Enter on a Mac.
        Prec.highest(keymap.of([{ key: "Mod-Enter", run }, { key: "Ctrl-Enter", run }])),
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        drawSelection(),
        EditorState.allowMultipleSelections.of(true),
        indentOnInput(),
        indentUnit.of("    "),
        EditorState.tabSize.of(4),
        syntaxHighlighting(defaultHighlightStyle),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        python(),
        // Tab indents; Esc, then Tab, leaves the editor (CodeMirror's tab focus mode), so
        // keyboard users are never trapped.
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, indentWithTab]),
        EditorView.contentAttributes.of({ "aria-label": label }),
        theme,
      ],
    }),
  });
  return {
    view,
    get: () => view.state.doc.toString(),
    set(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text }, selection: { anchor: 0 } });
    },
    focus: () => view.focus(),
  };
}
