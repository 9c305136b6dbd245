/**
 * load_tokenizer: a Hugging Face tokenizer folder (`tokenizer.json`, `tokenizer_config.json`).
 *
 * @module
 */

import { join } from "node:path";
import { defineNode, inputPath, UserError } from "../engine/mod.ts";
import { tokenizerPort } from "./ports.ts";

/** The load_tokenizer node type. */
export const loadTokenizer = defineNode({
  type: "load_tokenizer",
  version: 1,
  description: "Points at a tokenizer folder (tokenizer.json and tokenizer_config.json)",
  category: "models",
  inputs: {},
  settings: { path: inputPath() },
  outputs: { tokenizer: tokenizerPort() },
  async infer(_ctx, _inputs, { path }) {
    await statTokenizer(path);
  },
  async run(ctx, _inputs, { path }) {
    const stat = await statTokenizer(path);
    await ctx.dependsOnFile(join(path, "tokenizer.json"));
    return {
      tokenizer: {
        kind: "tokenizer" as const,
        dir: path,
        fingerprint: `${stat.size}:${stat.mtime?.getTime() ?? 0}`,
      },
    };
  },
});

async function statTokenizer(dir: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(join(dir, "tokenizer.json"));
  } catch {
    throw new UserError(`No tokenizer in "${dir}": missing tokenizer.json`);
  }
}
