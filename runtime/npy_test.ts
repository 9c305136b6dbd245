import assert from "node:assert/strict";
import { decodeNpy, encodeNpy, readNpy, writeNpy } from "./npy.ts";
import { createTensor, type Tensor } from "./tensor.ts";

// Files written by `numpy.save` (numpy 2.4), base64-encoded.
const NUMPY_FILES: { name: string; tensor: Tensor; base64: string }[] = [
  {
    name: "float32 [2, 3]",
    tensor: createTensor("float32", [2, 3], new Float32Array([0, 0.5, 1, -2, 3.25, 1e-3])),
    base64:
      "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAPwAAgD8AAADAAABQQG8Sgzo=",
  },
  {
    name: "float64 scalar",
    tensor: createTensor("float64", [], new Float64Array([2.5])),
    base64:
      "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAEQA==",
  },
  {
    name: "bool [3]",
    tensor: createTensor("bool", [3], new Uint8Array([1, 0, 1])),
    base64:
      "k05VTVBZAQB2AHsnZGVzY3InOiAnfGIxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoBAAE=",
  },
  {
    name: "int64 [2]",
    tensor: createTensor("int64", [2], new BigInt64Array([-1n, 2n ** 40n])),
    base64:
      "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAr//////////wAAAAAAAQAA",
  },
  {
    name: "int32 [2]",
    tensor: createTensor("int32", [2], new Int32Array([1, -2])),
    base64:
      "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoBAAAA/v///w==",
  },
  {
    name: "float16 [1, 2]",
    tensor: createTensor("float16", [1, 2], new Uint16Array([0x3c00, 0xb800])),
    base64:
      "k05VTVBZAQB2AHsnZGVzY3InOiAnPGYyJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDIpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAPAC4",
  },
  {
    name: "uint8 [2]",
    tensor: createTensor("uint8", [2], new Uint8Array([0, 255])),
    base64:
      "k05VTVBZAQB2AHsnZGVzY3InOiAnfHUxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoA/w==",
  },
];

for (const { name, tensor, base64 } of NUMPY_FILES) {
  Deno.test(`encodeNpy writes the same bytes as numpy.save: ${name}`, () => {
    assert.equal(encodeNpy(tensor).toBase64(), base64);
  });

  Deno.test(`decodeNpy reads numpy.save output: ${name}`, () => {
    assert.deepEqual(decodeNpy(Uint8Array.fromBase64(base64)), tensor);
  });
}

Deno.test("encodeNpy aligns the data to 64 bytes for any rank", () => {
  for (let rank = 0; rank <= 8; rank++) {
    const shape = Array.from({ length: rank }, (_, i) => i + 1);
    const tensor = createTensor("float32", shape);
    const bytes = encodeNpy(tensor);
    const headerLength = bytes[8] | (bytes[9] << 8);
    assert.equal((10 + headerLength) % 64, 0);
    assert.equal(bytes[10 + headerLength - 1], 0x0a);
    assert.deepEqual(decodeNpy(bytes), tensor);
  }
});

Deno.test("decodeNpy rejects what it cannot read", () => {
  assert.throws(() => decodeNpy(new Uint8Array(16), "x.npy"), /Invalid npy file x\.npy: missing/);
  const bigEndian = encodeNpy(createTensor("float32", [1]));
  bigEndian.set(new TextEncoder().encode(">f4"), 21);
  assert.throws(() => decodeNpy(bigEndian, "x.npy"), /Unsupported npy dtype ">f4" in x\.npy/);
  const truncated = encodeNpy(createTensor("float32", [4])).subarray(0, 130);
  assert.throws(() => decodeNpy(truncated, "x.npy"), /needs 16 bytes of data, got 2/);
});

Deno.test("writeNpy and readNpy round trip through a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow_npy_" });
  try {
    const path = `${dir}/latents.npy`;
    const latents = createTensor("float32", [1, 2, 2], new Float32Array([1, 2, 3, 4]));
    await writeNpy(path, latents);
    assert.deepEqual(await readNpy(path), latents);
    await assert.rejects(writeNpy(path, latents), /already exists/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
