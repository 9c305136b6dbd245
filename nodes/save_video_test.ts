import assert from "node:assert/strict";
import { join } from "node:path";
import { decodePng } from "../media/png.ts";
import { encodeSafetensors } from "../runtime/safetensors.ts";
import { createTensor } from "../runtime/tensor.ts";
import { outputsOf, runFailure, runYaml, validationErrors, withTempDir } from "../tests/testing.ts";

/** Writes a video tensor `[batch, 3 frames, 3, 16, 24]` of a gradient (brighter per video). */
async function writeVideos(dir: string, batch: number): Promise<string> {
  const shape = [batch, 3, 3, 16, 24];
  const frames = createTensor("float32", shape);
  const data = frames.data as Float32Array;
  for (let i = 0; i < data.length; i++) {
    data[i] = ((i % 97) / 96 + Math.floor(i / (data.length / batch))) / batch;
  }
  const path = join(dir, `videos_${batch}.safetensors`);
  await Deno.writeFile(path, encodeSafetensors([["frames", frames]]));
  return path;
}

/** Saves the videos of `input` with `settings`; returns the files written. */
async function saveVideo(input: string, settings: string): Promise<string[]> {
  const run = await runYaml(saveWorkflow(input, settings), { only: ["save"] });
  return outputsOf(run, "save").files as string[];
}

function saveWorkflow(input: string, settings: string): string {
  return `
cogflow: 1
name: save_video_test
nodes:
  frames: { type: load_tensor, with: { path: "${input}" } }
  save: { type: save_video, in: { frames: frames }, with: ${settings} }
`;
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

function isMp4(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(4, 8)) === "ftyp";
}

Deno.test("save_video writes an MP4 and a contact sheet beside it", async () => {
  await withTempDir(async (dir) => {
    const input = await writeVideos(dir, 1);
    const video = join(dir, "out", "video.mp4");
    const files = await saveVideo(input, `{ path: "${video}", fps: 8 }`);
    assert.deepEqual(files, [video, join(dir, "out", "video.sheet.png")]);
    assert.ok(isMp4(await Deno.readFile(video)));
    const sheet = decodePng(await Deno.readFile(files[1]));
    assert.ok(sheet.width >= 24 && sheet.height >= 16);
    // Written atomically: no temporary file is left beside the outputs.
    assert.deepEqual(await entries(join(dir, "out")), ["video.mp4", "video.sheet.png"]);
  });
});

Deno.test("save_video writes a GIF, or a folder of PNG frames for a path without extension", async () => {
  await withTempDir(async (dir) => {
    const input = await writeVideos(dir, 1);
    const gif = join(dir, "video.gif");
    assert.deepEqual(await saveVideo(input, `{ path: "${gif}", contact_sheet: false }`), [gif]);
    assert.equal(new TextDecoder().decode((await Deno.readFile(gif)).subarray(0, 6)), "GIF89a");

    const folder = join(dir, "frames");
    assert.deepEqual(await saveVideo(input, `{ path: "${folder}", contact_sheet: false }`), [
      folder,
    ]);
    assert.deepEqual(await entries(folder), [
      ".cogflow-output.json",
      "frame_0000.png",
      "frame_0001.png",
      "frame_0002.png",
    ]);
    const first = decodePng(await Deno.readFile(join(folder, "frame_0000.png")));
    assert.deepEqual([first.width, first.height], [24, 16]);
  });
});

Deno.test("save_video keeps an existing file unless if_exists says overwrite or increment", async () => {
  await withTempDir(async (dir) => {
    const input = await writeVideos(dir, 1);
    const video = join(dir, "video.mp4");
    await saveVideo(input, `{ path: "${video}", contact_sheet: false }`);
    const before = await Deno.readFile(video);

    const failure = await runFailure(
      saveWorkflow(input, `{ path: "${video}", contact_sheet: false, fps: 4 }`),
    );
    assert.equal(
      failure.message,
      `Node "save" (save_video) failed: Output "${video}" already exists: set if_exists to "overwrite" or "increment" to write anyway`,
    );
    assert.deepEqual(await Deno.readFile(video), before);

    const incremented = await saveVideo(
      input,
      `{ path: "${video}", contact_sheet: false, if_exists: increment }`,
    );
    assert.deepEqual(incremented, [join(dir, "video-1.mp4")]);

    const overwritten = await saveVideo(
      input,
      `{ path: "${video}", contact_sheet: false, fps: 4, if_exists: overwrite }`,
    );
    assert.deepEqual(overwritten, [video]);
    assert.notDeepEqual(await Deno.readFile(video), before);
    assert.deepEqual(await entries(dir), ["video-1.mp4", "video.mp4", "videos_1.safetensors"]);
  });
});

