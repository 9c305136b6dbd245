import assert from "node:assert/strict";
import { basename, join } from "node:path";
import {
  OUTPUT_MANIFEST,
  readOutputManifest,
  removeStaleTemporaries,
  STALE_TEMPORARY_MS,
  temporaryPathFor,
  temporaryWriterPid,
  withAtomicOutput,
  writeAtomically,
  writeFileAtomic,
} from "./atomic_file.ts";
import { UserError } from "./user_error.ts";
import { fileNames, withTempDir } from "../tests/testing.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("temporaryPathFor makes distinct hidden names beside the target, with the writer's pid", () => {
  const first = temporaryPathFor("/out/video.mp4");
  const second = temporaryPathFor("/out/video.mp4");
  assert.match(first, new RegExp(`^/out/\\.video\\.mp4\\.cogflow-tmp-${Deno.pid}-[0-9a-f]{16}$`));
  assert.notEqual(first, second);
  assert.equal(temporaryWriterPid(basename(first)), Deno.pid);
  assert.equal(temporaryWriterPid(".video.mp4.tmp-0123456789abcdef"), undefined);
  assert.equal(temporaryWriterPid("video.mp4"), undefined);
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

/** A writer of a folder output holding `names`, each file containing `content` and its name. */
function writeFolder(names: string[], content = "") {
  return async (temporaryPath: string) => {
    await Deno.mkdir(temporaryPath);
    for (const name of names) await Deno.writeTextFile(join(temporaryPath, name), content + name);
  };
}

