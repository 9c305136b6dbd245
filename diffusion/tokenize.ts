/**
 * Prompt tokenization as the CogVideoX pipeline does it with its T5 tokenizer:
 * `tokenizer(prompt, padding="max_length", max_length=N, truncation=True, add_special_tokens=True)`.
 * The content tokens are truncated so that they and the special tokens of the post-processor
 * (`</s>` for T5) fit in `N`, then `<pad>` fills the row up to `N`.
 *
 * A tokenizer folder has one of two layouts: a `tokenizer.json` (run by tokenizers.js), or a
 * SentencePiece `spiece.model` without it, as the CogVideoX repositories ship their T5 tokenizer
 * (run by `T5Tokenizer` of t5_tokenizer.ts). Both take `tokenizer_config.json` and
 * `special_tokens_map.json`.
 *
 * @module
 */

import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { createTensor, type Tensor } from "../runtime/tensor.ts";
import { loadT5Tokenizer } from "./t5_tokenizer.ts";

/** Token ids of one text, split where the post-processor's special tokens meet the content. */
export interface EncodedPrompt {
  /** Special tokens before the content. */
  prefix: number[];
  /** The content ids, which truncation shortens. */
  content: number[];
  /** Special tokens after the content (`</s>` for T5). */
  suffix: number[];
}

/** What {@link tokenizePrompts} needs of a tokenizer ({@link TokenizerJsonEncoder}, `T5Tokenizer`). */
export interface PromptEncoder {
  /** Ids of a text, with the special tokens the post-processor adds apart from the content. */
  encode(text: string): EncodedPrompt;
  /** Text of ids, as the tokenizer's decoder writes it. */
  decode(ids: readonly number[]): string;
  /** Id of a token, or undefined when the vocabulary has none. */
  tokenToId(token: string): number | undefined;
}

/** A `tokenizer.json` tokenizer (tokenizers.js) as a {@link PromptEncoder}. */
export class TokenizerJsonEncoder implements PromptEncoder {
  /** The tokenizers.js tokenizer. */
  readonly tokenizer: Tokenizer;

  /** Wraps a tokenizers.js tokenizer. */
  constructor(tokenizer: Tokenizer) {
    this.tokenizer = tokenizer;
  }

  encode(text: string): EncodedPrompt {
    const withSpecial = this.tokenizer.encode(text).ids;
    const content = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    const [prefix, suffix] = splitSpecialTokens(withSpecial, content);
    return { prefix, content, suffix };
  }

  decode(ids: readonly number[]): string {
    return this.tokenizer.decode([...ids]);
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }
}

/** The two layouts of a tokenizer folder, named after the file that holds the vocabulary. */
export type TokenizerLayout = "tokenizer.json" | "spiece.model";

/** A tokenizer folder: its layout and the files it is read from. */
export interface TokenizerFolder {
  /** `tokenizer.json` when the folder has one, else `spiece.model`. */
  layout: TokenizerLayout;
  /** The files a load reads that exist, vocabulary first (joined to the folder's path). */
  files: string[];
}

/** A tokenizer with the padding and truncation settings of its `tokenizer_config.json`. */
export interface PromptTokenizer {
  /** The tokenizer proper. */
  encoder: PromptEncoder;
  /** Id of the pad token (`pad_token`), written after (or before) the tokens up to `max_length`. */
  padId: number;
  /** Id of the end-of-sequence token (`eos_token`), or null when the files name none. */
  eosId: number | null;
  /** Side the pad tokens go (`padding_side`, default `"right"`). */
  paddingSide: "left" | "right";
  /** Side tokens are dropped from when a prompt is too long (`truncation_side`, default `"right"`). */
  truncationSide: "left" | "right";
  /** The folder the tokenizer was loaded from, for messages. */
  source: string;
}

/** The parsed JSON files of a Hugging Face tokenizer folder. */
export interface TokenizerFiles {
  /** `tokenizer.json`. */
  tokenizerJson: unknown;
  /** `tokenizer_config.json`. */
  tokenizerConfig: unknown;
  /** `special_tokens_map.json`, which older folders use for the special tokens. */
  specialTokensMap?: unknown;
}

