/**
 * load_tokenizer: a Hugging Face tokenizer folder, with `tokenizer.json` or, as the CogVideoX
 * repositories have it, a SentencePiece `spiece.model` (both with `tokenizer_config.json`).
 *
 * @module
 */

import { basename } from "node:path";
import { defineNode, inputPath, UserError } from "../engine/mod.ts";
import { findTokenizerFiles } from "../diffusion/tokenize.ts";
import { type TokenizerHandle, tokenizerPort } from "./ports.ts";

/** The load_tokenizer node type. */
export const loadTokenizer = defineNode({
  type: "load_tokenizer",
  version: 1,
  description:
    "Points at a tokenizer folder (tokenizer.json, or spiece.model, with tokenizer_config.json)",
  category: "models",
  inputs: {},
  settings: {
    path: inputPath().describe(
      "The tokenizer folder: tokenizer.json, or spiece.model, with tokenizer_config.json (relative to the workflow's folder)",
    ),
  },
  outputs: { tokenizer: tokenizerPort().describe("The tokenizer folder, loaded by tokenize") },
  async infer(_ctx, _inputs, { path }) {
    await describeTokenizerFolder(path);
  },
  async run(ctx, _inputs, { path }) {
    const tokenizer = await describeTokenizerFolder(path);
    for (const file of tokenizer.files ?? []) await ctx.dependsOnFile(file);
    return { tokenizer };
  },
});

/**
 * The handle of a tokenizer folder of either layout: `tokenizer.json`, else `spiece.model`.
 * Its `files` are those a load reads, and its fingerprint covers each of them. Throws a
 * {@link UserError} naming the folder when it has neither file.
 */
export async function describeTokenizerFolder(dir: string): Promise<TokenizerHandle> {
  let files: string[];
  try {
    files = (await findTokenizerFiles(dir)).files;
  } catch (error) {
    throw new UserError((error as Error).message, { cause: error });
  }
  const stamps: string[] = [];
  for (const file of files) {
    const stat = await Deno.stat(file);
    stamps.push(`${basename(file)}:${stat.size}:${stat.mtime?.getTime() ?? 0}`);
  }
  return { kind: "tokenizer", dir, fingerprint: stamps.join(","), files };
}
