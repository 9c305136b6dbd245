/**
 * The T5 tokenizer of transformers 5 (`T5Tokenizer`, backed by tokenizers) built from a
 * SentencePiece folder (`spiece.model`, `tokenizer_config.json`, `special_tokens_map.json`,
 * `added_tokens.json`), with no `tokenizer.json`. transformers converts `spiece.model` into:
 * added tokens (`</s>`, `<pad>`, `<unk>`, the `<extra_id_N>` sentinels) matched in the raw text
 * first, normalizer `Precompiled` (the model's charsmap), pre-tokenizers `WhitespaceSplit` then
 * `Metaspace("▁", prepend_scheme="always", split=True)`, a `Unigram` model over the pieces plus
 * the sentinels, and the post-processor `$A </s>`. This module does the same.
 *
 * Added tokens are matched by content only: their `lstrip` / `rstrip` flags cannot change the ids
 * (whitespace is split off anyway), and `normalized` / `single_word` are not applied.
 *
 * @module
 */

import { join } from "node:path";
import { readSentencePieceModel, type SentencePieceModel } from "./sentencepiece_model.ts";
import { PrecompiledCharsmap } from "./sentencepiece_normalizer.ts";
import { Unigram, type UnigramEntry } from "./unigram.ts";

/** A token matched whole in the text before normalization. */
export interface AddedToken {
  /** Its text (`<extra_id_0>`). */
  content: string;
  /** Its id. */
  id: number;
}

/** Settings of {@link T5Tokenizer} that come from the folder's JSON files. */
export interface T5TokenizerOptions {
  /** Tokens matched in the raw text (`added_tokens_decoder`); default: special tokens, sentinels. */
  addedTokens?: readonly AddedToken[];
  /** The end-of-sequence token the post-processor appends (`eos_token`, default `</s>`). */
  eosToken?: string;
  /** Number of `<extra_id_N>` sentinels after the pieces (`extra_ids`, default 100). */
  extraIds?: number;
}

/** Token ids of one text, split where the post-processor's special tokens meet the content. */
export interface T5Encoding {
  /** Special tokens before the content: none for T5. */
  prefix: number[];
  /** The content ids, which truncation shortens. */
  content: number[];
  /** Special tokens after the content: `</s>`. */
  suffix: number[];
}

