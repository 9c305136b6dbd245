/**
 * The unigram language model segmentation of SentencePiece, as Hugging Face tokenizers' `Unigram`
 * model runs it (what transformers' T5 tokenizer uses): the Viterbi path that maximises the sum
 * of piece scores, a character no piece covers scoring `min score - 10` as `<unk>`, and runs of
 * unknown characters fused into one `<unk>`.
 *
 * @module
 */

/** A vocabulary entry; its index is its id. */
export interface UnigramEntry {
  /** The piece's text. */
  piece: string;
  /** Its log probability. */
  score: number;
}

/** What tokenizers adds to the lowest score for a character no piece covers. */
const UNK_PENALTY = 10;

/** A unigram model over a vocabulary. */
export class Unigram {
  readonly #vocab: readonly UnigramEntry[];
  readonly #unkId: number;
  readonly #unkScore: number;
  readonly #ids = new Map<string, number>();
  // The pieces as a trie over UTF-16 code units: node 0 is the root, and the child of a node
  // along a code unit is at key `node * 0x10000 + unit`.
  readonly #children = new Map<number, number>();
  readonly #nodeIds: number[] = [-1];
  #bestScore = new Float64Array(64);
  #startsAt = new Int32Array(64);
  #bestId = new Int32Array(64);

  /** Builds the model; every entry (control pieces too) can match, as in tokenizers. */
  constructor(vocab: readonly UnigramEntry[], unkId: number) {
    if (unkId < 0 || unkId >= vocab.length) {
      throw new RangeError(`Invalid unk id "${unkId}": the vocabulary has ${vocab.length} entries`);
    }
    this.#vocab = vocab;
    this.#unkId = unkId;
    let minScore = Infinity;
    vocab.forEach(({ piece, score }, id) => {
      // A repeated piece keeps its last id, as tokenizers' map does.
      this.#ids.set(piece, id);
      this.#insert(piece, id);
      minScore = Math.min(minScore, score);
    });
    this.#unkScore = minScore - UNK_PENALTY;
  }

  /** Number of entries. */
  get size(): number {
    return this.#vocab.length;
  }

  /** The id of a piece, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#ids.get(token);
  }

  /** The piece of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.#vocab[id]?.piece;
  }

  /**
   * Segments one pre-tokenized word (`▁red`) and appends the ids of its pieces to `out`.
   * Iterative, in time linear in the word's length times the longest piece.
   */
  encode(word: string, out: number[]): void {
    const size = word.length;
    if (size === 0) return;
    const { bestScore, startsAt, bestId } = this.#lattice(size);
    startsAt.fill(-1, 0, size + 1);
    bestScore[0] = 0;
    const vocab = this.#vocab;
    const children = this.#children;
    const nodeIds = this.#nodeIds;
    for (let start = 0; start < size;) {
      const scoreHere = bestScore[start];
      const charLength = word.codePointAt(start)! > 0xffff ? 2 : 1;
      let hasSingleCharPiece = false;
      let node = 0;
      for (let at = start; at < size; at++) {
        const child = children.get(node * 0x10000 + word.charCodeAt(at));
        if (child === undefined) break;
        node = child;
        const id = nodeIds[node];
        if (id < 0) continue;
        const end = at + 1;
        const score = vocab[id].score + scoreHere;
        if (startsAt[end] < 0 || score > bestScore[end]) {
          bestScore[end] = score;
          startsAt[end] = start;
          bestId[end] = id;
        }
        if (end - start === charLength) hasSingleCharPiece = true;
      }
      if (!hasSingleCharPiece) {
        const end = start + charLength;
        const score = this.#unkScore + scoreHere;
        if (startsAt[end] < 0 || score > bestScore[end]) {
          bestScore[end] = score;
          startsAt[end] = start;
          bestId[end] = this.#unkId;
        }
      }
      start += charLength;
    }
    // Back from the end, writing ids into `out` reversed; consecutive unknowns become one
    // piece, looked up as a whole.
    const first = out.length;
    let unkEnd = -1;
    for (let end = size; end > 0;) {
      const start = startsAt[end];
      if (bestId[end] === this.#unkId) {
        if (unkEnd < 0) unkEnd = end;
      } else {
        if (unkEnd >= 0) out.push(this.#fusedUnknown(word, end, unkEnd));
        unkEnd = -1;
        out.push(bestId[end]);
      }
      end = start;
    }
    if (unkEnd >= 0) out.push(this.#fusedUnknown(word, 0, unkEnd));
    for (let i = first, j = out.length - 1; i < j; i++, j--) {
      const id = out[i];
      out[i] = out[j];
      out[j] = id;
    }
  }

  #fusedUnknown(word: string, start: number, end: number): number {
    return end - start === 1 ? this.#unkId : this.#ids.get(word.slice(start, end)) ?? this.#unkId;
  }

  // The best path ending at each position: buffers reused from word to word.
  #lattice(size: number) {
    if (this.#bestScore.length < size + 1) {
      const length = Math.max(size + 1, 2 * this.#bestScore.length);
      this.#bestScore = new Float64Array(length);
      this.#startsAt = new Int32Array(length);
      this.#bestId = new Int32Array(length);
    }
    return { bestScore: this.#bestScore, startsAt: this.#startsAt, bestId: this.#bestId };
  }

  #insert(piece: string, id: number): void {
    let node = 0;
    for (let i = 0; i < piece.length; i++) {
      const key = node * 0x10000 + piece.charCodeAt(i);
      let child = this.#children.get(key);
      if (child === undefined) {
        child = this.#nodeIds.length;
        this.#nodeIds.push(-1);
        this.#children.set(key, child);
      }
      node = child;
    }
    this.#nodeIds[node] = id;
  }
}
