/**
 * The normalization rules of a SentencePiece model (`normalizer_spec.precompiled_charsmap`, e.g.
 * `nmt_nfkc`), applied as Hugging Face tokenizers' `Precompiled` normalizer does, which is what
 * transformers' T5 tokenizer runs.
 *
 * The charsmap is a little-endian `uint32` byte length, a darts-clone double-array trie of that
 * many bytes whose keys are UTF-8 strings, and a blob of NUL-terminated replacement strings the
 * trie's values point into. tokenizers replaces each grapheme cluster (under 6 UTF-8 bytes) by
 * the replacement of the shortest rule matching a prefix of it, else each of its characters by
 * its own replacement; characters no rule matches stay as they are. sentencepiece itself instead
 * takes the longest match from each position ({@link PrecompiledCharsmap.longestMatch}).
 *
 * @module
 */

import { type NormalizerSpec, SentencePieceModelError } from "./sentencepiece_model.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** A rule that matched: how many UTF-16 code units of the text it covers, and its replacement. */
export interface CharsmapMatch {
  /** Code units of the text the rule's key covers. */
  length: number;
  /** The text that replaces them. */
  replacement: string;
}

/** The compiled normalization rules of a SentencePiece model. */
export class PrecompiledCharsmap {
  #units: Uint32Array;
  #normalized: Uint8Array;
  #replacements = new Map<number, string>();

  /**
   * Reads a `precompiled_charsmap`; an empty one normalizes nothing. Throws a
   * {@link SentencePieceModelError} when it is malformed.
   */
  constructor(charsmap: Uint8Array) {
    if (charsmap.byteLength === 0) {
      this.#units = new Uint32Array(0);
      this.#normalized = new Uint8Array(0);
      return;
    }
    const view = new DataView(charsmap.buffer, charsmap.byteOffset, charsmap.byteLength);
    const trieSize = charsmap.byteLength >= 4 ? view.getUint32(0, true) : -1;
    if (trieSize < 4 || trieSize % 4 !== 0 || 4 + trieSize > charsmap.byteLength) {
      throw new SentencePieceModelError(
        `precompiled_charsmap of ${charsmap.byteLength} bytes has an invalid trie size ${trieSize}`,
      );
    }
    this.#units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.#units.length; i++) this.#units[i] = view.getUint32(4 + 4 * i, true);
    this.#normalized = charsmap.subarray(4 + trieSize);
  }

  /** Whether there are no rules (the `identity` normalizer). */
  get empty(): boolean {
    return this.#units.length === 0;
  }

  /**
   * Normalizes text as tokenizers' `Precompiled` normalizer does: grapheme cluster by grapheme
   * cluster, with the shortest rule matching the start of each.
   */
  normalize(text: string): string {
    if (this.empty) return text;
    const parts: string[] = [];
    let copiedTo = 0;
    const replace = (start: number, end: number, replacement: string) => {
      if (start > copiedTo) parts.push(text.slice(copiedTo, start));
      parts.push(replacement);
      copiedTo = end;
    };
    const visit = (start: number, end: number) => {
      if (utf8Length(text, start, end) < 6) {
        const whole = this.#shortestMatch(text, start, end);
        if (whole !== undefined) return replace(start, end, whole);
      }
      for (let at = start; at < end;) {
        const next = at + codePointLength(text, at);
        const replacement = this.#shortestMatch(text, at, next);
        if (replacement !== undefined) replace(at, next, replacement);
        at = next;
      }
    };
    if (isAscii(text)) {
      // In ASCII text the only cluster of two characters is CR LF.
      const ascii = this.#asciiReplacements();
      for (let at = 0; at < text.length; at++) {
        const unit = text.charCodeAt(at);
        if (unit === 13 && text.charCodeAt(at + 1) === 10) {
          visit(at, at + 2);
          at++;
        } else if (ascii[unit] !== undefined) {
          replace(at, at + 1, ascii[unit]);
        }
      }
    } else {
      for (const { index, segment } of graphemes.segment(text)) {
        visit(index, index + segment.length);
      }
    }
    if (copiedTo === 0) return text;
    if (copiedTo < text.length) parts.push(text.slice(copiedTo));
    return parts.join("");
  }

