/**
 * A workflow file read without its nodes: for what needs only its params and plugins (the
 * launcher's permissions), in a fraction of a full parse's time on a large file. The top-level
 * `nodes:` section is found with the `yaml` package's lexer (so quoted and block scalars and flow
 * collections are tokens, as the parser sees them) and left out; the rest is parsed as usual.
 * When that is not possible (no top-level `nodes:` key written plainly, an alias to an anchor
 * inside the nodes), the whole file is parsed.
 *
 * @module
 */

import { CST, Lexer } from "yaml";
import { readWorkflowDocument, type WorkflowDocument } from "./workflow_document.ts";
import { parseYamlSource } from "./yaml_source.ts";

/** Lexer tokens that mark a place in the text but hold none of it. */
const ZERO_WIDTH = new Set(["doc-mode", "scalar", "flow-error-end"]);

/**
 * The text with every top-level `nodes:` section (its key line up to the next top-level entry)
 * left out, or undefined when there is none.
 */
export function textWithoutNodes(text: string): string | undefined {
  const sections: [number, number][] = [];
  let offset = 0;
  let flowDepth = 0;
  let start: number | undefined;
  let afterMarker = false;
  for (const token of new Lexer().lex(text)) {
    const type = CST.tokenType(token);
    if (ZERO_WIDTH.has(type ?? "")) {
      afterMarker = type === "scalar";
      continue;
    }
    const atLineStart = flowDepth === 0 && (offset === 0 || text[offset - 1] === "\n");
    if (type === "flow-map-start" || type === "flow-seq-start") flowDepth++;
    if ((type === "flow-map-end" || type === "flow-seq-end") && flowDepth > 0) flowDepth--;
    // A block sequence may stand at the indentation of its key; comments end nothing.
    const endsEntry = atLineStart && type !== "newline" && type !== "space" &&
      type !== "comment" && type !== "seq-item-ind";
    if (endsEntry && start !== undefined) {
      sections.push([start, offset]);
      start = undefined;
    }
    if (atLineStart && afterMarker && token === "nodes" && text[offset + 5] === ":") {
      start = offset;
    }
    afterMarker = false;
    offset += token.length;
  }
  if (start !== undefined) sections.push([start, text.length]);
  if (sections.length === 0) return undefined;
  let kept = "";
  let from = 0;
  for (const [begin, end] of sections) {
    kept += text.slice(from, begin);
    from = end;
  }
  return kept + text.slice(from);
}

/**
 * The workflow's document without its nodes (`nodes` is empty): its name, params, plugins and
 * outputs, as a full read gives them. Undefined when the file is not a workflow; problems are not
 * reported (a full read reports them).
 */
export function readWorkflowHeader(text: string, file: string): WorkflowDocument | undefined {
  const header = textWithoutNodes(text);
  if (header !== undefined) {
    const source = parseYamlSource(header, file);
    if (source.errors.length === 0) {
      const { document } = readWorkflowDocument(source);
      if (document) return document;
    }
  }
  const { document } = readWorkflowDocument(parseYamlSource(text, file));
  return document ? { ...document, nodes: [] } : undefined;
}
