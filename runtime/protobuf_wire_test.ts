import assert from "node:assert/strict";
import {
  bytesSource,
  decodeVarint,
  fieldsOf,
  FileSource,
  readFields,
  readValue,
  WIRE_FIXED32,
  WIRE_LENGTH,
  WIRE_VARINT,
  WireError,
} from "./protobuf_wire.ts";

// field 1 varint 150; field 2 "hi"; field 3 fixed32; field 4 a message holding field 1 = 1.
const MESSAGE = new Uint8Array([
  0x08,
  0x96,
  0x01,
  0x12,
  0x02,
  0x68,
  0x69,
  0x1d,
  1,
  2,
  3,
  4,
  0x22,
  0x02,
  0x08,
  0x01,
]);

Deno.test("decodeVarint reads multi-byte and 64-bit values", () => {
  assert.deepEqual(decodeVarint(new Uint8Array([0x96, 0x01]), 0), [150n, 2]);
  const max = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.deepEqual(decodeVarint(max, 0), [2n ** 64n - 1n, 10]);
  assert.throws(() => decodeVarint(new Uint8Array([0x80, 0x80]), 0), WireError);
});

Deno.test("fieldsOf walks a message in memory", () => {
  const fields = [...fieldsOf(MESSAGE)];
  assert.deepEqual(fields.map((f) => [f.field, f.wireType]), [
    [1, WIRE_VARINT],
    [2, WIRE_LENGTH],
    [3, WIRE_FIXED32],
    [4, WIRE_LENGTH],
  ]);
  assert.equal(fields[0].varint, 150n);
  assert.deepEqual(
    MESSAGE.subarray(fields[1].valueStart, fields[1].end),
    new TextEncoder().encode("hi"),
  );
  const inner = [...fieldsOf(MESSAGE.subarray(fields[3].valueStart, fields[3].end))];
  assert.equal(inner[0].varint, 1n);
});

Deno.test("readFields over a file in small chunks finds the same fields", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, MESSAGE);
    const file = await FileSource.open(path, 3);
    try {
      const fromFile = [];
      for await (const field of readFields(file)) fromFile.push(field);
      assert.deepEqual(fromFile, [...fieldsOf(MESSAGE)]);
      assert.deepEqual(await readValue(file, fromFile[1]), new TextEncoder().encode("hi"));
    } finally {
      file.close();
    }
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("malformed messages raise a WireError with the offset", async () => {
  const walk = async (bytes: Uint8Array) => {
    for await (const _ of readFields(bytesSource(bytes))) { /* walk */ }
  };
  await assert.rejects(walk(MESSAGE.subarray(0, 6)), /Field 2 declares 2 bytes but only 1 remain/);
  await assert.rejects(walk(new Uint8Array([0x00])), /Field number 0 is invalid/);
  await assert.rejects(walk(new Uint8Array([0x0b])), /Field 1 has invalid wire type 3/);
  await assert.rejects(walk(new Uint8Array([0x1d, 1, 2])), /Field 3 runs past the end/);
  const error = await walk(new Uint8Array([0x08, 0x01, 0x00])).catch((e) => e);
  assert.ok(error instanceof WireError);
  assert.equal(error.offset, 2);
});
