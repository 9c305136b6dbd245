import assert from "node:assert/strict";
import { crc32 as zlibCrc32 } from "node:zlib";
import { createImage, type RgbImage } from "./image.ts";
import { crc32, decodePng, encodePng } from "./png.ts";
import { ffmpegPath } from "./video_writer.ts";

/** A deterministic image mixing gradients, flat areas and noise, so every filter type gets used. */
function testImage(width: number, height: number, channels: 3 | 4): RgbImage {
  const image = createImage(width, height, channels);
  let seed = 12345;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const noise = seed >>> 24;
      const index = (y * width + x) * channels;
      image.data[index] = (x * 7) & 0xff;
      image.data[index + 1] = y < height / 2 ? 200 : noise;
      image.data[index + 2] = (x * y) & 0xff;
      if (channels === 4) image.data[index + 3] = x % 3 === 0 ? 255 : noise;
    }
  }
  return image;
}

async function runFfmpeg(args: string[], input: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(await ffmpegPath(), {
    args: ["-hide_banner", "-loglevel", "error", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  assert.ok(success, new TextDecoder().decode(stderr));
  return stdout;
}

Deno.test("crc32 gives the standard check value and matches zlib", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  const bytes = testImage(31, 5, 3).data;
  assert.equal(crc32(bytes), zlibCrc32(bytes));
  assert.equal(crc32(bytes.subarray(100), crc32(bytes.subarray(0, 100))), crc32(bytes));
});

Deno.test("encodePng and decodePng round trip RGB and RGBA pixels", () => {
  for (const channels of [3, 4] as const) {
    const image = testImage(37, 23, channels);
    const png = encodePng(image);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    assert.deepEqual(decodePng(png), image);
  }
});

Deno.test("encodePng compresses flat images to under a kilobyte", () => {
  const flat = createImage(256, 256, 3);
  flat.data.fill(128);
  assert.ok(encodePng(flat).length < 1000);
  assert.deepEqual(decodePng(encodePng(flat, { compressionLevel: 0 })), flat);
});

Deno.test("decodePng rejects corrupt data", () => {
  const png = encodePng(testImage(4, 4, 3));
  assert.throws(() => decodePng(png.subarray(1)), /missing the PNG signature/);
  const corrupt = png.slice();
  corrupt[20] ^= 1; // inside IHDR
  assert.throws(() => decodePng(corrupt, "a.png"), /Invalid PNG a\.png: bad CRC in chunk "IHDR"/);
});

Deno.test("ffmpeg decodes our PNG to the same pixels", async () => {
  const image = testImage(19, 11, 3);
  const raw = await runFfmpeg(
    ["-f", "png_pipe", "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
    encodePng(image),
  );
  assert.deepEqual(raw, image.data);
});

Deno.test("decodePng reads a PNG that ffmpeg wrote", async () => {
  const image = testImage(21, 9, 4);
  const png = await runFfmpeg(
    [
      ...["-f", "rawvideo", "-pix_fmt", "rgba", "-video_size", "21x9", "-i", "pipe:0"],
      ...["-c:v", "png", "-pred", "mixed", "-f", "image2pipe", "pipe:1"],
    ],
    image.data,
  );
  assert.deepEqual(decodePng(png), image);
});
