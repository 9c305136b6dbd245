import assert from "node:assert/strict";
import { closestMatch, formatDiagnostic, HintBudget, MAX_HINT_CANDIDATES } from "./diagnostics.ts";
import { loadWorkflow } from "./load_workflow.ts";
import { NodeRegistry } from "./registry.ts";
import { WorkflowError } from "./diagnostics.ts";

Deno.test("a diagnostic is one line: control characters in the file, path and message are escaped", () => {
  const line = formatDiagnostic({
    code: "unknown_key",
    message: 'Unknown key "k\x1b[2J": expected one of type, in',
    path: ["nodes", "a\nb"],
    position: { file: "evil\x1b[31m\n.yaml", line: 3, col: 5 },
  });
  assert.equal(
    line,
    'evil\\x1b[31m\\n.yaml:3:5: nodes.a\\nb: Unknown key "k\\x1b[2J": expected one of type, in',
  );
  assert.ok([...line].every((char) => char >= " "), line);
});

Deno.test("a workflow path with escape sequences is quoted and escaped in the message", async () => {
  const file = "/nonexistent/\x1b[31mred\n.yaml";
  const error = await loadWorkflow(file, { registry: new NodeRegistry() }).catch((e) => e);
  assert.ok(error instanceof WorkflowError);
  const line = formatDiagnostic(error.diagnostics[0]);
  assert.ok(line.startsWith('Cannot read workflow "/nonexistent/\\x1b[31mred\\n.yaml": '), line);
  assert.ok(!line.includes("\x1b"));
});

Deno.test("did-you-mean hints are bounded: no hint among too many candidates or past the budget", () => {
  assert.equal(closestMatch("tokenizr", ["tokenizer", "vae"]), "tokenizer");
  const many = Array.from({ length: MAX_HINT_CANDIDATES + 1 }, (_, i) => `node_${i}`);
  assert.equal(closestMatch("node_1x", many), undefined);
  const budget = new HintBudget(5);
  assert.equal(closestMatch("tokenizr", ["tokenizer", "vae"], budget), "tokenizer");
  assert.equal(budget.left, 3);
  assert.equal(closestMatch("tokenizr", ["tokenizer", "vae", "a", "b"], budget), undefined);
});
