/**
 * Fault injection: runs of the tiny workflow killed at seeded random moments (SIGKILL or SIGINT,
 * from the first progress line to the end of the save) leave outputs and caches whole or absent.
 * After every kill: the video and the saved tensors are either missing or byte-identical to a
 * clean run's; nothing half-written stays under a final name; the next run with the same `--cache`
 * succeeds, gives the clean run's bytes, and leaves no temporary file behind.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { assertNoStackTrace, ROOT, setArgs, withTempDir } from "./testing.ts";

/** A seeded generator of numbers in [0, 1) (xorshift32). */
function prng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

function tinyArgs(dir: string): string[] {
  return [
    "run",
    join(ROOT, "workflows", "tiny.yaml"),
    "--cache",
    join(dir, "cache"),
    ...setArgs({
      output: join(dir, "out", "video.mp4"),
      tensors_out: join(dir, "out", "frames.safetensors"),
      if_exists: "overwrite",
      steps: 3,
    }),
  ];
}

function spawnRun(dir: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "mod.ts"), ...tinyArgs(dir)],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function finish(child: Deno.ChildProcess): Promise<{ code: number; stderr: string }> {
  const [status, , stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).arrayBuffer(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, stderr };
}

async function readIfPresent(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Every file below `dir`, relative. */
async function filesBelow(dir: string): Promise<string[]> {
  const names: string[] = [];
  const walk = async (relative: string) => {
    let entries;
    try {
      entries = Deno.readDir(join(dir, relative));
      for await (const entry of entries) {
        const path = join(relative, entry.name);
        if (entry.isDirectory) await walk(path);
        else names.push(path);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  };
  await walk("");
  return names.sort();
}

Deno.test("runs killed at random moments leave outputs and caches whole or absent", async () => {
  await withTempDir(async (dir) => {
    // The clean run: its bytes are what every output must be, if it exists at all.
    const clean = join(dir, "clean");
    const first = await finish(spawnRun(clean));
    assert.equal(first.code, 0, first.stderr);
    const video = await Deno.readFile(join(clean, "out", "video.mp4"));
    const frames = await Deno.readFile(join(clean, "out", "frames.safetensors"));
    const started = performance.now();
    const again = await finish(spawnRun(join(dir, "timing")));
    assert.equal(again.code, 0, again.stderr);
    const runMs = performance.now() - started;

    const random = prng(20261202);
    for (let round = 0; round < 6; round++) {
      const work = join(dir, `round-${round}`);
      const signal: Deno.Signal = random() < 0.5 ? "SIGKILL" : "SIGINT";
      const delayMs = Math.round(random() * runMs);
      const child = spawnRun(work);
      const timer = setTimeout(() => {
        try {
          child.kill(signal);
        } catch {
          // It had finished already.
        }
      }, delayMs);
      const killed = await finish(child);
      clearTimeout(timer);
      const where = `round ${round}: ${signal} after ${delayMs} ms (exit ${killed.code})`;
      assertNoStackTrace(killed.stderr);
      // Whole or absent.
      for (const [name, expected] of [["video.mp4", video], ["frames.safetensors", frames]]) {
        const written = await readIfPresent(join(work, "out", name as string));
        if (written) assert.deepEqual(written, expected, `${where}: ${name} is not whole`);
      }
      // The next run on the same cache succeeds and gives the clean bytes.
      const next = await finish(spawnRun(work));
      assert.equal(next.code, 0, `${where}: the next run failed:\n${next.stderr}`);
      assert.deepEqual(await Deno.readFile(join(work, "out", "video.mp4")), video, where);
      assert.deepEqual(await Deno.readFile(join(work, "out", "frames.safetensors")), frames, where);
      const leftovers = (await filesBelow(work)).filter((name) => /tmp/i.test(name));
      assert.deepEqual(leftovers, [], `${where}: temporary files left`);
    }
  });
});
