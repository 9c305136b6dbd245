/**
 * Fuzzing validation: thousands of mutated workflows (keys deleted, values of other types, text
 * cut short, references swapped and renamed, keys duplicated, unicode injected, random `--set`
 * values) must each either validate or fail with a {@link WorkflowError} whose diagnostics are
 * well formed. Anything else thrown is a bug. Only validation runs, never a workflow.
 *
 * Seeds are the workflows in `tests/workflows/`, `tests/invalid/` and the library's `workflows/`.
 * A failure prints the seed, the iteration and the mutated text, to be replayed with
 * `FUZZ_SEED=<seed> FUZZ_ITERATIONS=<n>`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, resolve } from "node:path";
import { parse, stringify } from "yaml";
import { builtinRegistry } from "../api/mod.ts";
import { type Diagnostic, parseWorkflow, WorkflowError } from "../engine/mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20240611);
const ITERATIONS = Number(Deno.env.get("FUZZ_ITERATIONS") ?? 1500);

/** Plugin files a mutated workflow may load: others could run code that is not a plugin. */
const SAFE_PLUGINS = new Set([
  resolve(ROOT, "tests/plugins/arithmetic.ts"),
  resolve(ROOT, "tests/plugins/duplicate_plugin.ts"),
  resolve(ROOT, "tests/plugins/empty_plugin.ts"),
  resolve(ROOT, "tests/plugins/throwing_plugin.ts"),
]);

/** A small seeded PRNG (mulberry32): the same seed gives the same mutations. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Seed {
  file: string;
  dir: string;
  text: string;
}

async function readSeeds(): Promise<Seed[]> {
  const seeds: Seed[] = [];
  for (const folder of ["tests/workflows", "tests/invalid", "workflows"]) {
    const dir = resolve(ROOT, folder);
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (!entry.isFile || !/\.ya?ml$/.test(entry.name)) continue;
      const file = resolve(dir, entry.name);
      seeds.push({ file, dir, text: await Deno.readTextFile(file) });
    }
  }
  return seeds;
}

const UNICODE = ["é", "ß", "中文", "🎬", "\u200b", "\u202e", "\ufeff", "𝔘", "\u0000", "\t", "\r"];
const PUNCTUATION = [
  "{",
  "}",
  "[",
  "]",
  ":",
  ": ",
  ", ",
  "- ",
  "&a ",
  "*a",
  "!tag ",
  "---\n",
  '"',
  "'",
  "#",
  "|",
  ">",
  "\n",
  "  ",
  "$",
  "${",
  "$$",
  ".",
];
const FLOW_VALUES = [
  "42",
  "-1",
  "0",
  "1.5",
  "1e400",
  "0x1F",
  "18446744073709551615",
  "true",
  "false",
  "null",
  "~",
  "",
  "[a, b]",
  '["x, y", z]',
  "{a: 1}",
  "[unclosed",
  "'quoted'",
  '"x',
  "=",
  "a: b",
  "out/x.txt",
  "🎬",
  ".nan",
  "-.inf",
];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)];
}

function randomScalar(random: () => number, names: string[]): unknown {
  switch (Math.floor(random() * 12)) {
    case 0:
      return Math.floor(random() * 200) - 100;
    case 1:
      return random() * 10;
    case 2:
      return random() < 0.5;
    case 3:
      return null;
    case 4:
      return pick(random, UNICODE) + pick(random, names);
    case 5:
      return `$${pick(random, names)}`;
    case 6:
      return `\${${pick(random, names)}} and $$`;
    case 7:
      return `${pick(random, names)}.${pick(random, names)}`;
    case 8:
      return [pick(random, names), 1];
    case 9:
      return { [pick(random, names)]: pick(random, names) };
    case 10:
      return "";
    default:
      return pick(random, names);
  }
}

/** Every path to a value in plain data. */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []) {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((item, i) => paths(item, [...prefix, i], out));
  else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) paths(item, [...prefix, key], out);
  }
  return out;
}

/** Every string in plain data (node ids, references, types, param names). */
function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) value.forEach((item) => strings(item, out));
  else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      out.push(key);
      strings(item, out);
    }
  }
  return out;
}

