import assert from "node:assert/strict";
import { referencedParams, substituteParams } from "./substitute.ts";

const params = new Map<string, unknown>([
  ["seed", 42],
  ["prompt", "a cat"],
  ["size", [64, 32]],
  ["big", 2n ** 64n],
  ["enabled", true],
]);

Deno.test("a whole `$param` value keeps the param's type", () => {
  assert.equal(substituteParams("$seed", params).value, 42);
  assert.deepEqual(substituteParams("$size", params).value, [64, 32]);
  assert.equal(substituteParams("$big", params).value, 2n ** 64n);
  assert.equal(substituteParams("$enabled", params).value, true);
});

Deno.test("`${param}` inside text interpolates it, as JSON unless it is a string", () => {
  assert.equal(substituteParams("${prompt}, seed ${seed}", params).value, "a cat, seed 42");
  assert.equal(substituteParams("size=${size}", params).value, "size=[64,32]");
  assert.equal(substituteParams("${ seed }", params).value, "42");
  assert.equal(substituteParams("seed ${big}", params).value, "seed 18446744073709551616");
  // `${param}` alone is interpolation too: the result is text.
  assert.equal(substituteParams("${seed}", params).value, "42");
});

Deno.test("`$$` is a literal dollar sign, and a lone `$` stays", () => {
  assert.equal(substituteParams("costs $$5", params).value, "costs $5");
  assert.equal(substituteParams("$$seed", params).value, "$seed");
  assert.equal(substituteParams("$$${seed}", params).value, "$42");
  assert.equal(substituteParams("a $ b", params).value, "a $ b");
  assert.equal(substituteParams("$seed and more", params).value, "$seed and more");
});

Deno.test("substitution goes into lists and mappings, and leaves other values alone", () => {
  const { value, unknown } = substituteParams(
    { steps: 50, seeds: ["$seed", 1], nested: { text: "${prompt}!" }, flag: null },
    params,
  );
  assert.deepEqual(value, { steps: 50, seeds: [42, 1], nested: { text: "a cat!" }, flag: null });
  assert.deepEqual(unknown, []);
});

Deno.test("unknown names are reported with their path and left in place", () => {
  const { value, unknown } = substituteParams(
    { a: "$nope", b: ["x ${missing} y"], c: "${}" },
    params,
    ["with"],
  );
  assert.deepEqual(value, { a: "$nope", b: ["x ${missing} y"], c: "${}" });
  assert.deepEqual(unknown, [
    { name: "nope", path: ["with", "a"] },
    { name: "missing", path: ["with", "b", 0] },
    { name: "", path: ["with", "c"] },
  ]);
});

Deno.test("referencedParams lists every name a value uses", () => {
  const names = referencedParams({ a: "$seed", b: ["${prompt} ${ size }", "$$notme"], c: 3 });
  assert.deepEqual([...names].sort(), ["prompt", "seed", "size"]);
});
