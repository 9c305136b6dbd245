/**
 * Reads a SentencePiece model file (`spiece.model`): the `ModelProto` protobuf of
 * sentencepiece's `sentencepiece_model.proto`, with its pieces, trainer spec and normalizer spec.
 * Only the fields a tokenizer needs are decoded; the others are skipped.
 *
 * @module
 */

import {
  fieldsOf,
  WIRE_FIXED32,
  WIRE_LENGTH,
  WIRE_VARINT,
  WireError,
  type WireField,
} from "../runtime/protobuf_wire.ts";

/** What a piece is (`ModelProto.SentencePiece.Type`). */
export type PieceType = "normal" | "unknown" | "control" | "user_defined" | "unused" | "byte";

/** One piece of the vocabulary; its index in {@link SentencePieceModel.pieces} is its id. */
export interface SentencePiece {
  /** The piece's text, `▁` standing for a space. */
  piece: string;
  /** Log probability of the piece (unigram) or its merge rank (BPE). */
  score: number;
  /** The piece's type; `"normal"` when the file leaves it out. */
  type: PieceType;
}

/** The fields of `TrainerSpec` that tokenizing depends on. */
export interface TrainerSpec {
  /** `model_type`: the segmentation algorithm. */
  modelType: "unigram" | "bpe" | "word" | "char";
  /** `vocab_size` as trained. */
  vocabSize: number;
  /** Id of `<unk>` (`unk_id`). */
  unkId: number;
  /** Id of `<s>` (`bos_id`), -1 when there is none. */
  bosId: number;
  /** Id of `</s>` (`eos_id`), -1 when there is none. */
  eosId: number;
  /** Id of `<pad>` (`pad_id`), -1 when there is none. */
  padId: number;
  /** `byte_fallback`: unknown characters become byte pieces instead of `<unk>`. */
  byteFallback: boolean;
}

/** `NormalizerSpec`: how text is normalized before segmentation. */
export interface NormalizerSpec {
  /** Name of the rule set (`nmt_nfkc`, `identity`, ...). */
  name: string;
  /** The compiled rules: a darts-clone double-array trie and its replacement strings. */
  precompiledCharsmap: Uint8Array;
  /** Whether a space is put before the text. */
  addDummyPrefix: boolean;
  /** Whether leading, trailing and repeated spaces are removed. */
  removeExtraWhitespaces: boolean;
  /** Whether spaces are written as `▁`. */
  escapeWhitespaces: boolean;
}

/** A decoded `spiece.model`. */
export interface SentencePieceModel {
  /** The vocabulary, by id. */
  pieces: SentencePiece[];
  /** Training settings that tokenizing depends on. */
  trainerSpec: TrainerSpec;
  /** Normalization settings. */
  normalizerSpec: NormalizerSpec;
}

/** A file that is not a valid SentencePiece model; the message says why. */
export class SentencePieceModelError extends Error {
  /** Makes an error with a message. */
  constructor(message: string) {
    super(message);
    this.name = "SentencePieceModelError";
  }
}

const PIECE_TYPES: Record<number, PieceType> = {
  1: "normal",
  2: "unknown",
  3: "control",
  4: "user_defined",
  5: "unused",
  6: "byte",
};

const MODEL_TYPES: Record<number, TrainerSpec["modelType"]> = {
  1: "unigram",
  2: "bpe",
  3: "word",
  4: "char",
};

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes the bytes of a `spiece.model`. Throws a {@link SentencePieceModelError} when they are
 * not a protobuf `ModelProto` or hold no pieces.
 */
export function parseSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  try {
    return decodeModel(bytes);
  } catch (error) {
    if (error instanceof WireError) {
      throw new SentencePieceModelError(
        `not a SentencePiece model: ${error.message} at byte ${error.offset}`,
      );
    }
    throw error;
  }
}

/**
 * Reads and decodes a `spiece.model` file. Errors are {@link SentencePieceModelError}s that
 * name the file: `Invalid SentencePiece model "<path>": <why>`.
 */
export async function readSentencePieceModel(path: string): Promise<SentencePieceModel> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new SentencePieceModelError(
      `Cannot read SentencePiece model "${path}": ${(error as Error).message}`,
    );
  }
  try {
    return parseSentencePieceModel(bytes);
  } catch (error) {
    if (!(error instanceof SentencePieceModelError)) throw error;
    throw new SentencePieceModelError(`Invalid SentencePiece model "${path}": ${error.message}`);
  }
}

