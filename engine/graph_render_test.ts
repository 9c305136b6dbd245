import assert from "node:assert/strict";
import * as arithmetic from "../tests/plugins/arithmetic.ts";
import { nodeLabel, toDot, toMermaid } from "./graph_render.ts";
import { parseWorkflow } from "./load_workflow.ts";
import { NodeRegistry } from "./registry.ts";

const registry = new NodeRegistry();
registry.registerModule(arithmetic, "arithmetic test plugin");

const { graph } = await parseWorkflow(
  `cogflow: 1
name: render
nodes:
  x: { type: number, with: { value: 1.5 } }
  parts: { type: split, in: { value: x } }
  sum: { type: add, in: { a: parts.integer, b: x } }
  shift: { type: offset_hook, wraps: [x, parts.fraction] }
  save: { type: write_number, in: { value: sum }, with: { path: /tmp/out.txt } }
`,
  { registry, file: "render.yaml" },
);

Deno.test("toMermaid draws nodes, hooks as hexagons, and labelled edges", () => {
  assert.equal(
    toMermaid(graph),
    `flowchart TD
  x["x (number)"]
  n_shift_x_{{"shift[x] (offset_hook, wraps x.value)"}}
  parts["parts (split)"]
  n_shift_parts_fraction_{{"shift[parts.fraction] (offset_hook, wraps parts.fraction)"}}
  sum["sum (add)"]
  save["save (write_number)"]
  x -.->|value| n_shift_x_
  n_shift_x_ -->|value| parts
  parts -.->|fraction → value| n_shift_parts_fraction_
  parts -->|integer → a| sum
  n_shift_x_ -->|value → b| sum
  sum -->|sum → value| save
`,
  );
});

Deno.test("toDot draws hooks dashed and output nodes bold", () => {
  assert.equal(
    toDot(graph),
    `digraph workflow {
  rankdir=TB;
  node [shape=box, fontname="Helvetica"];
  "x" [label="x (number)"];
  "shift[x]" [label="shift[x] (offset_hook, wraps x.value)", shape=hexagon, style=dashed];
  "parts" [label="parts (split)"];
  "shift[parts.fraction]" [label="shift[parts.fraction] (offset_hook, wraps parts.fraction)", shape=hexagon, style=dashed];
  "sum" [label="sum (add)"];
  "save" [label="save (write_number)", style=bold];
  "x" -> "shift[x]" [label="value", style=dashed];
  "shift[x]" -> "parts" [label="value"];
  "parts" -> "shift[parts.fraction]" [label="fraction → value", style=dashed];
  "parts" -> "sum" [label="integer → a"];
  "shift[x]" -> "sum" [label="value → b"];
  "sum" -> "save" [label="sum → value"];
}
`,
  );
});

Deno.test("Mermaid ids never collide and avoid the keyword `end`", async () => {
  const { graph } = await parseWorkflow(
    `cogflow: 1
name: ids
nodes:
  end: { type: number, with: { value: 1 } }
  n_end: { type: number, with: { value: 2 } }
  a-b: { type: add, in: { a: end, b: n_end } }
`,
    { registry },
  );
  const mermaid = toMermaid(graph);
  assert.match(mermaid, /^ {2}n_end_\["end \(number\)"\]$/m);
  assert.match(mermaid, /^ {2}n_end\["n_end \(number\)"\]$/m);
  assert.match(mermaid, /^ {2}n_a_b\["a-b \(add\)"\]$/m);
  assert.match(mermaid, /^ {2}n_end_ -->\|value → a\| n_a_b$/m);
});

Deno.test("nodeLabel names the id and type, and for a hook what it wraps", () => {
  assert.equal(nodeLabel(graph.nodes.get("sum")!), "sum (add)");
  assert.equal(
    nodeLabel(graph.nodes.get("shift[parts.fraction]")!),
    "shift[parts.fraction] (offset_hook, wraps parts.fraction)",
  );
});
