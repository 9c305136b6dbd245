/**
 * Data loss: cogflow never deletes what it did not write. Overwrite of the current folder, of a
 * checkout or of any folder it did not write is refused before any work, and every file stays as
 * it was; parallel `increment` runs get distinct names; a killed writer's temporary file is
 * removed by the next save; outputs are not written through symbolic links nor under a file.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  assertNoStackTrace,
  type CliResult,
  fileNames,
  ROOT,
  runCli,
  setArgs,
  withTempDir,
} from "./testing.ts";

const TINY = join(ROOT, "workflows", "tiny.yaml");

/** Every file and folder below `dir` with its content (folders as "<dir>"), sorted by path. */
async function snapshot(dir: string): Promise<[string, string][]> {
  const entries: [string, string][] = [];
  const walk = async (relative: string) => {
    for await (const entry of Deno.readDir(join(dir, relative))) {
      const path = join(relative, entry.name);
      if (entry.isDirectory) {
        entries.push([path, "<dir>"]);
        await walk(path);
      } else {
        entries.push([path, await Deno.readTextFile(join(dir, path))]);
      }
    }
  };
  await walk("");
  return entries.sort(([a], [b]) => a < b ? -1 : 1);
}

/** A folder that looks like a checkout: `.git`, `node_modules`, uncommitted work. */
async function makeCheckout(dir: string): Promise<void> {
  await Deno.mkdir(join(dir, ".git", "refs"), { recursive: true });
  await Deno.writeTextFile(join(dir, ".git", "HEAD"), "ref: refs/heads/main\n");
  await Deno.mkdir(join(dir, "node_modules", "zod"), { recursive: true });
  await Deno.writeTextFile(join(dir, "node_modules", "zod", "index.js"), "export {};\n");
  await Deno.writeTextFile(join(dir, "uncommitted.ts"), "// an hour of work\n");
}

/** Runs `deno run -A mod.ts <args>` in `cwd` (runCli runs in the repository root). */
async function runCliIn(cwd: string, args: string[], launcher = false): Promise<CliResult> {
  const entry = launcher
    ? ["run", "--allow-read", "--allow-env", "--allow-run", join(ROOT, "cli", "launch.ts")]
    : ["run", "-A", join(ROOT, "mod.ts")];
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [...entry, ...args],
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** The place of the save node's `path` setting in tiny.yaml: `tiny.yaml:<line>:<col>`. */
async function savePathPlace(): Promise<RegExp> {
  const lines = (await Deno.readTextFile(TINY)).split("\n");
  const line = lines.findIndex((text) => text.includes("with: { path: $output")) + 1;
  assert.ok(line > 0);
  return new RegExp(`tiny\\.yaml:${line}:\\d+`);
}

Deno.test("overwrite of the current folder, a checkout, is refused before any work", async () => {
  await withTempDir(async (dir) => {
    await makeCheckout(dir);
    const before = await snapshot(dir);
    const result = await runCliIn(dir, [
      "run",
      TINY,
      ...setArgs({ output: ".", if_exists: "overwrite", steps: 1 }),
    ]);
    assert.equal(result.code, 2, result.stderr);
    assertNoStackTrace(result.stderr);
    assert.match(result.stderr, await savePathPlace());
    assert.match(
      result.stderr,
      /Output ".*" is an existing folder that cogflow did not write: choose another path or remove it yourself/,
    );
    assert.deepEqual(await snapshot(dir), before);
  });
});

Deno.test("overwrite of a folder cogflow did not write is refused, under validate and run", async () => {
  await withTempDir(async (dir) => {
    const folder = join(dir, "results");
    await makeCheckout(folder);
    const before = await snapshot(dir);
    for (const command of ["validate", "run"]) {
      const result = await runCli([
        command,
        TINY,
        ...setArgs({ output: folder, if_exists: "overwrite", steps: 1 }),
      ]);
      assert.equal(result.code, 2, result.stderr);
      assertNoStackTrace(result.stderr);
      assert.match(result.stderr, await savePathPlace());
      assert.ok(
        result.stderr.includes(
          `Output "${folder}" is an existing folder that cogflow did not write`,
        ),
        result.stderr,
      );
      assert.deepEqual(await snapshot(dir), before);
    }
  });
});

Deno.test("an output under a regular file is a validation error at the setting's place", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "notes.txt");
    await Deno.writeTextFile(file, "a file");
    const output = join(file, "video.mp4");
    const result = await runCli(["validate", TINY, ...setArgs({ output })]);
    assert.equal(result.code, 2, result.stderr);
    assertNoStackTrace(result.stderr);
    assert.match(result.stderr, await savePathPlace());
    assert.ok(
      result.stderr.includes(`Cannot write output "${output}": "${file}" is a file, not a folder`),
      result.stderr,
    );
  });
});

