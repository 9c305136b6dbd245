import assert from "node:assert/strict";
import { checkSameSize, createImage } from "./image.ts";

Deno.test("createImage makes a black image or wraps matching data", () => {
  const black = createImage(2, 1);
  assert.deepEqual(black, { width: 2, height: 1, channels: 3, data: new Uint8Array(6) });
  const rgba = createImage(1, 1, 4, new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual([...rgba.data], [1, 2, 3, 4]);
});

Deno.test("createImage rejects bad sizes and data", () => {
  assert.throws(() => createImage(0, 4), /Invalid image size 0x4: expected positive integers/);
  assert.throws(
    () => createImage(2, 2, 3, new Uint8Array(11)),
    /Image data has 11 bytes but 2x2x3 needs 12/,
  );
});

Deno.test("checkSameSize returns the first frame when all match", () => {
  const frames = [createImage(3, 2), createImage(3, 2)];
  assert.equal(checkSameSize(frames), frames[0]);
  assert.throws(
    () => checkSameSize([createImage(3, 2), createImage(3, 2, 4)]),
    /frame 0 is 3x2 RGB, frame 1 is 3x2 RGBA/,
  );
});
