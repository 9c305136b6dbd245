import assert from "node:assert/strict";
import { normalizeIntegers, parseYamlSource } from "./yaml_source.ts";

const text = `cogflow: 1
name: example
nodes:
  load:
    type: load_tensor
    with: { path: a.npy, sizes: [1, 2, 3] }
  list:
    - first
    - second
`;

Deno.test("parseYamlSource gives plain data and no errors for valid YAML", () => {
  const source = parseYamlSource(text, "example.yaml");
  assert.deepEqual(source.errors, []);
  assert.equal(source.file, "example.yaml");
  assert.deepEqual((source.data as { nodes: unknown }).nodes, {
    load: { type: "load_tensor", with: { path: "a.npy", sizes: [1, 2, 3] } },
    list: ["first", "second"],
  });
});

Deno.test("locate finds the 1-based line and column of values and keys", () => {
  const source = parseYamlSource(text, "example.yaml");
  assert.deepEqual(source.locate(["nodes", "load", "type"]), {
    file: "example.yaml",
    line: 5,
    col: 11,
  });
  assert.deepEqual(source.locate(["nodes", "load", "type"], { key: true }), {
    file: "example.yaml",
    line: 5,
    col: 5,
  });
  assert.equal(source.locate(["nodes", "load", "with", "sizes", 2])?.col, 40);
  assert.equal(source.locate(["nodes", "list", 1])?.line, 9);
});

Deno.test("locate falls back to the deepest part of the path that exists", () => {
  const source = parseYamlSource(text, "example.yaml");
  // `nodes.load.in` is missing: the position of `nodes.load`'s value.
  assert.deepEqual(source.locate(["nodes", "load", "in"]), {
    file: "example.yaml",
    line: 5,
    col: 5,
  });
  assert.equal(source.locate(["nodes", "list", 7])?.line, 8);
  assert.equal(source.locate([])?.line, 1);
});

Deno.test("syntax errors are diagnostics with positions, never exceptions", () => {
  const cases: [string, string, number, number][] = [
    ["a: [1, 2\n", "Invalid YAML: flow sequence in block collection", 2, 1],
    ["a: 1\na: 2\n", 'Invalid YAML: duplicate key "a"', 2, 1],
    ["k: { x: 1, x: 2 }\n", 'Invalid YAML: duplicate key "x"', 1, 12],
    ["a:\n  b: 'open\n", "Invalid YAML: missing closing 'quote", 3, 1],
    [
      "a: 1\n---\nb: 2\n",
      "Invalid YAML: a workflow is one document, but `---` starts another",
      2,
      1,
    ],
    ["\t a: 1", "Invalid YAML: tabs are not allowed as indentation", 1, 1],
    ["a: &x [*x]\n", "Invalid YAML: an alias refers to a collection that contains it", 1, 1],
  ];
  for (const [yaml, message, line, col] of cases) {
    const source = parseYamlSource(yaml, "bad.yaml");
    assert.equal(source.data, undefined, yaml);
    assert.equal(source.errors.length, 1, yaml);
    assert.ok(source.errors[0].message.startsWith(message), source.errors[0].message);
    assert.equal(source.errors[0].code, "yaml_syntax");
    assert.deepEqual(source.errors[0].position, { file: "bad.yaml", line, col }, yaml);
  }
});

Deno.test("too many aliases are refused (no exponential expansion)", () => {
  const lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 8; i++) {
    lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]`);
  }
  const source = parseYamlSource(lines.join("\n"), "bomb.yaml");
  assert.equal(source.errors.length, 1);
  assert.match(source.errors[0].message, /^Invalid YAML: /);
});

Deno.test("empty text parses to null data, left to the workflow reader to refuse", () => {
  const source = parseYamlSource("", "empty.yaml");
  assert.deepEqual(source.errors, []);
  assert.equal(source.data, null);
});

Deno.test("integers stay numbers when exact, and bigints beyond 2^53", () => {
  const source = parseYamlSource("seed: 18446744073709551615\nsteps: 50\nscale: 6.0\n", "s.yaml");
  assert.deepEqual(source.data, { seed: 18446744073709551615n, steps: 50, scale: 6 });
  assert.deepEqual(normalizeIntegers([1n, { a: 2n ** 60n }]), [1, { a: 2n ** 60n }]);
});

Deno.test("a duplicate key is reported whole, with its path and where it was first written", () => {
  const source = parseYamlSource(
    "nodes:\n  settings: 1\n  other: { steps: 1, steps: 2 }\n  settings: 2\nlist:\n  - { a: 1, a: 2 }\n",
    "dup.yaml",
  );
  assert.equal(source.data, undefined);
  assert.deepEqual(
    source.errors.map((error) => [error.position, error.path, error.message]),
    [
      [
        { file: "dup.yaml", line: 3, col: 22 },
        ["nodes", "other", "steps"],
        'Invalid YAML: duplicate key "steps" (first at line 3, col 12)',
      ],
      [
        { file: "dup.yaml", line: 4, col: 3 },
        ["nodes", "settings"],
        'Invalid YAML: duplicate key "settings" (first at line 2, col 3)',
      ],
      [
        { file: "dup.yaml", line: 6, col: 13 },
        ["list", 0, "a"],
        'Invalid YAML: duplicate key "a" (first at line 6, col 7)',
      ],
    ],
  );
});

Deno.test('keys equal as data are duplicates: 1 and "1" both become the key "1"', () => {
  const source = parseYamlSource('a:\n  1: x\n  "1": y\n', "dup.yaml");
  assert.equal(source.errors.length, 1);
  assert.equal(
    source.errors[0].message,
    'Invalid YAML: duplicate key "1" (first at line 2, col 3)',
  );
});

Deno.test("duplicate keys are found in time linear in the mapping's size", () => {
  const lines = ["nodes:"];
  for (let i = 0; i < 50_000; i++) lines.push(`  n${i}: ${i}`);
  lines.push("  n7: again");
  const started = performance.now();
  const source = parseYamlSource(lines.join("\n"), "big.yaml");
  assert.deepEqual(source.errors.map((error) => error.path), [["nodes", "n7"]]);
  // The yaml package's own check compares every key with every other: minutes at this size.
  assert.ok(performance.now() - started < 60_000);
});
