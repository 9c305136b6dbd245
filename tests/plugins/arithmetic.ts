/**
 * Small node types for engine tests: numbers, arithmetic, a generic hook, a slow node, a failing
 * node and a file writer. They use only the public plugin API, as third-party plugins would.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, outputPath, pathPort, UserError } from "../../mod.ts";

/** Counts calls per node type, so tests can see what ran. */
export const calls: Record<string, number> = {};

function count(type: string) {
  calls[type] = (calls[type] ?? 0) + 1;
}

/** A constant number. */
export const numberNode = defineNode({
  type: "number",
  version: 1,
  description: "Outputs a constant number",
  inputs: {},
  settings: { value: z.number() },
  outputs: { value: z.number() },
  run: (_ctx, _inputs, { value }) => {
    count("number");
    return { value };
  },
});

/** Sum of two numbers, plus an optional third. */
export const addNode = defineNode({
  type: "add",
  version: 1,
  description: "Adds two numbers",
  inputs: { a: z.number(), b: z.number(), c: z.number().optional() },
  settings: {},
  outputs: { sum: z.number() },
  run: (_ctx, { a, b, c }) => {
    count("add");
    return { sum: a + b + (c ?? 0) };
  },
});

/** Splits a number into its integer and fractional parts (two outputs). */
export const splitNode = defineNode({
  type: "split",
  version: 1,
  description: "Splits a number into integer and fraction",
  inputs: { value: z.number() },
  settings: {},
  outputs: { integer: z.number().int(), fraction: z.number() },
  run: (_ctx, { value }) => ({ integer: Math.trunc(value), fraction: value - Math.trunc(value) }),
});

/** A text from a number. */
export const formatNode = defineNode({
  type: "format",
  version: 1,
  description: "Formats a number as text",
  inputs: { value: z.number() },
  settings: { template: z.string().default("{}") },
  outputs: { text: z.string() },
  run: (_ctx, { value }, { template }) => ({ text: template.replace("{}", String(value)) }),
});

/** A generic hook: every reader of the wrapped number gets it plus `offset`. */
export const offsetHook = defineNode({
  type: "offset_hook",
  version: 1,
  description: "Adds an offset to the number of each node it wraps",
  inputs: { value: z.number() },
  settings: { offset: z.number().default(1000) },
  outputs: { value: z.number() },
  hook: { kind: "offset", input: "value", output: "value" },
  run: (_ctx, { value }, { offset }) => {
    count("offset_hook");
    return { value: value + offset };
  },
});

/** Another hook of another kind, to test chains. */
export const doubleHook = defineNode({
  type: "double_hook",
  version: 1,
  description: "Doubles the number of each node it wraps",
  inputs: { value: z.number() },
  settings: {},
  outputs: { value: z.number() },
  hook: { kind: "double", input: "value", output: "value" },
  run: (_ctx, { value }) => ({ value: value * 2 }),
});

/** Steps with progress, checking for cancellation between steps. */
export const slowNode = defineNode({
  type: "slow",
  version: 1,
  description: "Counts up slowly, reporting progress",
  inputs: { value: z.number() },
  settings: { steps: z.number().int().min(1).default(5), delay_ms: z.number().min(0).default(5) },
  outputs: { value: z.number() },
  run: async (ctx, { value }, { steps, delay_ms }) => {
    count("slow");
    for (let step = 1; step <= steps; step++) {
      ctx.signal.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, delay_ms));
      ctx.progress(step, steps);
    }
    return { value: value + steps };
  },
});

/** Always fails with a user error. */
export const failNode = defineNode({
  type: "fail",
  version: 1,
  description: "Fails with a message",
  inputs: { value: z.number().optional() },
  settings: { message: z.string().default("Planned failure") },
  outputs: { value: z.number() },
  run: (_ctx, _inputs, { message }) => {
    throw new UserError(message);
  },
});

/** Writes a number to a text file (an output node). */
export const writeNumberNode = defineNode({
  type: "write_number",
  version: 1,
  description: "Writes a number to a text file",
  inputs: { value: z.number() },
  settings: { path: outputPath() },
  outputs: { path: pathPort() },
  output: true,
  run: async (ctx, { value }, { path }) => {
    count("write_number");
    await Deno.writeTextFile(path, `${value}\n`);
    await ctx.dependsOnFile(path);
    return { path };
  },
});

/** Reads a number from a text file; its result depends on the file. */
export const readNumberNode = defineNode({
  type: "read_number",
  version: 1,
  description: "Reads a number from a text file",
  inputs: {},
  settings: { path: z.string() },
  outputs: { value: z.number() },
  run: async (ctx, _inputs, { path }) => {
    count("read_number");
    const value = Number(await Deno.readTextFile(path));
    await ctx.dependsOnFile(path);
    return { value };
  },
});