function decodeModel(bytes: Uint8Array): SentencePieceModel {
  const pieces: SentencePiece[] = [];
  let trainerSpec = decodeTrainerSpec(new Uint8Array(0), 0);
  let normalizerSpec = decodeNormalizerSpec(new Uint8Array(0), 0);
  for (const field of fieldsAt(bytes, 0)) {
    if (field.field === 1) {
      pieces.push(decodePiece(valueOf(bytes, field), field.valueStart, pieces.length));
    } else if (field.field === 2) {
      trainerSpec = decodeTrainerSpec(valueOf(bytes, field), field.valueStart);
    } else if (field.field === 3) {
      normalizerSpec = decodeNormalizerSpec(valueOf(bytes, field), field.valueStart);
    }
  }
  if (pieces.length === 0) throw new SentencePieceModelError("it holds no pieces");
  const { unkId } = trainerSpec;
  if (unkId < 0 || unkId >= pieces.length || pieces[unkId].type !== "unknown") {
    throw new SentencePieceModelError(`unk_id ${unkId} is not a piece of type UNKNOWN`);
  }
  return { pieces, trainerSpec, normalizerSpec };
}

function decodePiece(bytes: Uint8Array, base: number, id: number): SentencePiece {
  let piece: string | undefined;
  let score = 0;
  let type: PieceType = "normal";
  for (const field of fieldsAt(bytes, base)) {
    if (field.field === 1) piece = stringOf(bytes, field, base);
    else if (field.field === 2) score = floatOf(bytes, field, base);
    else if (field.field === 3) {
      const value = Number(varintOf(field, base));
      const known = PIECE_TYPES[value];
      if (!known) throw new SentencePieceModelError(`piece ${id} has unknown type ${value}`);
      type = known;
    }
  }
  if (!piece) throw new SentencePieceModelError(`piece ${id} is empty`);
  return { piece, score, type };
}

function decodeTrainerSpec(bytes: Uint8Array, base: number): TrainerSpec {
  const spec: TrainerSpec = {
    modelType: "unigram",
    vocabSize: 8000,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    byteFallback: false,
  };
  for (const field of fieldsAt(bytes, base)) {
    switch (field.field) {
      case 3: {
        const value = Number(varintOf(field, base));
        const known = MODEL_TYPES[value];
        if (!known) throw new SentencePieceModelError(`unknown model_type ${value}`);
        spec.modelType = known;
        break;
      }
      case 4:
        spec.vocabSize = int32Of(field, base);
        break;
      case 35:
        spec.byteFallback = varintOf(field, base) !== 0n;
        break;
      case 40:
        spec.unkId = int32Of(field, base);
        break;
      case 41:
        spec.bosId = int32Of(field, base);
        break;
      case 42:
        spec.eosId = int32Of(field, base);
        break;
      case 43:
        spec.padId = int32Of(field, base);
        break;
    }
  }
  return spec;
}

function decodeNormalizerSpec(bytes: Uint8Array, base: number): NormalizerSpec {
  const spec: NormalizerSpec = {
    name: "",
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  for (const field of fieldsAt(bytes, base)) {
    switch (field.field) {
      case 1:
        spec.name = stringOf(bytes, field, base);
        break;
      case 2:
        expectWireType(field, WIRE_LENGTH, base);
        spec.precompiledCharsmap = valueOf(bytes, field);
        break;
      case 3:
        spec.addDummyPrefix = varintOf(field, base) !== 0n;
        break;
      case 4:
        spec.removeExtraWhitespaces = varintOf(field, base) !== 0n;
        break;
      case 5:
        spec.escapeWhitespaces = varintOf(field, base) !== 0n;
        break;
    }
  }
  return spec;
}

// The fields of a nested message, with error offsets counted from the start of the file.
function* fieldsAt(bytes: Uint8Array, base: number): Generator<WireField> {
  try {
    yield* fieldsOf(bytes);
  } catch (error) {
    if (error instanceof WireError) throw new WireError(error.message, base + error.offset);
    throw error;
  }
}

function expectWireType(field: WireField, wireType: number, base: number): void {
  if (field.wireType !== wireType) {
    throw new WireError(
      `Field ${field.field} has wire type ${field.wireType}, expected ${wireType}`,
      base + field.start,
    );
  }
}

function valueOf(bytes: Uint8Array, field: WireField): Uint8Array {
  return bytes.subarray(field.valueStart, field.end);
}

function stringOf(bytes: Uint8Array, field: WireField, base: number): string {
  expectWireType(field, WIRE_LENGTH, base);
  try {
    return utf8.decode(valueOf(bytes, field));
  } catch {
    throw new WireError(`Field ${field.field} is not UTF-8 text`, base + field.start);
  }
}

function floatOf(bytes: Uint8Array, field: WireField, base: number): number {
  expectWireType(field, WIRE_FIXED32, base);
  return new DataView(bytes.buffer, bytes.byteOffset + field.valueStart, 4).getFloat32(0, true);
}

function varintOf(field: WireField, base: number): bigint {
  expectWireType(field, WIRE_VARINT, base);
  return field.varint;
}

// int32 fields carry negative values (-1: no such token) as 64-bit two's complement.
function int32Of(field: WireField, base: number): number {
  return Number(BigInt.asIntN(32, varintOf(field, base)));
}