/** Token ids of a batch of prompts, padded and truncated to one length. */
export interface TokenizedPrompts {
  /** int64 `[prompts, maxLength]`: the `input_ids` the text encoder takes. */
  inputIds: Tensor<"int64">;
  /** For each prompt, how many content tokens truncation dropped (0 when it fitted). */
  droppedTokens: number[];
  /** For each prompt, the dropped tokens decoded to text ("" when none). */
  droppedText: string[];
}

/** Options of {@link tokenizePrompts}. */
export interface TokenizeOptions {
  /** Length of every row, special tokens included (the pipeline's `max_sequence_length`). */
  maxLength: number;
}

/**
 * Builds a {@link PromptTokenizer} from the parsed files of a `tokenizer.json` folder; `source`
 * (their folder) names them in errors.
 * The pad and end-of-sequence tokens come from `tokenizer_config.json`, else from
 * `special_tokens_map.json`.
 */
export function createPromptTokenizer(
  files: TokenizerFiles,
  source = "tokenizer",
): PromptTokenizer {
  const config = expectObject(files.tokenizerConfig, `${source}/tokenizer_config.json`);
  const tokenizerJson = expectObject(files.tokenizerJson, `${source}/tokenizer.json`);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, config);
  } catch (error) {
    throw new Error(`Invalid tokenizer "${source}": ${(error as Error).message}`);
  }
  return withSettings(new TokenizerJsonEncoder(tokenizer), files, source);
}

/**
 * Finds which layout a tokenizer folder has and the files loading it reads. Throws an Error
 * naming the folder when it has neither `tokenizer.json` nor `spiece.model`.
 */
export async function findTokenizerFiles(directory: string): Promise<TokenizerFolder> {
  const source = directory.replace(/\/+$/, "");
  let layout: TokenizerLayout;
  if (await isFile(join(source, "tokenizer.json"))) layout = "tokenizer.json";
  else if (await isFile(join(source, "spiece.model"))) layout = "spiece.model";
  else throw new Error(`No tokenizer in "${source}": missing tokenizer.json or spiece.model`);
  const names = layout === "tokenizer.json"
    ? ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    : ["spiece.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"];
  const files: string[] = [];
  for (const name of names) {
    if (await isFile(join(source, name))) files.push(join(source, name));
  }
  return { layout, files };
}

/**
 * Loads a tokenizer folder: `tokenizer.json` and `tokenizer_config.json`, and
 * `special_tokens_map.json` when present; or, without `tokenizer.json`, the T5 tokenizer of
 * `spiece.model` (see {@link loadT5Tokenizer}). Errors name the file at fault.
 */
export async function loadPromptTokenizer(directory: string): Promise<PromptTokenizer> {
  const source = directory.replace(/\/+$/, "");
  const path = (name: string) => `${source}/${name}`;
  const { layout } = await findTokenizerFiles(source);
  if (layout === "spiece.model") {
    const t5 = await loadT5Tokenizer(source);
    const tokenizerConfig = (await readJson(path("tokenizer_config.json"), false)) ?? {};
    const specialTokensMap = await readJson(path("special_tokens_map.json"), false);
    // transformers' T5Tokenizer defaults, below what the files say.
    const defaults = { pad_token: "<pad>", eos_token: "</s>" };
    return withSettings(t5, {
      tokenizerConfig,
      specialTokensMap: {
        ...defaults,
        ...expectObject(specialTokensMap ?? {}, path("special_tokens_map.json")),
      },
    }, source);
  }
  // One after another, so that a folder missing several files always names the same one first.
  const tokenizerJson = await readJson(path("tokenizer.json"), true);
  const tokenizerConfig = await readJson(path("tokenizer_config.json"), true);
  const specialTokensMap = await readJson(path("special_tokens_map.json"), false);
  return createPromptTokenizer({ tokenizerJson, tokenizerConfig, specialTokensMap }, source);
}

/**
 * Tokenizes prompts as `tokenizer(prompts, padding="max_length", max_length=maxLength,
 * truncation=True, add_special_tokens=True)`: the content tokens are cut to what fits beside the
 * special tokens, and every row is padded to `maxLength`.
 */
