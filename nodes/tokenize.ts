/**
 * tokenize: prompts (and negative prompts) to token ids as the CogVideoX pipeline tokenizes them:
 * padded to `max_length`, truncated with `</s>` kept, a warning saying how many tokens were dropped.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, type InferContext, tensorPort, UserError } from "../engine/mod.ts";
import {
  loadPromptTokenizer,
  type PromptTokenizer,
  tokenizePrompts,
} from "../diffusion/tokenize.ts";
import { tokenizerPort } from "./ports.ts";

const promptSetting = z.union([z.string(), z.array(z.string()).min(1)]);

/** The tokenize node type. */
export const tokenize = defineNode({
  type: "tokenize",
  version: 1,
  description:
    "Tokenizes prompts and negative prompts like the CogVideoX pipeline (padding, truncation, EOS)",
  category: "text",
  inputs: {
    tokenizer: tokenizerPort().describe("The tokenizer, from load_tokenizer or load_pipeline"),
  },
  settings: {
    prompt: promptSetting.describe(
      "The prompt, or a list of prompts, one video each (at most 64, of 20,000 characters each)",
    ),
    negative_prompt: promptSetting.default("").describe(
      "What to guide away from: one for every prompt, or one per prompt (default empty)",
    ),
    max_length: z.number().int().min(2).default(226).describe(
      "Tokens per prompt: padded to it, or truncated keeping </s> (default 226, as CogVideoX)",
    ),
  },
  outputs: {
    input_ids: tensorPort({ dtype: "int64", rank: 2 }).describe(
      "Token ids [prompts, max_length]",
    ),
    negative_input_ids: tensorPort({ dtype: "int64", rank: 2 }).describe(
      "Negative prompt token ids [prompts, max_length], one row per prompt",
    ),
  },
  infer(ctx, _inputs, { prompt, negative_prompt, max_length }) {
    const prompts = asList(prompt);
    const negatives = asList(negative_prompt);
    checkPromptBounds(ctx, "prompt", prompts);
    checkPromptBounds(ctx, "negative_prompt", negatives);
    if (negatives.length !== 1 && negatives.length !== prompts.length) {
      ctx.error(
        `Got ${negatives.length} negative prompts for ${prompts.length} prompts: give one, or one per prompt`,
        {
          setting: "negative_prompt",
        },
      );
    }
    const type = { kind: "tensor", dtype: "int64" as const, shape: [prompts.length, max_length] };
    return { input_ids: type, negative_input_ids: type };
  },
  async run(ctx, { tokenizer }, { prompt, negative_prompt, max_length }) {
    const loaded = await cachedTokenizer(tokenizer.dir, tokenizer.fingerprint);
    const prompts = asList(prompt);
    const given = asList(negative_prompt);
    // One negative prompt serves every prompt, as diffusers repeats it for the batch.
    const negatives = given.length === 1 ? prompts.map(() => given[0]) : given;
    const positive = tokenizePrompts(loaded, prompts, { maxLength: max_length });
    const negative = tokenizePrompts(loaded, negatives, { maxLength: max_length });
    warnTruncated(ctx.log.warn, "prompt", prompts, positive.droppedTokens, positive.droppedText);
    // A repeated negative prompt is reported once, not once per prompt.
    warnTruncated(
      ctx.log.warn,
      "negative prompt",
      given,
      negative.droppedTokens.slice(0, given.length),
      negative.droppedText,
    );
    return { input_ids: positive.inputIds, negative_input_ids: negative.inputIds };
  },
});

/** The most prompts in one batch: each is a video, sampled and decoded at the same time. */
export const MAX_PROMPTS = 64;
/**
 * The longest prompt, in characters. The text encoder reads `max_length` tokens (226, about a
 * thousand characters); longer text only makes the tokenizer slow.
 */
export const MAX_PROMPT_CHARACTERS = 20_000;

function checkPromptBounds(ctx: InferContext, setting: string, prompts: string[]) {
  if (prompts.length > MAX_PROMPTS) {
    ctx.error(
      `Got ${prompts.length} ${setting}s: a batch takes at most ${MAX_PROMPTS} (each is a video, sampled and decoded at the same time): run them in several batches`,
      { setting },
    );
  }
  prompts.forEach((text, index) => {
    if (text.length <= MAX_PROMPT_CHARACTERS) return;
    const which = prompts.length > 1 ? `${setting} ${index + 1}` : setting;
    ctx.error(
      `${which} has ${text.length} characters, more than the ${MAX_PROMPT_CHARACTERS} cogflow takes: the text encoder reads only its first tokens (max_length), so shorten it`,
      { setting },
    );
  });
}

function asList(prompt: string | string[]): string[] {
  return typeof prompt === "string" ? [prompt] : prompt;
}

function warnTruncated(
  warn: (message: string) => void,
  what: string,
  prompts: string[],
  dropped: number[],
  droppedText: string[],
) {
  dropped.forEach((count, index) => {
    if (count === 0) return;
    const which = prompts.length > 1
      ? `${what[0].toUpperCase()}${what.slice(1)} ${index + 1}`
      : `The ${what}`;
    warn(
      `${which} was truncated: ${count} token${count === 1 ? "" : "s"} dropped ("${
        shortened(droppedText[index])
      }")`,
    );
  });
}

/** Longest dropped text a warning quotes in full. */
const QUOTED_LENGTH = 200;

// A prompt of megabytes would otherwise be quoted whole.
function shortened(text: string): string {
  return text.length > QUOTED_LENGTH ? `${text.slice(0, QUOTED_LENGTH)}...` : text;
}

const loadedTokenizers = new Map<string, Promise<PromptTokenizer>>();

function cachedTokenizer(dir: string, fingerprint: string): Promise<PromptTokenizer> {
  const key = `${dir}|${fingerprint}`;
  let loading = loadedTokenizers.get(key);
  if (!loading) {
    loading = loadPromptTokenizer(dir).catch((error) => {
      loadedTokenizers.delete(key);
      throw new UserError(`Cannot load tokenizer "${dir}": ${(error as Error).message}`);
    });
    loadedTokenizers.set(key, loading);
  }
  return loading;
}
