import assert from "node:assert/strict";
import { join } from "node:path";
import { OUTPUT_MANIFEST } from "./atomic_file.ts";
import {
  checkOutputTargets,
  chooseOutputPath,
  incrementedPath,
  outputPathProblem,
  writeOutput,
} from "./output_target.ts";
import { UserError } from "./user_error.ts";
import { fileNames, withTempDir } from "../tests/testing.ts";

const text = (content: string) => (temporaryPath: string) =>
  Deno.writeTextFile(temporaryPath, content, { createNew: true });

/** Asserts that `promise` rejects with a UserError whose message matches `pattern`. */
async function rejectsAsUserError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.ok(error instanceof UserError, `Expected a UserError, got ${error.stack}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("incrementedPath and chooseOutputPath number names before the extension", async () => {
  assert.equal(incrementedPath("/out/video.mp4", 2), "/out/video-2.mp4");
  assert.equal(incrementedPath("/out/frames", 1), "/out/frames-1");
  await withTempDir(async (dir) => {
    const video = join(dir, "video.mp4");
    assert.equal(await chooseOutputPath(video, "increment"), video);
    await Deno.writeTextFile(join(dir, "video.sheet.png"), "an old sheet");
    const sheet = (target: string) => [target.replace(/\.mp4$/, ".sheet.png")];
    // A name whose contact sheet exists is not free.
    assert.equal(await chooseOutputPath(video, "increment", sheet), join(dir, "video-1.mp4"));
    assert.equal(await chooseOutputPath(video, "error", sheet), video);
  });
});

Deno.test("parallel increment writers of one output all succeed with distinct names", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "video.mp4");
    await Deno.writeTextFile(path, "an earlier video");
    // Each writer is still writing when the others commit, so all of them choose "video-1.mp4".
    const slow = (index: number) => async (temporaryPath: string) => {
      await Deno.writeTextFile(temporaryPath, `writer ${index}`);
      await new Promise((resolve) => setTimeout(resolve, 30));
    };
    const written = await Promise.all(
      Array.from({ length: 8 }, (_, index) => writeOutput(path, "increment", slow(index))),
    );
    assert.deepEqual(
      [...written].sort(),
      Array.from({ length: 8 }, (_, index) => join(dir, `video-${index + 1}.mp4`)).sort(),
    );
    const contents = await Promise.all(written.map((file) => Deno.readTextFile(file)));
    assert.equal(new Set(contents).size, 8);
    assert.equal(await Deno.readTextFile(path), "an earlier video");
    assert.equal((await fileNames(dir)).length, 9);
  });
});

Deno.test("if_exists error refuses when the output or a companion exists, before writing", async () => {
  await withTempDir(async (dir) => {
    const video = join(dir, "video.mp4");
    const sheet = join(dir, "video.sheet.png");
    await Deno.writeTextFile(sheet, "an old sheet");
    const companions = () => [sheet];
    await rejectsAsUserError(
      checkOutputTargets([video], "error", { companions }),
      /^Output ".*video\.sheet\.png" already exists: set if_exists to "overwrite" or "increment"/,
    );
    let wrote = false;
    await rejectsAsUserError(
      writeOutput(video, "error", () => {
        wrote = true;
        return Promise.resolve();
      }, { companions }),
      /video\.sheet\.png" already exists/,
    );
    assert.equal(wrote, false);
    assert.deepEqual(await fileNames(dir), ["video.sheet.png"]);
    await checkOutputTargets([video], "overwrite", { companions });
  });
});

Deno.test("overwrite replaces a regular file atomically and refuses folders cogflow did not write", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "video.mp4");
    await Deno.writeTextFile(file, "old");
    assert.equal(await writeOutput(file, "overwrite", text("new")), file);
    assert.equal(await Deno.readTextFile(file), "new");

    const folder = join(dir, "mine");
    await Deno.mkdir(join(folder, ".git"), { recursive: true });
    await Deno.writeTextFile(join(folder, "notes.txt"), "kept");
    const message =
      `Output "${folder}" is an existing folder that cogflow did not write: choose another path or remove it yourself`;
    assert.equal(await outputPathProblem(folder, "overwrite", { folder: true }), message);
    assert.equal(await outputPathProblem(folder, "error", { folder: true }), undefined);
    await rejectsAsUserError(
      writeOutput(folder, "overwrite", (temporary) => Deno.mkdir(temporary), { folder: true }),
      new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`),
    );
    assert.deepEqual(await fileNames(folder), [".git", "notes.txt"]);
    assert.equal(
      await outputPathProblem(folder, "overwrite"),
      `Output "${folder}" is an existing folder: choose another path or remove it yourself`,
    );
    assert.deepEqual(await fileNames(dir), ["mine", "video.mp4"]);
  });
});