const WHITESPACE = /[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
const METASPACE = "▁";

/** A T5 tokenizer over a decoded SentencePiece model. */
export class T5Tokenizer {
  readonly #charsmap: PrecompiledCharsmap;
  readonly #unigram: Unigram;
  readonly #added: readonly AddedToken[];
  readonly #addedByFirstChar = new Map<string, AddedToken[]>();
  readonly #addedById = new Map<number, string>();
  readonly #eosId: number;

  /**
   * Builds the tokenizer; throws an Error when the options name a token that is neither a piece
   * nor an added token, or the model is not a unigram model.
   */
  constructor(model: SentencePieceModel, options: T5TokenizerOptions = {}) {
    if (model.trainerSpec.modelType !== "unigram") {
      throw new Error(
        `Unsupported SentencePiece model type "${model.trainerSpec.modelType}": expected "unigram"`,
      );
    }
    this.#charsmap = new PrecompiledCharsmap(model.normalizerSpec.precompiledCharsmap);
    const extraIds = options.extraIds ?? 100;
    const vocab: UnigramEntry[] = model.pieces.map(({ piece, score }) => ({ piece, score }));
    // transformers' T5Converter: the sentinels follow the pieces in reverse, with score 0.
    for (let n = extraIds - 1; n >= 0; n--) vocab.push({ piece: `<extra_id_${n}>`, score: 0 });
    this.#unigram = new Unigram(vocab, model.trainerSpec.unkId);
    this.#added = options.addedTokens ?? defaultAddedTokens(model, vocab);
    for (const token of this.#added) {
      if (token.content.length === 0) continue;
      const first = token.content[0];
      const group = this.#addedByFirstChar.get(first) ?? [];
      group.push(token);
      // Longest first: at one position the longest added token wins.
      group.sort((a, b) => b.content.length - a.content.length);
      this.#addedByFirstChar.set(first, group);
      this.#addedById.set(token.id, token.content);
    }
    const eosToken = options.eosToken ?? "</s>";
    const eosId = this.tokenToId(eosToken);
    if (eosId === undefined) throw new Error(`eos_token "${eosToken}" is not in the vocabulary`);
    this.#eosId = eosId;
  }

  /** Number of ids: the pieces and the sentinels. */
  get vocabSize(): number {
    return this.#unigram.size;
  }

  /** The added tokens, matched in the text before anything else. */
  get addedTokens(): readonly AddedToken[] {
    return this.#added;
  }

  /** The id of a token (an added token or a piece), or undefined. */
  tokenToId(token: string): number | undefined {
    for (const added of this.#addedByFirstChar.get(token[0]) ?? []) {
      if (added.content === token) return added.id;
    }
    return this.#unigram.tokenToId(token);
  }

  /** The token of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.#addedById.get(id) ?? this.#unigram.idToToken(id);
  }

  /** Token ids of `text`, `</s>` apart from the content (`tokenizer(text)` splits the same way). */
  encode(text: string): T5Encoding {
    const content: number[] = [];
    let plainFrom = 0;
    for (let at = 0; at < text.length; at++) {
      const group = this.#addedByFirstChar.get(text[at]);
      const match = group?.find((token) => text.startsWith(token.content, at));
      if (!match) continue;
      this.#encodePlain(text.slice(plainFrom, at), content);
      content.push(match.id);
      at += match.content.length - 1;
      plainFrom = at + 1;
    }
    this.#encodePlain(text.slice(plainFrom), content);
    return { prefix: [], content, suffix: [this.#eosId] };
  }

  /** `tokenizer(text)`: the ids with `</s>`, and their tokens. */
  tokenize(text: string): { ids: number[]; tokens: string[] } {
    const { prefix, content, suffix } = this.encode(text);
    const ids = [...prefix, ...content, ...suffix];
    return { ids, tokens: ids.map((id) => this.idToToken(id) ?? "") };
  }

  /** Text of ids as the `Metaspace` decoder writes it: `▁` is a space, the first one dropped. */
  decode(ids: readonly number[]): string {
    const text = ids.map((id) => this.idToToken(id) ?? "").join("").replaceAll(METASPACE, " ");
    return text.startsWith(" ") ? text.slice(1) : text;
  }

  #encodePlain(text: string, out: number[]): void {
    if (text.length === 0) return;
    for (const word of this.#charsmap.normalize(text).split(WHITESPACE)) {
      if (word.length === 0) continue;
      // Metaspace: a `▁` before the word, then a piece per `▁` (merged with what follows it).
      const marked = word.startsWith(METASPACE) ? word : METASPACE + word;
      let start = 0;
      for (
        let next = marked.indexOf(METASPACE, 1);
        next >= 0;
        next = marked.indexOf(METASPACE, next + 1)
      ) {
        this.#unigram.encode(marked.slice(start, next), out);
        start = next;
      }
      this.#unigram.encode(marked.slice(start), out);
    }
  }
}

/** The tokenizer files of a folder, parsed; `undefined` for a file that is absent. */
export interface T5TokenizerFiles {
  /** `spiece.model`, decoded. */
  model: SentencePieceModel;
  /** `tokenizer_config.json`. */
  tokenizerConfig?: Record<string, unknown>;
  /** `special_tokens_map.json`. */
  specialTokensMap?: Record<string, unknown>;
  /** `added_tokens.json`: content to id. */
  addedTokens?: Record<string, unknown>;
}

/**
 * The options transformers takes from a folder's files: the added tokens of
 * `tokenizer_config.json`'s `added_tokens_decoder`, else those of `added_tokens.json` with the
 * special tokens; `eos_token` and `extra_ids` from the config or `special_tokens_map.json`.
 * `source` names the folder in errors.
 */
export function t5TokenizerOptions(files: T5TokenizerFiles, source: string): T5TokenizerOptions {
  const config = files.tokenizerConfig ?? {};
  const configFile = `${source}/tokenizer_config.json`;
  const map = files.specialTokensMap ?? {};
  const extraIds = config.extra_ids ?? 100;
  if (!Number.isInteger(extraIds) || (extraIds as number) < 0) {
    throw new Error(
      `Invalid tokenizer file "${configFile}": extra_ids "${extraIds}" is not an integer >= 0`,
    );
  }
  const eosToken = tokenText(config.eos_token) ?? tokenText(map.eos_token) ?? "</s>";
  const decoder = config.added_tokens_decoder;
  if (decoder !== undefined) {
    if (typeof decoder !== "object" || decoder === null || Array.isArray(decoder)) {
      throw new Error(
        `Invalid tokenizer file "${configFile}": added_tokens_decoder is not an object`,
      );
    }
    const addedTokens = Object.entries(decoder).map(([id, token]) => {
      const content = tokenText(token);
      if (!/^\d+$/.test(id) || !content) {
        throw new Error(
          `Invalid tokenizer file "${configFile}": added_tokens_decoder "${id}" has no content`,
        );
      }
      return { content, id: Number(id) };
    });
    return { addedTokens, eosToken, extraIds: extraIds as number };
  }
  if (files.addedTokens === undefined) return { eosToken, extraIds: extraIds as number };
  const addedTokens = Object.entries(files.addedTokens).map(([content, id]) => {
    if (!Number.isInteger(id) || content.length === 0) {
      throw new Error(
        `Invalid tokenizer file "${source}/added_tokens.json": "${content}" has no integer id`,
      );
    }
    return { content, id: id as number };
  });
  const pieceIds = new Map(files.model.pieces.map(({ piece }, id) => [piece, id]));
  for (const key of ["eos_token", "unk_token", "pad_token"]) {
    const content = tokenText(config[key]) ?? tokenText(map[key]);
    const id = content === undefined ? undefined : pieceIds.get(content);
    if (
      content !== undefined && id !== undefined && !addedTokens.some((t) => t.content === content)
    ) {
      addedTokens.push({ content, id });
    }
  }
  return { addedTokens, eosToken, extraIds: extraIds as number };
}

/**
 * Loads a SentencePiece tokenizer folder: `spiece.model`, and `tokenizer_config.json`,
 * `special_tokens_map.json` and `added_tokens.json` where present. Errors name the file.
 */
export async function loadT5Tokenizer(dir: string): Promise<T5Tokenizer> {
  const source = dir.replace(/\/+$/, "");
  const model = await readSentencePieceModel(join(source, "spiece.model"));
  const files: T5TokenizerFiles = {
    model,
    tokenizerConfig: await readJsonObject(join(source, "tokenizer_config.json")),
    specialTokensMap: await readJsonObject(join(source, "special_tokens_map.json")),
    addedTokens: await readJsonObject(join(source, "added_tokens.json")),
  };
  const options = t5TokenizerOptions(files, source);
  try {
    return new T5Tokenizer(model, options);
  } catch (error) {
    throw new Error(`Invalid tokenizer "${source}": ${(error as Error).message}`);
  }
}

// Without added_tokens_decoder: `</s>`, `<pad>`, `<unk>` and the sentinels, as transformers'
// T5Tokenizer registers them.
function defaultAddedTokens(model: SentencePieceModel, vocab: UnigramEntry[]): AddedToken[] {
  const added: AddedToken[] = [];
  model.pieces.forEach(({ piece, type }, id) => {
    if (type === "control" || type === "unknown") added.push({ content: piece, id });
  });
  for (let id = model.pieces.length; id < vocab.length; id++) {
    added.push({ content: vocab[id].piece, id });
  }
  return added;
}

function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  // Added-token form: `{ "content": "</s>", "lstrip": false, ... }`.
  if (typeof value === "object" && value !== null) {
    const content = (value as { content?: unknown }).content;
    if (typeof content === "string") return content;
  }
  return undefined;
}

async function readJsonObject(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot read tokenizer file "${path}": ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`Invalid tokenizer file "${path}": not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`Invalid tokenizer file "${path}": expected a JSON object`);
  }
  return value as Record<string, unknown>;
}