function parentOf(data: unknown, path: (string | number)[]): Record<string, unknown> | undefined {
  let current = data;
  for (const part of path.slice(0, -1)) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return typeof current === "object" && current !== null
    ? current as Record<string, unknown>
    : undefined;
}

/** Mutates parsed data: deletes, retypes, renames, swaps or adds one thing. */
function mutateData(random: () => number, data: unknown): unknown {
  const names = [...new Set(strings(data)), "__proto__", "constructor", "toString", "nodes", "x"];
  const all = paths(data).filter((path) => path.length > 0);
  if (all.length === 0) return randomScalar(random, names);
  // Often only a setting: the rest stays valid, so the node types' own checks (`infer`) run.
  const settings = all.filter((path) => path[0] === "nodes" && path[2] === "with");
  const path = pick(random, settings.length > 0 && random() < 0.3 ? settings : all);
  const parent = parentOf(data, path);
  if (!parent) return data;
  const key = path[path.length - 1] as string;
  switch (Math.floor(random() * 6)) {
    case 0: // delete a key or an item
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      break;
    case 1: // change a value's type
      parent[key] = randomScalar(random, names);
      break;
    case 2: { // swap a reference or id for another string of the document
      const value = parent[key];
      if (typeof value === "string") parent[key] = pick(random, names);
      else parent[key] = randomScalar(random, names);
      break;
    }
    case 3: { // rename a key
      if (Array.isArray(parent)) break;
      const value = parent[key];
      delete parent[key];
      Object.defineProperty(parent, pick(random, names) + (random() < 0.3 ? "_2" : ""), {
        value,
        enumerable: true,
        configurable: true,
        writable: true,
      });
      break;
    }
    case 4: { // swap two values
      const other = pick(random, all);
      const otherParent = parentOf(data, other);
      if (!otherParent) break;
      const otherKey = other[other.length - 1] as string;
      const value = parent[key];
      parent[key] = otherParent[otherKey];
      otherParent[otherKey] = value;
      break;
    }
    default: { // add a key
      if (Array.isArray(parent)) parent.push(randomScalar(random, names));
      else parent[pick(random, names)] = randomScalar(random, names);
    }
  }
  return data;
}

/** Mutates text: cuts, injects, duplicates, deletes or swaps lines and characters. */
function mutateText(random: () => number, text: string): string {
  const at = Math.floor(random() * (text.length + 1));
  const lines = text.split("\n");
  const line = Math.floor(random() * lines.length);
  switch (Math.floor(random() * 7)) {
    case 0:
      return text.slice(0, at);
    case 1:
      return text.slice(0, at) + pick(random, UNICODE) + text.slice(at);
    case 2:
      return text.slice(0, at) + pick(random, PUNCTUATION) + text.slice(at);
    case 3: // a duplicated line duplicates its key
      lines.splice(line, 0, lines[line]);
      return lines.join("\n");
    case 4:
      lines.splice(line, 1);
      return lines.join("\n");
    case 5: {
      const other = Math.floor(random() * lines.length);
      [lines[line], lines[other]] = [lines[other], lines[line]];
      return lines.join("\n");
    }
    default:
      return text.slice(0, at) + text.slice(at + 1 + Math.floor(random() * 5));
  }
}

function mutate(random: () => number, seed: Seed): string {
  let text = seed.text;
  const rounds = random() < 0.6 ? 1 : 1 + Math.floor(random() * 3);
  for (let i = 0; i < rounds; i++) {
    if (random() < 0.5) {
      text = mutateText(random, text);
      continue;
    }
    try {
      const data = parse(text, { intAsBigInt: true, logLevel: "error" });
      const style = random() < 0.3 ? "flow" : "any";
      text = stringify(mutateData(random, data), { collectionStyle: style });
    } catch {
      // Not YAML any more, or data that contains itself (an alias to an ancestor): edit the text.
      text = mutateText(random, text);
    }
  }
  return text;
}

/**
 * Values that make the library's workflows valid on the tiny fixture models (required params, sizes
 * the fixtures take), so that most mutants get past the params to the graph.
 */
function fixtureSets(file: string): Record<string, string> {
  return {
    model: resolve(ROOT, `tests/fixtures/tiny-cogvideox/${file.includes("5b") ? "5b" : "2b"}`),
    prompt: "a red ball",
    height: "64",
    width: "64",
    num_frames: "9",
    max_sequence_length: "16",
    tensors_out: "out/fuzz.safetensors",
  };
}

