import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, withTempDir } from "../tests/testing.ts";
import { UserError } from "../runtime/user_error.ts";
import {
  isInside,
  nativeLibraries,
  permissionFlags,
  type ScopeContext,
  scopesFor,
  writeProblem,
} from "./permissions.ts";

const PROJECT = ROOT.replace(/\/$/, "");

/** A workflow file in `dir` with these param lines (and one node, so that it is valid). */
async function workflowWith(dir: string, params: string[], extra: string[] = []): Promise<string> {
  const file = join(dir, "flow.yaml");
  await Deno.writeTextFile(
    file,
    ["cogflow: 1", "name: flow", ...extra, "params:", ...params, "nodes: {}", ""].join("\n"),
  );
  return file;
}

function context(cwd: string): ScopeContext {
  return { projectDir: PROJECT, cwd };
}

Deno.test("tiny.yaml gets its folders, the model, the outputs, and ORT's binding for FFI only", async () => {
  const scopes = await scopesFor(["validate", "workflows/tiny.yaml"], context(PROJECT));
  assert.ok(scopes.read.includes(PROJECT));
  assert.ok(scopes.read.includes(join(PROJECT, "workflows")));
  assert.ok(scopes.read.includes(join(PROJECT, "tests", "fixtures", "tiny-cogvideox", "2b")));
  assert.deepEqual(scopes.write, [join(PROJECT, "out"), join(PROJECT, ".cache")]);
  assert.deepEqual(scopes.ffi, nativeLibraries(PROJECT));
  assert.equal(scopes.ffi.length, 1);
  assert.match(scopes.ffi[0], /onnxruntime_binding\.node$/);
  assert.deepEqual(scopes.notGranted, []);
  const flags = permissionFlags(scopes);
  assert.ok(!flags.some((flag) => /^--allow-(run|net|all)|^-A$/.test(flag)), flags.join(" "));
  // System information: only the machine's memory, for the estimates made at validation.
  assert.deepEqual(flags.filter((flag) => flag.startsWith("--allow-sys")), [
    "--allow-sys=systemMemoryInfo",
  ]);
  assert.ok(flags.includes("--no-prompt"));
});

Deno.test("the whole ffi permission (ONNX Runtime's C API) only for a run that may stream weights: provider cuda or stream_weights: on", async () => {
  const flagsOf = async (args: string[]) =>
    permissionFlags(await scopesFor(args, context(PROJECT))).filter((f) => f.includes("ffi"));
  const library = join(PROJECT, "workflows", "tiny.yaml");
  assert.match((await flagsOf(["run", library]))[0], /^--allow-ffi=.*onnxruntime_binding\.node$/);
  assert.deepEqual(await flagsOf(["run", library, "--set", "provider=cuda"]), ["--allow-ffi"]);
  await withTempDir(async (work) => {
    const streams = join(work, "streams.yaml");
    const text = await Deno.readTextFile(library);
    const hook = "with: { blocks_per_group: $blocks_per_group }";
    assert.ok(text.includes(hook), "workflows/tiny.yaml changed: update this test");
    await Deno.writeTextFile(
      streams,
      text.replace(hook, "with: { blocks_per_group: $blocks_per_group, stream_weights: on }"),
    );
    assert.deepEqual(await flagsOf(["run", streams]), ["--allow-ffi"]);
    // Through a param: only when it resolves to on.
    const param = join(work, "param.yaml");
    await Deno.writeTextFile(
      param,
      text.replace(hook, "with: { blocks_per_group: $blocks_per_group, stream_weights: $stream }")
        .replace(
          "params:\n",
          "params:\n  stream: { type: string, enum: [auto, on, off], default: auto }\n",
        ),
    );
    assert.match((await flagsOf(["run", param]))[0], /^--allow-ffi=/);
    assert.deepEqual(await flagsOf(["run", param, "--set", "stream=on"]), ["--allow-ffi"]);
    const node = join(work, "node.yaml");
    await Deno.writeTextFile(node, text.replace("providers: [$provider]", "providers: [cuda]"));
    assert.deepEqual(await flagsOf(["run", node]), ["--allow-ffi"]);
  });
});

Deno.test("a workflow's own defaults are granted only inside the current folder, its folder or the project", async () => {
  await withTempDir(async (work) => {
    await withTempDir(async (cwd) => {
      const file = await workflowWith(work, [
        "  everything: { type: path, default: / }",
        "  model: { type: path, default: ./models }",
        "  elsewhere: { type: output_path, default: /var/x.mp4 }",
        `  here: { type: output_path, default: ${join(work, "out", "v.mp4")} }`,
      ]);
      const scopes = await scopesFor(["validate", file], context(cwd));
      assert.ok(!scopes.read.includes("/"));
      assert.ok(scopes.read.includes(join(work, "models")));
      assert.ok(!scopes.write.includes("/var"));
      assert.ok(scopes.write.includes(join(work, "out")));
      assert.deepEqual(scopes.notGranted, [
        `The default of param "everything" in flow.yaml "/" is not granted: it is outside the ` +
        `current folder, the workflow's folder and the project: set the param on the command ` +
        `line (--set everything=...) or pass --allow-read /`,
        `The folder of the default of param "elsewhere" in flow.yaml "/var" is not granted: it ` +
        `is outside the current folder, the workflow's folder and the project: set the param ` +
        `on the command line (--set elsewhere=...) or pass --allow-write /var`,
      ]);

      const given = await scopesFor(
        ["run", file, "--set", "everything=/", "--set", "elsewhere=/var/x.mp4"],
        context(cwd),
      );
      assert.ok(given.read.includes("/"));
      assert.ok(given.write.includes("/var"));
      assert.deepEqual(given.notGranted, []);
    });
  });
});

