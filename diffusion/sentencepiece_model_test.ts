import assert from "node:assert/strict";
import { withTempDir } from "../tests/testing.ts";
import {
  parseSentencePieceModel,
  readSentencePieceModel,
  SentencePieceModelError,
} from "./sentencepiece_model.ts";

const SPIECE =
  new URL("../tests/fixtures/tiny-cogvideox-hf/2b/tokenizer/spiece.model", import.meta.url)
    .pathname;

// A few protobuf writers, to build small models by hand.
function varint(value: bigint): number[] {
  const out: number[] = [];
  let rest = BigInt.asUintN(64, value);
  do {
    const byte = Number(rest & 0x7fn);
    rest >>= 7n;
    out.push(rest === 0n ? byte : byte | 0x80);
  } while (rest !== 0n);
  return out;
}
const varintField = (field: number, value: number) => [
  ...varint(BigInt(field << 3)),
  ...varint(BigInt(value)),
];
const bytesField = (field: number, bytes: number[]) => [
  ...varint(BigInt((field << 3) | 2)),
  ...varint(BigInt(bytes.length)),
  ...bytes,
];
const floatField = (field: number, value: number) => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setFloat32(0, value, true);
  return [...varint(BigInt((field << 3) | 5)), ...bytes];
};
const text = (value: string) => [...new TextEncoder().encode(value)];
const piece = (value: string, score: number, type?: number) =>
  bytesField(1, [
    ...bytesField(1, text(value)),
    ...floatField(2, score),
    ...(type === undefined ? [] : varintField(3, type)),
  ]);

Deno.test("parseSentencePieceModel reads the pieces and specs of the fixture's spiece.model", async () => {
  const model = await readSentencePieceModel(SPIECE);
  assert.equal(model.pieces.length, 1000);
  assert.deepEqual(model.pieces.slice(0, 3), [
    { piece: "<pad>", score: 0, type: "control" },
    { piece: "</s>", score: 0, type: "control" },
    { piece: "<unk>", score: 0, type: "unknown" },
  ]);
  assert.equal(model.pieces[3].piece, "▁a");
  assert.equal(model.pieces[3].type, "normal");
  // Scores are float32 values, widened exactly.
  assert.equal(model.pieces[3].score, Math.fround(model.pieces[3].score));
  assert.ok(model.pieces[3].score < 0);
  assert.deepEqual(model.trainerSpec, {
    modelType: "unigram",
    vocabSize: 1000,
    unkId: 2,
    bosId: -1,
    eosId: 1,
    padId: 0,
    byteFallback: false,
  });
  const { precompiledCharsmap, ...flags } = model.normalizerSpec;
  assert.deepEqual(flags, {
    name: "nmt_nfkc",
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  });
  assert.equal(precompiledCharsmap.byteLength, 240007);
});

Deno.test("parseSentencePieceModel applies the proto defaults and decodes negative int32s", () => {
  const trainerSpec = bytesField(2, [
    ...varintField(40, 0),
    // bos_id -1 is written as a 10-byte varint.
    ...varint(BigInt(41 << 3)),
    ...varint(-1n),
  ]);
  const normalizerSpec = bytesField(3, [...bytesField(1, text("identity")), ...varintField(3, 0)]);
  const model = parseSentencePieceModel(
    new Uint8Array([
      ...piece("<unk>", 0, 2),
      ...piece("▁x", -1.5),
      ...trainerSpec,
      ...normalizerSpec,
    ]),
  );
  assert.deepEqual(model.pieces, [
    { piece: "<unk>", score: 0, type: "unknown" },
    { piece: "▁x", score: -1.5, type: "normal" },
  ]);
  assert.equal(model.trainerSpec.bosId, -1);
  assert.equal(model.trainerSpec.eosId, 2);
  assert.equal(model.trainerSpec.padId, -1);
  assert.equal(model.trainerSpec.modelType, "unigram");
  assert.equal(model.normalizerSpec.name, "identity");
  assert.equal(model.normalizerSpec.addDummyPrefix, false);
  assert.equal(model.normalizerSpec.removeExtraWhitespaces, true);
  assert.equal(model.normalizerSpec.precompiledCharsmap.byteLength, 0);
});

Deno.test("parseSentencePieceModel rejects models it cannot tokenize with", () => {
  const reject = (bytes: number[], message: string) =>
    assert.throws(() => parseSentencePieceModel(new Uint8Array(bytes)), {
      name: "SentencePieceModelError",
      message,
    });
  reject([], "it holds no pieces");
  reject(piece("▁x", -1), "unk_id 0 is not a piece of type UNKNOWN");
  reject([...piece("<unk>", 0, 2), ...piece("x", 0, 9)], "piece 1 has unknown type 9");
  reject([...piece("<unk>", 0, 2), ...bytesField(2, varintField(3, 7))], "unknown model_type 7");
  reject(
    [...piece("<unk>", 0, 2), ...bytesField(1, bytesField(1, [0xff]))],
    "not a SentencePiece model: Field 1 is not UTF-8 text at byte 18",
  );
});

Deno.test("readSentencePieceModel names the file when it is corrupt or missing", async () => {
  await withTempDir(async (dir) => {
    const bytes = await Deno.readFile(SPIECE);
    const path = `${dir}/spiece.model`;
    const rejects = async (message: RegExp) =>
      await assert.rejects(readSentencePieceModel(path), (error: Error) => {
        assert.ok(error instanceof SentencePieceModelError);
        assert.match(error.message, message);
        return true;
      });
    await Deno.writeFile(path, bytes.subarray(0, bytes.byteLength - 1000));
    await rejects(
      new RegExp(`^Invalid SentencePiece model "${path}": not a SentencePiece model: Field 3 `),
    );
    await Deno.writeTextFile(path, '{ "model": "not protobuf" }');
    await rejects(
      new RegExp(`^Invalid SentencePiece model "${path}": not a SentencePiece model: `),
    );
    await Deno.writeFile(path, new Uint8Array(0));
    await rejects(new RegExp(`^Invalid SentencePiece model "${path}": it holds no pieces$`));
    await Deno.remove(path);
    await rejects(new RegExp(`^Cannot read SentencePiece model "${path}": `));
  });
});