Deno.test("save_video writes one file per video of a batch", async () => {
  await withTempDir(async (dir) => {
    const input = await writeVideos(dir, 2);
    const files = await saveVideo(input, `{ path: "${join(dir, "video.mp4")}" }`);
    assert.deepEqual(files, [
      join(dir, "video-0.mp4"),
      join(dir, "video-0.sheet.png"),
      join(dir, "video-1.mp4"),
      join(dir, "video-1.sheet.png"),
    ]);
    const [first, second] = [await Deno.readFile(files[0]), await Deno.readFile(files[2])];
    assert.ok(isMp4(first) && isMp4(second));
    assert.notDeepEqual(first, second);
  });
});

Deno.test("the contact sheet follows if_exists error: nothing is written when either file exists", async () => {
  await withTempDir(async (dir) => {
    const input = await writeVideos(dir, 1);
    const video = join(dir, "video.mp4");
    const sheet = join(dir, "video.sheet.png");
    await Deno.writeTextFile(sheet, "an earlier sheet");
    const failure = await runFailure(saveWorkflow(input, `{ path: "${video}" }`));
    assert.equal(
      failure.message,
      `Node "save" (save_video) failed: Output "${sheet}" already exists: set if_exists to "overwrite" or "increment" to write anyway`,
    );
    assert.equal(await Deno.readTextFile(sheet), "an earlier sheet");
    assert.deepEqual(await entries(dir), ["video.sheet.png", "videos_1.safetensors"]);
  });
});

Deno.test("with increment, the contact sheet takes the name of the video chosen", async () => {
  await withTempDir(async (dir) => {
    const input = await writeVideos(dir, 1);
    const video = join(dir, "video.mp4");
    // A stale sheet without its video makes its name taken: the video goes to video-1.mp4.
    await Deno.writeTextFile(join(dir, "video.sheet.png"), "an earlier sheet");
    const first = await saveVideo(input, `{ path: "${video}", if_exists: increment }`);
    assert.deepEqual(first, [join(dir, "video-1.mp4"), join(dir, "video-1.sheet.png")]);
    const second = await saveVideo(input, `{ path: "${video}", if_exists: increment }`);
    assert.deepEqual(second, [join(dir, "video-2.mp4"), join(dir, "video-2.sheet.png")]);
    assert.equal(await Deno.readTextFile(join(dir, "video.sheet.png")), "an earlier sheet");

    const overwritten = await saveVideo(input, `{ path: "${video}", if_exists: overwrite }`);
    assert.deepEqual(overwritten, [video, join(dir, "video.sheet.png")]);
    assert.notEqual(await Deno.readTextFile(join(dir, "video.sheet.png")), "an earlier sheet");
  });
});

Deno.test("save_video refuses at validation an output it cannot write", async () => {
  await withTempDir(async (dir) => {
    const input = await writeVideos(dir, 1);
    const file = join(dir, "notes.txt");
    await Deno.writeTextFile(file, "a file");
    const errors = await validationErrors(
      saveWorkflow(input, `{ path: "${join(file, "video.mp4")}" }`),
    );
    assert.equal(errors.length, 1);
    assert.match(
      errors[0],
      new RegExp(
        `Cannot write output ".*notes\\.txt/video\\.mp4": ".*notes\\.txt" is a file, not a folder`,
      ),
    );

    const folder = join(dir, "mine");
    await Deno.mkdir(folder);
    await Deno.writeTextFile(join(folder, "keep.txt"), "mine");
    const overwrite = await validationErrors(
      saveWorkflow(input, `{ path: "${folder}", if_exists: overwrite }`),
    );
    assert.equal(overwrite.length, 1);
    assert.match(overwrite[0], /is an existing folder that cogflow did not write/);
    assert.deepEqual(await entries(folder), ["keep.txt"]);
  });
});