  /**
   * The longest rule whose key starts `text` at `start` (sentencepiece's `NormalizePrefix`), or
   * undefined when none does.
   */
  longestMatch(text: string, start: number): CharsmapMatch | undefined {
    let found: CharsmapMatch | undefined;
    this.#search(text, start, text.length, (length, value) => {
      found = { length, replacement: this.#replacement(value) };
      return false;
    });
    return found;
  }

  #ascii: (string | undefined)[] | undefined;

  // The replacement of each ASCII character alone, for the common all-ASCII text.
  #asciiReplacements(): (string | undefined)[] {
    if (!this.#ascii) {
      this.#ascii = [];
      for (let unit = 0; unit < 128; unit++) {
        this.#ascii.push(this.#shortestMatch(String.fromCharCode(unit), 0, 1));
      }
    }
    return this.#ascii;
  }

  #shortestMatch(text: string, start: number, end: number): string | undefined {
    let found: string | undefined;
    this.#search(text, start, end, (_length, value) => {
      found = this.#replacement(value);
      return true;
    });
    return found;
  }

  /**
   * Walks the trie along the UTF-8 bytes of `text[start, end)` (darts-clone's
   * `commonPrefixSearch`), calling `onKey` with the code units covered and the value of each key
   * met, shortest first, until it returns true.
   */
  #search(
    text: string,
    start: number,
    end: number,
    onKey: (length: number, value: number) => boolean,
  ): void {
    const units = this.#units;
    let node = offset(units[0]);
    const bytes = [0, 0, 0, 0];
    for (let at = start; at < end;) {
      const codePoint = text.codePointAt(at)!;
      const size = codePoint > 0xffff ? 2 : 1;
      const count = encodeUtf8(codePoint, bytes);
      for (let b = 0; b < count; b++) {
        const byte = bytes[b];
        if (byte === 0) return;
        node ^= byte;
        const unit = units[node];
        if (unit === undefined || label(unit) !== byte) return;
        node ^= offset(unit);
        if (hasLeaf(unit)) {
          const leaf = units[node];
          if (leaf === undefined) return;
          // A key ends inside a character only in a corrupt map; such a match covers it whole.
          if (onKey(at + size - start, leaf & 0x7fffffff)) return;
        }
      }
      at += size;
    }
  }

  #replacement(index: number): string {
    let cached = this.#replacements.get(index);
    if (cached === undefined) {
      let end = index;
      while (end < this.#normalized.byteLength && this.#normalized[end] !== 0) end++;
      try {
        cached = utf8.decode(this.#normalized.subarray(index, end));
      } catch {
        throw new SentencePieceModelError(
          `precompiled_charsmap replacement at byte ${index} is not UTF-8`,
        );
      }
      this.#replacements.set(index, cached);
    }
    return cached;
  }
}

/**
 * Normalizes text as sentencepiece itself does (`normalizer.cc`, what `sp.encode` runs): the
 * longest rule at each position, then, as the spec says, leading, trailing and repeated spaces
 * removed, a space put before the text, and spaces written as `▁`. transformers' T5 tokenizer
 * gets the same whitespace from its pre-tokenizers instead (see t5_tokenizer.ts).
 */
export function normalizeLikeSentencePiece(
  text: string,
  charsmap: PrecompiledCharsmap,
  spec: Pick<NormalizerSpec, "addDummyPrefix" | "removeExtraWhitespaces" | "escapeWhitespaces">,
): string {
  const space = spec.escapeWhitespaces ? "▁" : " ";
  // A character no rule matches stands for itself.
  const prefixAt = (at: number): CharsmapMatch => {
    const length = codePointLength(text, at);
    return charsmap.longestMatch(text, at) ?? { length, replacement: text.slice(at, at + length) };
  };
  let at = 0;
  while (spec.removeExtraWhitespaces && at < text.length) {
    const match = prefixAt(at);
    if (match.replacement !== " ") break;
    at += match.length;
  }
  if (at >= text.length) return "";
  let out = spec.addDummyPrefix ? space : "";
  let previousIsSpace = spec.removeExtraWhitespaces;
  while (at < text.length) {
    const match = prefixAt(at);
    let piece = match.replacement;
    if (previousIsSpace) piece = piece.replace(/^ +/, "");
    if (piece.length > 0) {
      out += piece.replaceAll(" ", space);
      previousIsSpace = spec.removeExtraWhitespaces && piece.endsWith(" ");
    }
    at += match.length;
  }
  if (spec.removeExtraWhitespaces) {
    while (out.endsWith(space)) out = out.slice(0, out.length - space.length);
  }
  return out;
}

// darts-clone's unit layout: offset in bits 10-30 (shifted by 8 more when bit 9 is set), a leaf
// flag in bit 8, the label in bits 0-7 (bit 31 set for leaves, so that no byte matches them).
function offset(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}

function label(unit: number): number {
  return unit & ((1 << 31) | 0xff);
}

function hasLeaf(unit: number): boolean {
  return ((unit >>> 8) & 1) === 1;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

function codePointLength(text: string, at: number): number {
  return text.codePointAt(at)! > 0xffff ? 2 : 1;
}

function utf8Length(text: string, start: number, end: number): number {
  let bytes = 0;
  for (let at = start; at < end;) {
    const codePoint = text.codePointAt(at)!;
    bytes += codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
    at += codePoint > 0xffff ? 2 : 1;
  }
  return bytes;
}

// Lone surrogates are encoded as their code unit (as WTF-8 does); no rule has such a key.
function encodeUtf8(codePoint: number, out: number[]): number {
  if (codePoint < 0x80) {
    out[0] = codePoint;
    return 1;
  }
  if (codePoint < 0x800) {
    out[0] = 0xc0 | (codePoint >> 6);
    out[1] = 0x80 | (codePoint & 0x3f);
    return 2;
  }
  if (codePoint < 0x10000) {
    out[0] = 0xe0 | (codePoint >> 12);
    out[1] = 0x80 | ((codePoint >> 6) & 0x3f);
    out[2] = 0x80 | (codePoint & 0x3f);
    return 3;
  }
  out[0] = 0xf0 | (codePoint >> 18);
  out[1] = 0x80 | ((codePoint >> 12) & 0x3f);
  out[2] = 0x80 | ((codePoint >> 6) & 0x3f);
  out[3] = 0x80 | (codePoint & 0x3f);
  return 4;
}
