import assert from "node:assert/strict";
import { join } from "node:path";
import { temporaryPathFor, withAtomicOutput, writeFileAtomic } from "./atomic_file.ts";
import { fileNames, withTempDir } from "../tests/testing.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("temporaryPathFor makes distinct hidden names beside the target", () => {
  const first = temporaryPathFor("/out/video.mp4");
  const second = temporaryPathFor("/out/video.mp4");
  assert.match(first, /^\/out\/\.video\.mp4\.tmp-[0-9a-f]{16}$/);
  assert.notEqual(first, second);
});

Deno.test("writeFileAtomic creates missing directories and leaves no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "a", "b", "out.txt");
    await writeFileAtomic(path, encoder.encode("hello"));
    assert.equal(await Deno.readTextFile(path), "hello");
    assert.deepEqual(await fileNames(join(dir, "a", "b")), ["out.txt"]);
  });
});

Deno.test("writeFileAtomic refuses to replace an existing file unless overwrite is set", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "out.txt");
    await Deno.writeTextFile(path, "old");
    await assert.rejects(
      writeFileAtomic(path, encoder.encode("new")),
      (error: Error) => {
        assert.ok(error instanceof Deno.errors.AlreadyExists);
        assert.equal(
          error.message,
          `Output "${path}" already exists: pass overwrite: true to replace it`,
        );
        return true;
      },
    );
    assert.equal(await Deno.readTextFile(path), "old");

    await writeFileAtomic(path, encoder.encode("new"), { overwrite: true });
    assert.equal(await Deno.readTextFile(path), "new");
    assert.deepEqual(await fileNames(dir), ["out.txt"]);
  });
});

Deno.test("withAtomicOutput keeps the existing target when writing fails", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "video.mp4");
    await Deno.writeTextFile(path, "previous video");
    await assert.rejects(
      withAtomicOutput(path, async (temporaryPath) => {
        await Deno.writeTextFile(temporaryPath, "half a vid");
        throw new Error("Encoder crashed");
      }, { overwrite: true }),
      /Encoder crashed/,
    );
    assert.equal(await Deno.readTextFile(path), "previous video");
    assert.deepEqual(await fileNames(dir), ["video.mp4"]);
  });
});

Deno.test("withAtomicOutput leaves nothing behind when aborted", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "out", "video.mp4");
    const controller = new AbortController();
    await assert.rejects(
      withAtomicOutput(path, async (temporaryPath) => {
        await Deno.writeTextFile(temporaryPath, "partial");
        controller.abort(new Error("Cancelled by the user"));
      }, { signal: controller.signal }),
      /Cancelled by the user/,
    );
    assert.deepEqual(await fileNames(join(dir, "out")), []);

    // An already aborted signal fails before anything is created.
    await assert.rejects(
      withAtomicOutput(join(dir, "never", "x"), () => Promise.resolve(), {
        signal: controller.signal,
      }),
      /Cancelled by the user/,
    );
    assert.deepEqual(await fileNames(dir), ["out"]);
  });
});

Deno.test("withAtomicOutput returns the writer's result", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "n.txt");
    const size = await withAtomicOutput(path, async (temporaryPath) => {
      await Deno.writeTextFile(temporaryPath, "12345");
      return 5;
    });
    assert.equal(size, 5);
  });
});

Deno.test("withAtomicOutput fails when the writer creates nothing", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      withAtomicOutput(join(dir, "x.gif"), () => Promise.resolve()),
      /Output ".*x\.gif" was not written/,
    );
    assert.deepEqual(await fileNames(dir), []);
  });
});

Deno.test("withAtomicOutput produces and replaces directories", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "frames");
    const writeFrames = (names: string[]) => async (temporaryPath: string) => {
      await Deno.mkdir(temporaryPath);
      for (const name of names) await Deno.writeTextFile(join(temporaryPath, name), name);
    };
    await withAtomicOutput(path, writeFrames(["frame_0000.png", "frame_0001.png"]));
    assert.deepEqual(await fileNames(path), ["frame_0000.png", "frame_0001.png"]);

    await assert.rejects(withAtomicOutput(path, writeFrames(["a"])), /already exists/);
    await withAtomicOutput(path, writeFrames(["frame_0000.png"]), { overwrite: true });
    assert.deepEqual(await fileNames(path), ["frame_0000.png"]);
    assert.deepEqual(await fileNames(dir), ["frames"]);
  });
});

Deno.test("withAtomicOutput will not replace a directory with a file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "frames");
    await Deno.mkdir(path);
    await assert.rejects(
      writeFileAtomic(path, encoder.encode("x"), { overwrite: true }),
      /Cannot replace output ".*frames": it is a directory/,
    );
    assert.deepEqual(await fileNames(dir), ["frames"]);
  });
});

Deno.test("concurrent writers of one target: exactly one wins without overwrite", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "out.txt");
    const results = await Promise.allSettled(
      [0, 1, 2, 3].map((index) => writeFileAtomic(path, encoder.encode(`writer ${index}`))),
    );
    const won = results.filter((result) => result.status === "fulfilled");
    assert.equal(won.length, 1);
    for (const result of results) {
      if (result.status === "rejected") assert.match(result.reason.message, /already exists/);
    }
    assert.match(decoder.decode(await Deno.readFile(path)), /^writer \d$/);
    assert.deepEqual(await fileNames(dir), ["out.txt"]);
  });
});