Deno.test("a plugin named by the workflow is readable only inside the allowed places", async () => {
  await withTempDir(async (work) => {
    await withTempDir(async (cwd) => {
      const file = await workflowWith(work, [], ["plugins: [/etc/plugin.ts, ./local.ts]"]);
      const scopes = await scopesFor(["validate", file, "--plugin", "/opt/p.ts"], context(cwd));
      assert.ok(!scopes.read.includes("/etc"));
      assert.ok(scopes.read.includes("/opt"), "--plugin is granted as given");
      assert.match(scopes.notGranted.join("\n"), /The folder of plugin "\/etc\/plugin\.ts"/);
    });
  });
});

Deno.test("no write access reaches cogflow's code or node_modules, even through a link", async () => {
  await withTempDir(async (cwd) => {
    await Deno.symlink(join(PROJECT, "node_modules"), join(cwd, "link"));
    const refused: string[][] = [
      ["--set", `output=${join(PROJECT, "node_modules", "v.mp4")}`],
      ["--set", `output=${join(PROJECT, "engine", "v.mp4")}`],
      ["--set", `output=${join(PROJECT, "v.mp4")}`],
      ["--set", "output=link/v.mp4"],
      ["--allow-write", "/"],
      ["--cache", join(PROJECT, "cli")],
    ];
    for (const args of refused) {
      await assert.rejects(
        scopesFor(["run", join(PROJECT, "workflows", "tiny.yaml"), ...args], context(cwd)),
        (error: Error) => {
          assert.ok(error instanceof UserError, String(error));
          assert.match(
            error.message,
            /^Cannot grant write access to ".*" \(.*\): it (holds|is part of) cogflow's code/,
          );
          return true;
        },
        args.join(" "),
      );
    }
    const allowed = await scopesFor(
      ["run", "workflows/tiny.yaml", "--set", `output=${join(PROJECT, "out", "x", "v.mp4")}`],
      context(PROJECT),
    );
    assert.ok(allowed.write.includes(join(PROJECT, "out", "x")));
  });
  assert.equal(writeProblem(join(PROJECT, "bench", "out"), PROJECT), undefined);
  assert.ok(isInside("/a/b", "/a") && isInside("/a", "/a") && !isInside("/ab", "/a"));
});

Deno.test("a path with a comma is refused when given and not granted as a default", async () => {
  await withTempDir(async (work) => {
    const file = await workflowWith(work, [
      `  odd: { type: path, default: "${join(work, "a,b")}" }`,
    ]);
    const scopes = await scopesFor(["validate", file], context(work));
    assert.match(scopes.notGranted[0], /"odd" .* is not granted: it has a comma/);
    await assert.rejects(
      scopesFor(["validate", file, "--set", "odd=/tmp/c,d"], context(work)),
      /^UserError: Cannot grant read access to "\/tmp\/c,d" \(--set odd\): Deno's permission flags separate paths with commas/,
    );
  });
});

Deno.test("bad --set values, deep nesting and remote plugins never throw anything but a UserError", async () => {
  await withTempDir(async (work) => {
    let text = "cogflow: 1\nname: deep\nnodes:\n  a:\n";
    for (let depth = 2; depth < 3000; depth++) text += `${"  ".repeat(depth)}a:\n`;
    await Deno.writeTextFile(join(work, "deep.yaml"), text);
    const tiny = join(PROJECT, "workflows", "tiny.yaml");
    for (
      const args of [
        ["validate", tiny, "--set", "seed=[*nope]"],
        ["validate", tiny, "--set", `seed=${"[".repeat(3000)}${"]".repeat(3000)}`],
        ["validate", join(work, "deep.yaml")],
      ]
    ) {
      const scopes = await scopesFor(args, context(work));
      assert.ok(scopes.read.includes(PROJECT));
    }
    await assert.rejects(
      scopesFor(["run", tiny, "--allow-remote-plugins"], context(work)),
      /^UserError: Remote plugins cannot be loaded under the launcher/,
    );
  });
});

