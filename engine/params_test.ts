import assert from "node:assert/strict";
import {
  checkParamValue,
  type ParamOverride,
  parseFlowValue,
  parseSetArgument,
  resolveParams,
} from "./params.ts";
import type { ParamDeclaration } from "./workflow_document.ts";

const bases = { workflowDir: "/work/flows", cwd: "/home/me" };

function param(declaration: Partial<ParamDeclaration>): ParamDeclaration {
  return { type: ["any"], hasDefault: false, ...declaration };
}

function set(...arguments_: string[]): Map<string, ParamOverride> {
  const overrides = new Map<string, ParamOverride>();
  for (const argument of arguments_) {
    const parsed = parseSetArgument(argument);
    if (typeof parsed === "string") throw new Error(parsed);
    overrides.set(parsed.name, parsed.override);
  }
  return overrides;
}

Deno.test("parseFlowValue reads numbers, booleans, null and flow collections", () => {
  assert.equal(parseFlowValue("42"), 42);
  assert.equal(parseFlowValue("-1.5"), -1.5);
  assert.equal(parseFlowValue("1e3"), 1000);
  assert.equal(parseFlowValue("0x10"), 16);
  assert.equal(parseFlowValue("true"), true);
  assert.equal(parseFlowValue("false"), false);
  assert.equal(parseFlowValue("null"), null);
  assert.deepEqual(parseFlowValue("[a, b]"), ["a", "b"]);
  assert.deepEqual(parseFlowValue('["x, y", z]'), ["x, y", "z"]);
  assert.deepEqual(parseFlowValue("{ width: 64, height: 32 }"), { width: 64, height: 32 });
  assert.equal(parseFlowValue('"quoted: text"'), "quoted: text");
});

Deno.test("parseFlowValue keeps integers beyond 2^53 exact as bigints", () => {
  assert.equal(parseFlowValue("18446744073709551615"), 18446744073709551615n);
  assert.equal(parseFlowValue("9007199254740991"), Number.MAX_SAFE_INTEGER);
});

Deno.test("parseFlowValue returns anything else as the text itself", () => {
  assert.equal(
    parseFlowValue("a cat: on a mat # not a comment"),
    "a cat: on a mat # not a comment",
  );
  assert.equal(parseFlowValue("yes"), "yes");
  assert.equal(parseFlowValue("  spaced  "), "  spaced  ");
  assert.equal(parseFlowValue(""), "");
  assert.equal(parseFlowValue("[unclosed"), "[unclosed");
  assert.equal(parseFlowValue("out/video.mp4"), "out/video.mp4");
});

Deno.test("parseSetArgument splits at the first = and keeps the raw text", () => {
  const parsed = parseSetArgument("prompt=a=b");
  assert.ok(typeof parsed !== "string");
  assert.equal(parsed.name, "prompt");
  assert.equal(parsed.override.value, "a=b");
  assert.equal(parsed.override.raw, "a=b");
  assert.equal(parsed.override.origin, "--set prompt=a=b");
  assert.equal(parseSetArgument("seed"), 'Invalid --set "seed": expected key=value');
  assert.equal(parseSetArgument("=3"), 'Invalid --set "=3": expected key=value');
});

Deno.test("checkParamValue accepts each type and converts where the text says so", () => {
  const check = (declaration: Partial<ParamDeclaration>, value: unknown, raw?: string) =>
    checkParamValue(param(declaration), value, raw, "/in", "/out");
  assert.deepEqual(check({ type: ["integer"] }, 7), { value: 7 });
  assert.deepEqual(check({ type: ["integer"] }, 2n ** 64n), { value: 2n ** 64n });
  assert.deepEqual(check({ type: ["number"] }, 7), { value: 7 });
  assert.deepEqual(check({ type: ["boolean"] }, false), { value: false });
  assert.deepEqual(check({ type: ["string"] }, "text"), { value: "text" });
  // A string param takes what was typed even when it reads as a number.
  assert.deepEqual(check({ type: ["string"] }, 42, "42"), { value: "42" });
  assert.deepEqual(check({ type: ["path"] }, "model.onnx"), { value: "/in/model.onnx" });
  assert.deepEqual(check({ type: ["output_path"] }, "video.mp4"), { value: "/out/video.mp4" });
  assert.deepEqual(check({ type: ["path"] }, "/abs/file"), { value: "/abs/file" });
  assert.deepEqual(check({ type: ["list"], items: "integer" }, [1, 2]), { value: [1, 2] });
  assert.deepEqual(check({ type: ["list"], items: "path" }, ["a"]), { value: ["/in/a"] });
  assert.deepEqual(check({ type: ["string", "list"] }, ["a"]), { value: ["a"] });
  assert.deepEqual(check({ type: ["any"] }, { x: 1 }), { value: { x: 1 } });
});