export function tokenizePrompts(
  promptTokenizer: PromptTokenizer,
  prompts: readonly string[],
  options: TokenizeOptions,
): TokenizedPrompts {
  const { maxLength } = options;
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new RangeError(`Invalid max length "${maxLength}": expected an integer >= 1`);
  }
  const { encoder, padId, paddingSide, truncationSide } = promptTokenizer;
  const inputIds = createTensor("int64", [prompts.length, maxLength]);
  const droppedTokens: number[] = [];
  const droppedText: string[] = [];
  prompts.forEach((prompt, index) => {
    const { prefix, content, suffix } = encoder.encode(prompt);
    const specialCount = prefix.length + suffix.length;
    const room = maxLength - specialCount;
    if (room < 0) {
      throw new RangeError(
        `Invalid max length "${maxLength}": the tokenizer adds ${specialCount} special tokens`,
      );
    }
    const dropCount = Math.max(0, content.length - room);
    const kept = truncationSide === "right"
      ? content.slice(0, content.length - dropCount)
      : content.slice(dropCount);
    const dropped = truncationSide === "right"
      ? content.slice(content.length - dropCount)
      : content.slice(0, dropCount);
    const ids = [...prefix, ...kept, ...suffix];
    const padding = new Array<number>(maxLength - ids.length).fill(padId);
    const row = paddingSide === "right" ? [...ids, ...padding] : [...padding, ...ids];
    row.forEach((id, position) => inputIds.data[index * maxLength + position] = BigInt(id));
    droppedTokens.push(dropCount);
    droppedText.push(dropped.length > 0 ? encoder.decode(dropped) : "");
  });
  return { inputIds, droppedTokens, droppedText };
}

// The post-processor wraps the content ids in special tokens; a single-sequence template puts
// the same ones around any content, so truncating the content and re-wrapping it is exactly
// what tokenizers' truncation (done before post-processing) gives.
function splitSpecialTokens(withSpecial: number[], content: number[]): [number[], number[]] {
  const added = withSpecial.length - content.length;
  for (let start = 0; start <= added; start++) {
    if (content.every((id, i) => withSpecial[start + i] === id)) {
      return [withSpecial.slice(0, start), withSpecial.slice(start + content.length)];
    }
  }
  throw new Error("The tokenizer's post-processor changed the content tokens");
}

// The pad and end-of-sequence ids and the padding and truncation sides of the config files.
function withSettings(
  encoder: PromptEncoder,
  files: Pick<TokenizerFiles, "tokenizerConfig" | "specialTokensMap">,
  source: string,
): PromptTokenizer {
  const config = expectObject(files.tokenizerConfig, `${source}/tokenizer_config.json`);
  const specialTokensMap = files.specialTokensMap === undefined
    ? {}
    : expectObject(files.specialTokensMap, `${source}/special_tokens_map.json`);
  const tokenId = (key: string): number | null => {
    const token = specialToken(config[key]) ?? specialToken(specialTokensMap[key]);
    if (token === undefined) return null;
    const id = encoder.tokenToId(token);
    if (id === undefined) {
      throw new Error(`Invalid tokenizer "${source}": ${key} "${token}" is not in the vocabulary`);
    }
    return id;
  };
  const padId = tokenId("pad_token");
  if (padId === null) {
    throw new Error(
      `Invalid tokenizer "${source}": no pad_token, which padding to max_length needs`,
    );
  }
  return {
    encoder,
    padId,
    eosId: tokenId("eos_token"),
    paddingSide: side(config.padding_side, "padding_side", source),
    truncationSide: side(config.truncation_side, "truncation_side", source),
    source,
  };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new Error(`Cannot read tokenizer file "${path}": ${(error as Error).message}`);
  }
}

function specialToken(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  // Added-token form: `{ "content": "</s>", "lstrip": false, ... }`.
  if (
    typeof value === "object" && value !== null &&
    typeof (value as { content?: unknown }).content === "string"
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}

function side(value: unknown, key: string, source: string): "left" | "right" {
  if (value === undefined || value === null) return "right";
  if (value === "left" || value === "right") return value;
  throw new Error(`Invalid tokenizer "${source}": ${key} "${value}" is neither "left" nor "right"`);
}

function expectObject(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`Invalid tokenizer file "${path}": expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

async function readJson(path: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      if (!required) return undefined;
      throw new Error(`Cannot load tokenizer: "${path}" not found`);
    }
    throw new Error(`Cannot read tokenizer file "${path}": ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`Invalid tokenizer file "${path}": not JSON: ${(error as Error).message}`);
  }
}