/** Every file below `dir` (relative paths, sorted) with its content. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const walk = async (relative: string) => {
    for await (const entry of Deno.readDir(join(dir, relative))) {
      const path = join(relative, entry.name);
      if (entry.isDirectory) await walk(path);
      else files[path] = await Deno.readTextFile(join(dir, path));
    }
  };
  await walk("");
  return Object.fromEntries(Object.entries(files).sort(([a], [b]) => a < b ? -1 : 1));
}

Deno.test("a folder output carries a manifest of the files cogflow wrote", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "frames");
    await withAtomicOutput(path, writeFolder(["frame_0000.png", "frame_0001.png"]));
    assert.deepEqual(await fileNames(path), [OUTPUT_MANIFEST, "frame_0000.png", "frame_0001.png"]);
    assert.deepEqual(await readOutputManifest(path), ["frame_0000.png", "frame_0001.png"]);
    await assert.rejects(withAtomicOutput(path, writeFolder(["a"])), /already exists/);
    assert.deepEqual(await fileNames(dir), ["frames"]);
  });
});

Deno.test("overwrite of a folder cogflow wrote replaces exactly its files and keeps the user's", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "frames");
    await withAtomicOutput(path, writeFolder(["frame_0000.png", "frame_0001.png"], "old "));
    await Deno.writeTextFile(join(path, "notes.txt"), "mine");
    await Deno.mkdir(join(path, "picked"));
    await Deno.writeTextFile(join(path, "picked", "best.png"), "mine too");

    await withAtomicOutput(path, writeFolder(["frame_0000.png"], "new "), { overwrite: true });
    assert.deepEqual(await snapshot(path), {
      [OUTPUT_MANIFEST]: await Deno.readTextFile(join(path, OUTPUT_MANIFEST)),
      "frame_0000.png": "new frame_0000.png",
      "notes.txt": "mine",
      [join("picked", "best.png")]: "mine too",
    });
    assert.deepEqual(await readOutputManifest(path), ["frame_0000.png"]);
    // Nothing is left beside the folder: no temporary, no old copy.
    assert.deepEqual(await fileNames(dir), ["frames"]);
  });
});

Deno.test("overwrite never removes or empties a folder that cogflow did not write", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "project");
    await Deno.mkdir(join(path, ".git", "objects"), { recursive: true });
    await Deno.writeTextFile(join(path, ".git", "HEAD"), "ref: refs/heads/main");
    await Deno.writeTextFile(join(path, "uncommitted.ts"), "work");
    await Deno.writeTextFile(join(path, "frame_0000.png"), "a user's frame");
    const before = await snapshot(path);
    for (const manifest of [undefined, "not json", '{"files": ["../elsewhere"]}']) {
      if (manifest !== undefined) await Deno.writeTextFile(join(path, OUTPUT_MANIFEST), manifest);
      await assert.rejects(
        withAtomicOutput(path, writeFolder(["frame_0000.png"]), { overwrite: true }),
        (error: Error) => {
          assert.ok(error instanceof UserError);
          assert.equal(
            error.message,
            `Output "${path}" is an existing folder that cogflow did not write: ` +
              `choose another path or remove it yourself`,
          );
          return true;
        },
      );
      const after = await snapshot(path);
      delete after[OUTPUT_MANIFEST];
      assert.deepEqual(after, before);
      assert.deepEqual(await fileNames(dir), ["project"]);
    }
  });
});

Deno.test("overwrite refuses a user's file in the way of a new frame, before changing anything", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "frames");
    await withAtomicOutput(path, writeFolder(["frame_0000.png"], "old "));
    await Deno.writeTextFile(join(path, "frame_0001.png"), "the user's");
    const before = await snapshot(path);
    await assert.rejects(
      withAtomicOutput(path, writeFolder(["frame_0000.png", "frame_0001.png"]), {
        overwrite: true,
      }),
      /Cannot overwrite output ".*frames": it holds "frame_0001.png", which cogflow did not write/,
    );
    assert.deepEqual(await snapshot(path), before);
    assert.deepEqual(await fileNames(dir), ["frames"]);
  });
});

Deno.test("overwrite replaces regular files only: not a folder, a link or a file with a folder", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "video.mp4"));
    await assert.rejects(
      writeFileAtomic(join(dir, "video.mp4"), encoder.encode("x"), { overwrite: true }),
      /Output ".*video\.mp4" is an existing folder: choose another path or remove it yourself/,
    );
    await Deno.writeTextFile(join(dir, "target.txt"), "kept");
    await Deno.symlink(join(dir, "target.txt"), join(dir, "link.mp4"));
    await assert.rejects(
      writeFileAtomic(join(dir, "link.mp4"), encoder.encode("x"), { overwrite: true }),
      /Output ".*link\.mp4" is a symbolic link: choose another path or remove it yourself/,
    );
    await Deno.writeTextFile(join(dir, "frames"), "a file");
    await assert.rejects(
      withAtomicOutput(join(dir, "frames"), writeFolder(["a.png"]), { overwrite: true }),
      /Output ".*frames" is an existing file, not a folder of frames/,
    );
    assert.deepEqual(await fileNames(dir), ["frames", "link.mp4", "target.txt", "video.mp4"]);
    assert.equal(await Deno.readTextFile(join(dir, "target.txt")), "kept");
    assert.equal(await Deno.readTextFile(join(dir, "frames")), "a file");
    assert.deepEqual(await fileNames(join(dir, "video.mp4")), []);
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

Deno.test("writeAtomically claims the next name atomically when the target is taken", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "out.txt");
    let next = 0;
    const nextPath = () => Promise.resolve(join(dir, `out-${++next}.txt`));
    // Every writer is still writing when the others commit: all start from the same name.
    const written = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((index) =>
        writeAtomically(path, async (temporaryPath) => {
          await Deno.writeTextFile(temporaryPath, `writer ${index}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }, { nextPath })
      ),
    );
    const paths = written.map((result) => result.path);
    assert.equal(new Set(paths).size, 6);
    assert.equal((await fileNames(dir)).length, 6);
    const contents = await Promise.all(paths.map((file) => Deno.readTextFile(file)));
    assert.deepEqual(contents.sort(), [0, 1, 2, 3, 4, 5].map((index) => `writer ${index}`));
  });
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

Deno.test("removeStaleTemporaries removes dead writers' temporaries only", async () => {
  await withTempDir(async (dir) => {
    const dead = await deadPid();
    const live = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      const deadFile = `.video.mp4.cogflow-tmp-${dead}-0123456789abcdef`;
      const deadFolder = `.frames.cogflow-tmp-${dead}-0123456789abcdef`;
      const liveFile = `.video.mp4.cogflow-tmp-${live.pid}-0123456789abcdef`;
      const mine = basename(temporaryPathFor(join(dir, "x.mp4")));
      const others = [".video.mp4.tmp-0123456789abcdef", "video.mp4", "notes.cogflow-tmp-1"];
      for (const name of [deadFile, liveFile, mine, ...others]) {
        await Deno.writeTextFile(join(dir, name), "x");
      }
      await Deno.mkdir(join(dir, deadFolder));
      await Deno.writeTextFile(join(dir, deadFolder, "frame_0000.png"), "x");

      const removed = await removeStaleTemporaries(dir);
      assert.deepEqual(removed.sort(), [deadFile, deadFolder].sort());
      assert.deepEqual(await fileNames(dir), [liveFile, mine, ...others].sort());
    } finally {
      live.kill();
      await live.status;
    }
  });
});

Deno.test("removeStaleTemporaries falls back on age when liveness cannot be told", async () => {
  await withTempDir(async (dir) => {
    const fresh = `.a.mp4.cogflow-tmp-11-0123456789abcdef`;
    const old = `.b.mp4.cogflow-tmp-12-0123456789abcdef`;
    for (const name of [fresh, old]) await Deno.writeTextFile(join(dir, name), "x");
    const past = new Date(Date.now() - STALE_TEMPORARY_MS - 60_000);
    await Deno.utime(join(dir, old), past, past);
    const removed = await removeStaleTemporaries(dir, { isAlive: () => undefined });
    assert.deepEqual(removed, [old]);
    assert.deepEqual(await fileNames(dir), [fresh]);
  });
});

Deno.test("a write removes the temporaries that a killed writer left in its folder", async () => {
  await withTempDir(async (dir) => {
    const stale = join(dir, `.video.mp4.cogflow-tmp-${await deadPid()}-0123456789abcdef`);
    await Deno.writeTextFile(stale, "half a video");
    await writeFileAtomic(join(dir, "other.mp4"), encoder.encode("x"));
    assert.deepEqual(await fileNames(dir), ["other.mp4"]);
  });
});