Deno.test("a folder that cogflow wrote may be overwritten, keeping the files the user added", async () => {
  await withTempDir(async (dir) => {
    const folder = join(dir, "frames");
    const frames = (names: string[]) => async (temporary: string) => {
      await Deno.mkdir(temporary);
      for (const name of names) await Deno.writeTextFile(join(temporary, name), "new");
    };
    await writeOutput(folder, "error", frames(["frame_0000.png", "frame_0001.png"]), {
      folder: true,
    });
    await Deno.writeTextFile(join(folder, "mine.txt"), "kept");
    assert.equal(await outputPathProblem(folder, "overwrite", { folder: true }), undefined);
    await writeOutput(folder, "overwrite", frames(["frame_0000.png"]), { folder: true });
    assert.deepEqual(await fileNames(folder), [OUTPUT_MANIFEST, "frame_0000.png", "mine.txt"]);
    assert.equal(await Deno.readTextFile(join(folder, "mine.txt")), "kept");
  });
});

Deno.test("outputs under a file or through a symbolic link below the base are refused", async () => {
  await withTempDir(async (dir) => {
    const elsewhere = join(dir, "elsewhere");
    const base = join(dir, "project");
    await Deno.mkdir(join(base, "out"), { recursive: true });
    await Deno.mkdir(elsewhere);
    await Deno.symlink(elsewhere, join(base, "out", "link"));
    await Deno.writeTextFile(join(base, "notes.txt"), "a file");

    const throughLink = join(base, "out", "link", "sub", "video.mp4");
    const linkMessage = `Cannot write output "${throughLink}" through the symbolic link "${
      join(base, "out", "link")
    }": cogflow does not write through links, name the folder it points to instead`;
    assert.equal(await outputPathProblem(throughLink, "error", { base }), linkMessage);
    await rejectsAsUserError(
      writeOutput(throughLink, "increment", text("x"), { base }),
      /through the symbolic link/,
    );
    assert.deepEqual(await fileNames(elsewhere), []);

    const underFile = join(base, "notes.txt", "video.mp4");
    assert.equal(
      await outputPathProblem(underFile, "error", { base }),
      `Cannot write output "${underFile}": "${join(base, "notes.txt")}" is a file, not a folder`,
    );
    // Outside the base only the folder itself is checked; links there are the user's own.
    const outside = join(dir, "notes.txt");
    await Deno.writeTextFile(outside, "x");
    assert.match(
      (await outputPathProblem(join(outside, "a", "video.mp4"), "error", { base }))!,
      /is a file, not a folder$/,
    );
    assert.equal(
      await outputPathProblem(join(base, "out", "link", "v.mp4"), "error", { base: elsewhere }),
      undefined,
    );
    assert.equal(
      await outputPathProblem(join(base, "out", "new", "v.mp4"), "error", { base }),
      undefined,
    );
  });
});

Deno.test("file system errors while saving are user errors that name the output", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "video.mp4");
    await rejectsAsUserError(
      writeOutput(
        path,
        "error",
        () => Promise.reject(new Deno.errors.NotADirectory("Not a directory (os error 20)")),
      ),
      new RegExp(`^Cannot write output "${path}": Not a directory \\(os error 20\\)$`),
    );
    // Other errors (a bug, ffmpeg failing) pass through unchanged.
    await assert.rejects(
      writeOutput(path, "error", () => Promise.reject(new TypeError("a bug"))),
      (error: Error) => error instanceof TypeError,
    );
    assert.deepEqual(await fileNames(dir), []);
  });
});