Deno.test("checkParamValue says what is wrong as the end of a sentence", () => {
  const check = (declaration: Partial<ParamDeclaration>, value: unknown, raw?: string) =>
    checkParamValue(param(declaration), value, raw, "/in", "/out");
  assert.equal(check({ type: ["integer"] }, 1.5), "must be an integer, got 1.5");
  assert.equal(check({ type: ["integer"] }, "x", "x"), 'must be an integer, got "x"');
  assert.equal(check({ type: ["number"] }, true), "must be a number, got true");
  assert.equal(check({ type: ["boolean"] }, "yes"), 'must be true or false, got "yes"');
  assert.equal(check({ type: ["string"] }, ["a"], "[a]"), "must be a string, got a list");
  assert.equal(check({ type: ["list"] }, "a"), 'must be a list, got "a"');
  assert.equal(
    check({ type: ["list"], items: "integer" }, [1, "b"]),
    'item 1 must be an integer, got "b"',
  );
  assert.equal(check({ type: ["path"] }, ""), 'must be a path, got ""');
  assert.equal(check({ type: ["integer"], min: 1, max: 10 }, 0), "must be at least 1, got 0");
  assert.equal(check({ type: ["number"], max: 1 }, 1.5), "must be at most 1, got 1.5");
  assert.equal(
    check({ type: ["string"], enum: ["ddim", "dpm"] }, "euler"),
    'must be one of "ddim", "dpm", got "euler"',
  );
  assert.equal(check({ type: ["integer", "list"] }, "x"), 'must be integer or list, got "x"');
});

Deno.test("checkParamValue accepts null only when the default is null", () => {
  const optional = param({ type: ["path"], hasDefault: true, default: null });
  assert.deepEqual(checkParamValue(optional, null, undefined, "/", "/"), { value: null });
  assert.equal(
    checkParamValue(param({ type: ["path"] }), null, undefined, "/", "/"),
    "must be a path, got null",
  );
});

Deno.test("resolveParams takes overrides, else defaults, and checks both", () => {
  const declarations = new Map<string, ParamDeclaration>([
    ["seed", param({ type: ["integer"], hasDefault: true, default: 1, min: 0 })],
    ["prompt", param({ type: ["string"], hasDefault: true, default: "a cat" })],
    ["model", param({ type: ["path"], hasDefault: true, default: "models/tiny" })],
    ["out", param({ type: ["output_path"], hasDefault: true, default: "out/v.mp4" })],
  ]);
  const { values, diagnostics } = resolveParams(declarations, set("seed=42", "prompt=7"), bases);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(Object.fromEntries(values), {
    seed: 42,
    prompt: "7",
    // Defaults written in the file are relative to the file; outputs to the current directory.
    model: "/work/flows/models/tiny",
    out: "/home/me/out/v.mp4",
  });
  // Paths given on the command line are relative to the current directory.
  assert.equal(
    resolveParams(declarations, set("model=m"), bases).values.get("model"),
    "/home/me/m",
  );
});

Deno.test("resolveParams reports unknown, missing and invalid params together", () => {
  const declarations = new Map<string, ParamDeclaration>([
    ["seed", param({ type: ["integer"], hasDefault: true, default: 1 })],
    ["steps", param({ type: ["integer"], hasDefault: true, default: 0, min: 1 })],
    ["prompt", param({ type: ["string"] })],
  ]);
  const locate = (path: readonly (string | number)[]) => ({
    file: "w.yaml",
    line: path.length,
    col: 3,
  });
  const { diagnostics } = resolveParams(
    declarations,
    set("sed=3", "seed=abc"),
    bases,
    locate,
  );
  assert.deepEqual(diagnostics.map((d) => [d.code, d.message, d.hint, d.position?.line]), [
    [
      "unknown_param",
      '--set sed=3: Unknown param "sed": this workflow has seed, steps, prompt',
      'did you mean "seed"?',
      undefined,
    ],
    [
      "invalid_param",
      '--set seed=abc: Param "seed" must be an integer, got "abc"',
      undefined,
      undefined,
    ],
    ["invalid_param", 'Default of param "steps" must be at least 1, got 0', undefined, 3],
    ["missing_param", 'Param "prompt" has no default: set it with --set prompt=...', undefined, 2],
  ]);
});
