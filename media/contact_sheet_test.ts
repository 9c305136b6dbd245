import assert from "node:assert/strict";
import { join } from "node:path";
import { autoColumns, contactSheet, writeContactSheet } from "./contact_sheet.ts";
import { createImage, type RgbImage } from "./image.ts";
import { decodePng } from "./png.ts";

function solidFrames(count: number, width: number, height: number): RgbImage[] {
  return Array.from({ length: count }, (_, index) => {
    const frame = createImage(width, height, 3);
    frame.data.fill(10 * (index + 1));
    return frame;
  });
}

function pixel(image: RgbImage, x: number, y: number): number[] {
  const index = (y * image.width + x) * image.channels;
  return [...image.data.subarray(index, index + image.channels)];
}

Deno.test("autoColumns picks the grid closest to square", () => {
  assert.equal(autoColumns(49, 720, 480), 6); // CogVideoX: 6 x 9 frames of 3:2 is square
  assert.equal(autoColumns(16, 10, 10), 4);
  assert.equal(autoColumns(1, 720, 480), 1);
  assert.equal(autoColumns(3, 4, 100), 3); // tall frames go side by side
});

Deno.test("contactSheet lays frames out in rows with a gap", () => {
  const sheet = contactSheet(solidFrames(5, 6, 4), {
    columns: 3,
    gap: 2,
    background: [1, 2, 3],
  });
  // 3 columns x 2 rows of 6x4 frames, 2 px around and between them.
  assert.equal(sheet.width, 3 * 6 + 4 * 2);
  assert.equal(sheet.height, 2 * 4 + 3 * 2);
  assert.equal(sheet.channels, 3);
  assert.deepEqual(pixel(sheet, 0, 0), [1, 2, 3]);
  assert.deepEqual(pixel(sheet, 2, 2), [10, 10, 10]); // frame 0, top left
  assert.deepEqual(pixel(sheet, 2 + 8 * 2, 2), [30, 30, 30]); // frame 2
  assert.deepEqual(pixel(sheet, 2 + 8, 2 + 6 + 3), [50, 50, 50]); // frame 4, second row
  assert.deepEqual(pixel(sheet, 2 + 8 * 2, 2 + 6), [1, 2, 3]); // empty last cell
});

Deno.test("contactSheet downscales frames by averaging blocks", () => {
  const frame = createImage(4, 2, 4);
  // Left 2x2 block: red 0 and 255 alternating (averages to 128); right block: red 40.
  for (let x = 0; x < 4; x++) {
    for (let y = 0; y < 2; y++) frame.data[(y * 4 + x) * 4] = x < 2 ? (x + y) % 2 ? 255 : 0 : 40;
  }
  const sheet = contactSheet([frame, frame], { downscale: 2, gap: 0, columns: 2 });
  assert.equal(sheet.width, 4);
  assert.equal(sheet.height, 1);
  assert.deepEqual(pixel(sheet, 0, 0), [128, 0, 0]);
  assert.deepEqual(pixel(sheet, 1, 0), [40, 0, 0]);
});

Deno.test("contactSheet rejects frames of different sizes", () => {
  assert.throws(
    () => contactSheet([createImage(4, 4), createImage(4, 5)]),
    /All frames must have one size: frame 0 is 4x4 RGB, frame 1 is 4x5 RGB/,
  );
  assert.throws(() => contactSheet([]), /Expected at least one of frames, got none/);
});

Deno.test("writeContactSheet writes a PNG of the expected size", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow_sheet_" });
  try {
    const path = join(dir, "sheet.png");
    await writeContactSheet(path, solidFrames(7, 12, 8));
    const sheet = decodePng(await Deno.readFile(path));
    // Auto layout: 2 columns x 4 rows of 12x8 frames (24x32) is closest to square.
    assert.equal(sheet.width, 2 * 12 + 3 * 4);
    assert.equal(sheet.height, 4 * 8 + 5 * 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