Deno.test("a symbolic link among the output's folders is refused, in the sandbox too", async () => {
  await withTempDir(async (dir) => {
    const project = join(dir, "project");
    const elsewhere = join(dir, "elsewhere");
    await Deno.mkdir(join(project, "out"), { recursive: true });
    await Deno.mkdir(join(project, "results"));
    await Deno.mkdir(elsewhere);
    await Deno.symlink(elsewhere, join(project, "out", "link"));
    await Deno.symlink(elsewhere, join(project, "results", "link"));
    // The launcher's child may read out/ but, of results/, only the output's own folder.
    for (
      const [output, launcher] of [["out/link/video.mp4", false], ["results/link/v.mp4", true]]
    ) {
      const result = await runCliIn(
        project,
        ["validate", TINY, ...setArgs({ output })],
        launcher as boolean,
      );
      assert.equal(result.code, 2, result.stderr);
      assertNoStackTrace(result.stderr);
      assert.match(result.stderr, await savePathPlace());
      assert.match(result.stderr, /Cannot write output ".*" through the symbolic link ".*link"/);
    }
    assert.deepEqual(await fileNames(elsewhere), []);
  });
});

/** A `deno eval` script that writes `path` with if_exists `increment` once `start` (ms) comes. */
function incrementWriter(path: string, start: number, index: number): string {
  const module = pathToFileURL(join(ROOT, "runtime", "output_target.ts")).href;
  return `
    const { writeOutput } = await import(${JSON.stringify(module)});
    await new Promise((resolve) => setTimeout(resolve, ${start} - Date.now()));
    const written = await writeOutput(${JSON.stringify(path)}, "increment", async (temporary) => {
      await Deno.writeTextFile(temporary, "writer ${index}");
      // Still writing while the others commit: every writer starts from the same free name.
      await new Promise((resolve) => setTimeout(resolve, 100));
    });
    console.log(written);
  `;
}

Deno.test("parallel runs with if_exists increment on one output all get distinct names", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "video.mp4");
    await Deno.writeTextFile(path, "an earlier video");
    const start = Date.now() + 1500;
    const results = await Promise.all(
      [0, 1, 2, 3].map((index) =>
        new Deno.Command(Deno.execPath(), {
          args: ["eval", incrementWriter(path, start, index)],
          cwd: ROOT,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output()
      ),
    );
    const decoder = new TextDecoder();
    for (const result of results) assert.equal(result.code, 0, decoder.decode(result.stderr));
    const written = results.map((result) => decoder.decode(result.stdout).trim());
    assert.deepEqual(
      [...written].sort(),
      [1, 2, 3, 4].map((index) => join(dir, `video-${index}.mp4`)),
    );
    assert.equal(await Deno.readTextFile(path), "an earlier video");
    assert.deepEqual(await fileNames(dir), [
      "video-1.mp4",
      "video-2.mp4",
      "video-3.mp4",
      "video-4.mp4",
      "video.mp4",
    ]);
  });
});

Deno.test("the temporary file of a writer killed with SIGKILL is removed by the next save", async () => {
  await withTempDir(async (dir) => {
    const module = pathToFileURL(join(ROOT, "runtime", "output_target.ts")).href;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const { writeOutput } = await import(${JSON.stringify(module)});
        await writeOutput(${JSON.stringify(join(dir, "video.mp4"))}, "error", async (temporary) => {
          await Deno.writeTextFile(temporary, "half a video");
          await new Promise(() => setInterval(() => {}, 1000));
        });`,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let names: string[] = [];
    while (names.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      names = await fileNames(dir);
    }
    assert.match(names[0], new RegExp(`^\\.video\\.mp4\\.cogflow-tmp-${child.pid}-[0-9a-f]{16}$`));
    child.kill("SIGKILL");
    await child.status;
    assert.deepEqual(await fileNames(dir), names, "a killed writer leaves its temporary file");

    const { writeOutput } = await import("../runtime/output_target.ts");
    await writeOutput(
      join(dir, "other.mp4"),
      "error",
      (temporary) => Deno.writeTextFile(temporary, "a whole video"),
    );
    assert.deepEqual(await fileNames(dir), ["other.mp4"]);
  });
});