function randomSets(random: () => number, text: string, file: string): string[] {
  const names = [...new Set([...text.matchAll(/^ {2}([A-Za-z_][\w-]*):/gm)].map((m) => m[1]))];
  const sets: string[] = [];
  for (const [name, value] of Object.entries(fixtureSets(file))) {
    if (names.includes(name) && random() < 0.9) sets.push(`${name}=${value}`);
  }
  const count = random() < 0.5 ? 0 : Math.floor(random() * 4);
  for (let i = 0; i < count; i++) {
    const name = random() < 0.8 && names.length > 0
      ? pick(random, names)
      : pick(random, ["", "nope", "__proto__", "constructor", "🎬"]);
    sets.push(random() < 0.05 ? name : `${name}=${pick(random, FLOW_VALUES)}`);
  }
  return sets;
}

/** Whether a mutated workflow would import only known plugins (or files that do not exist). */
function importsOnlySafePlugins(text: string, dir: string): boolean {
  let data: unknown;
  try {
    data = parse(text, { logLevel: "error" });
  } catch {
    return true;
  }
  const plugins = (data as { plugins?: unknown } | null)?.plugins;
  const list = Array.isArray(plugins) ? plugins : [plugins];
  for (const specifier of list) {
    if (typeof specifier !== "string" || /^[a-z][a-z0-9+.-]*:/i.test(specifier)) continue;
    const path = resolve(dir, specifier);
    if (SAFE_PLUGINS.has(path)) continue;
    try {
      Deno.statSync(path);
      return false;
    } catch {
      // Not there: loading it fails as it should.
    }
  }
  return true;
}

function checkDiagnostic(diagnostic: Diagnostic): string | undefined {
  if (typeof diagnostic.message !== "string" || diagnostic.message === "") return "no message";
  if (typeof diagnostic.code !== "string" || diagnostic.code === "") return "no code";
  const position = diagnostic.position;
  if (position) {
    if (typeof position.file !== "string") return "position without a file";
    if (!Number.isInteger(position.line) || position.line < 1) return `line ${position.line}`;
    if (!Number.isInteger(position.col) || position.col < 1) return `column ${position.col}`;
  }
  return undefined;
}

Deno.test(`fuzz: ${ITERATIONS} mutated workflows validate or fail with diagnostics`, async () => {
  const seeds = await readSeeds();
  assert.ok(seeds.length > 0);
  const registry = await builtinRegistry();
  const random = prng(SEED);
  const failures: string[] = [];
  const outcomes = { valid: 0, invalid: 0 };
  for (let iteration = 0; iteration < ITERATIONS && failures.length < 5; iteration++) {
    const seed = seeds[iteration % seeds.length];
    let text = mutate(random, seed);
    for (let retry = 0; !importsOnlySafePlugins(text, seed.dir) && retry < 10; retry++) {
      text = mutate(random, seed);
    }
    if (!importsOnlySafePlugins(text, seed.dir)) continue;
    const set = randomSets(random, text, seed.file);
    const where = `iteration ${iteration} (seed ${SEED}) of ${seed.file}, --set ${
      JSON.stringify(set)
    }:\n${text}`;
    try {
      await parseWorkflow(text, {
        registry,
        file: "fuzz.yaml",
        dir: dirname(seed.file),
        cwd: dirname(seed.file),
        set,
      });
      outcomes.valid++;
    } catch (error) {
      if (!(error instanceof WorkflowError)) {
        failures.push(`${where}\nthrew ${(error as Error)?.stack ?? error}`);
        continue;
      }
      outcomes.invalid++;
      if (error.diagnostics.length === 0) failures.push(`${where}\nno diagnostics`);
      for (const diagnostic of error.diagnostics) {
        const problem = checkDiagnostic(diagnostic);
        if (problem) failures.push(`${where}\n${problem}: ${JSON.stringify(diagnostic)}`);
      }
    }
  }
  console.log(`${outcomes.valid} valid, ${outcomes.invalid} invalid`);
  assert.deepEqual(failures, []);
  // Both outcomes happen: the mutations are neither all fatal nor all harmless.
  assert.ok(outcomes.valid > 0 && outcomes.invalid > 0, JSON.stringify(outcomes));
});