Deno.test("a variant's base and a subworkflow's file are read: their folders, and the base's params", async () => {
  await withTempDir(async (work) => {
    await Deno.mkdir(join(work, "lib"));
    await Deno.mkdir(join(work, "flows"));
    await Deno.writeTextFile(
      join(work, "lib", "base.yaml"),
      "cogflow: 1\nname: base\nparams:\n  model: { type: path }\n" +
        "  output: { type: output_path, default: out/v.mp4 }\nnodes: {}\n",
    );
    await Deno.writeTextFile(
      join(work, "lib", "part.yaml"),
      "cogflow: 1\nname: part\nnodes: {}\n",
    );
    const variant = join(work, "flows", "variant.yaml");
    await Deno.writeTextFile(
      variant,
      "cogflow: 1\nextends: ../lib/base.yaml\nname: variant\nparams:\n  output: { default: v.mp4 }\n" +
        "nodes:\n  part: { type: workflow, with: { path: ../lib/part.yaml } }\n",
    );
    const scopes = await scopesFor(
      ["run", variant, "--set", `model=${join(work, "models", "m")}`],
      context(work),
    );
    assert.ok(scopes.read.includes(join(work, "lib")));
    assert.ok(scopes.read.includes(join(work, "models", "m")));
    assert.ok(scopes.write.includes(join(work, "flows")) || scopes.write.includes(work));
    assert.deepEqual(scopes.notGranted, []);
    // A params file is the user's: readable, and the paths in it granted as --set's are.
    await Deno.writeTextFile(join(work, "p.yaml"), `model: ${join(work, "other")}\n`);
    const fromFile = await scopesFor(["run", variant, "--params", "p.yaml"], context(work));
    assert.ok(fromFile.read.includes(join(work, "p.yaml")));
    assert.ok(fromFile.read.includes(join(work, "other")));
    // From another folder, the base's folder is outside what a file may ask for by itself.
    await withTempDir(async (cwd) => {
      const elsewhere = await scopesFor(["validate", variant], context(cwd));
      assert.ok(!elsewhere.read.includes(join(work, "lib")));
      assert.match(
        elsewhere.notGranted.join("\n"),
        /The folder of "base\.yaml" \(extended or included by variant\.yaml\) ".*lib" is not granted: it is outside the current folder, the workflow's folder and the project: pass --allow-read .*lib/,
      );
    });
  });
});

/** Runs `deno run --allow-read --allow-env --allow-run cli/launch.ts ARGS` from the repository root. */
async function launch(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "--allow-run", "cli/launch.ts", ...args],
    cwd: PROJECT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("list reads the folder it is given, under the launcher", async () => {
  const library = await launch(["list", "workflows"]);
  assert.equal(library.code, 0, library.stderr);
  assert.match(library.stdout, /tiny/);
  await withTempDir(async (dir) => {
    await Deno.copyFile(join(PROJECT, "workflows", "tiny.yaml"), join(dir, "copy.yaml"));
    const listed = await launch(["list", dir, "--json"]);
    assert.equal(listed.code, 0, listed.stderr);
    const [flow] = JSON.parse(listed.stdout);
    assert.equal(flow.name, "tiny");
    assert.ok(flow.params.some((param: { name: string }) => param.name === "seed"));
  });
});

Deno.test("init writes only the new file's folder, never inside cogflow's code", async () => {
  await withTempDir(async (dir) => {
    const target = join(dir, "new", "mine.yaml");
    const made = await launch(["init", "tiny", target]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(await Deno.readTextFile(target), /^name: mine$/m);
    const scopes = await scopesFor(["init", "tiny", target], context(PROJECT));
    assert.ok(scopes.write.includes(join(dir, "new")));
  });
  const refused = await launch(["init", "tiny", "engine/mine.yaml"]);
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    /^error: Cannot create "engine\/mine\.yaml" under the launcher: its folder ".*engine" is part of cogflow's code in .*: choose a folder outside cogflow's code$/m,
  );
  await assert.rejects(Deno.stat(join(PROJECT, "engine", "mine.yaml")), Deno.errors.NotFound);
});

Deno.test("upgrade writes the workflow's folder; the library's own files only with --check", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "old.yaml");
    const plugin = join(PROJECT, "tests", "plugins", "migrating_plugin.ts");
    await Deno.writeTextFile(
      file,
      `cogflow: 1\nname: old\nplugins: [${plugin}]\nnode_versions: { scale: 1 }\n` +
        "nodes:\n  n:\n    type: scale\n    with: { value: 2, amount: 3 }\n",
    );
    const upgraded = await launch(["upgrade", file]);
    assert.equal(upgraded.code, 0, upgraded.stderr);
    assert.match(upgraded.stdout, /version 1 to 2\nwrote /);
    assert.match(await Deno.readTextFile(file), /factor: 3/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["old.yaml"]);
  });
  const checked = await launch(["upgrade", "--check", "workflows/tiny.yaml"]);
  assert.equal(checked.code, 0, checked.stderr);
  assert.equal(checked.stdout, "workflows/tiny.yaml: up to date\n");
  const refused = await launch(["upgrade", "workflows/tiny.yaml"]);
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    /^error: Cannot upgrade "workflows\/tiny\.yaml" under the launcher: its folder ".*workflows" is part of cogflow's code in .*, and the rewrite writes a temporary file beside it: see what would change with --check, or upgrade a copy \(cogflow init\) outside cogflow's code$/m,
  );
});
