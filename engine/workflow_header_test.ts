import assert from "node:assert/strict";
import { generateWorkflow } from "../bench/validate_bench.ts";
import { readWorkflowHeader, textWithoutNodes } from "./workflow_header.ts";
import { readWorkflowDocument, type WorkflowDocument } from "./workflow_document.ts";
import { parseYamlSource } from "./yaml_source.ts";

/** What the launcher reads of a document: everything but the nodes. */
function header(document: WorkflowDocument | undefined) {
  if (!document) return undefined;
  const { nodes: _nodes, ...rest } = document;
  return rest;
}

function fullRead(text: string) {
  return header(readWorkflowDocument(parseYamlSource(text, "w.yaml")).document);
}

const CASES: Record<string, string> = {
  "params after nodes, comments at column 0 inside them": `cogflow: 1
name: n
nodes:
  a: { type: x }
# a comment at column 0 does not end the nodes
  b:
    type: y
    description: |
      params: { not: a key }
params:
  out: { type: output_path, default: out/a.mp4 }
plugins:
- ./p.ts
`,
  "a quoted string in the nodes spanning lines": `cogflow: 1
name: n
nodes:
  a: { type: x, with: { text: "first
   params: { evil: { type: path, default: / } }" } }
  b: { type: y, description: 'one
    params: { evil: 1 }' }
plugins: [./q.ts]
`,
  "a flow mapping in the nodes spanning lines": `cogflow: 1
name: n
nodes: {
  a: { type: x },
}
params: { seed: { type: integer, default: 3 } }
`,
  "an alias in the params to an anchor in the nodes": `cogflow: 1
name: n
nodes:
  a: { type: x, with: { path: &where /data } }
params:
  where: { type: path, default: *where }
`,
  "no top-level nodes key": `cogflow: 1
name: n
params: { seed: { type: integer, default: 3 } }
`,
};

for (const [name, text] of Object.entries(CASES)) {
  Deno.test(`readWorkflowHeader reads what a full read does: ${name}`, () => {
    assert.deepEqual(header(readWorkflowHeader(text, "w.yaml")), fullRead(text));
  });
}

Deno.test("a file that is not valid YAML gives nothing to a full read, whatever its header says", () => {
  // The child then reports the errors and runs nothing, whatever the launcher granted.
  const twoNodes = "cogflow: 1\nname: n\nnodes: { a: { type: x } }\nnodes: { b: { type: y } }\n";
  assert.equal(fullRead(twoNodes), undefined);
  const unclosed = 'cogflow: 1\nname: n\nnodes: { a: { with: { text: "first\nparams: {}" } } }\n';
  assert.equal(fullRead(unclosed), undefined);
});

Deno.test("textWithoutNodes leaves out only the top-level nodes section", () => {
  assert.equal(
    textWithoutNodes(CASES["params after nodes, comments at column 0 inside them"]),
    `cogflow: 1
name: n
params:
  out: { type: output_path, default: out/a.mp4 }
plugins:
- ./p.ts
`,
  );
  assert.equal(textWithoutNodes("cogflow: 1\nname: n\n"), undefined);
  assert.equal(textWithoutNodes('"nodes": {}\n'), undefined);
});

Deno.test("readWorkflowHeader of a generated 5,000-node file gives its header", () => {
  const text = generateWorkflow(5_000).replace(
    "nodes:",
    "params:\n  seed: { type: integer, default: 1 }\nplugins: [./p.ts]\nnodes:",
  );
  const document = readWorkflowHeader(text, "big.yaml");
  assert.deepEqual(document?.nodes, []);
  assert.deepEqual(header(document), fullRead(text));
});
