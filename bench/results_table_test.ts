import assert from "node:assert/strict";
import {
  isMet,
  normalizeTables,
  readTargets,
  RESULTS_MD,
  type Target,
  targetsTable,
  withGeneratedTables,
} from "./results_table.ts";

Deno.test("RESULTS.md's targets table and its appendix are what bench/results/targets.json gives", async () => {
  const text = await Deno.readTextFile(RESULTS_MD);
  const generated = withGeneratedTables(text, await readTargets());
  assert.equal(
    normalizeTables(text),
    normalizeTables(generated),
    "run: deno run -A bench/results_table.ts",
  );
});

Deno.test("a verdict follows the values and the limit, never the text", async () => {
  const target: Target = {
    target: "peak <= 0.25 x no-hook peak",
    limit: { value: 0.25, unit: "x" },
    figures: [{ run: "r", values: [{ value: 0.21 }, { value: 0.26, note: "glibc" }], detail: "" }],
  };
  assert.equal(isMet(target, target.figures[0]), false);
  const table = targetsTable({
    about: "",
    runs: { r: { date: "", command: "", results: "" } },
    targets: [target],
  });
  assert.match(table, /\| 0\.21x \/ 0\.26x \(glibc\) \| 0\.25x \| \*\*missed\*\* \|/);
  // Every figure of the committed data names a known run, and the newest come first.
  const data = await readTargets();
  for (const { figures } of data.targets) {
    for (const { run } of figures) assert.ok(data.runs[run], `unknown run "${run}"`);
  }
});
