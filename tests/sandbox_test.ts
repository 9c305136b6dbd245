/**
 * The launcher's sandbox against hostile plugins (tests/plugins/hostile/): each attack (running
 * programs or ffmpeg, reading outside the scopes and /proc, writing outside the outputs, loading
 * libc with FFI, the network, environment variables, remote imports, widening the scopes through
 * param defaults, ONNX Runtime loaded directly or asked through cogflow's session workers to write
 * an optimized model or a profile, or to read a model or external data outside the scopes) is
 * refused under `validate` and `run`, through the real launcher as `deno task cogflow` runs it; a
 * benign plugin and a video save still work, and so does the tiny workflow, its models in the
 * session host's workers (the long-arguments test). Also the launcher's own limits: long
 * arguments, bad `--set` values, commas in paths, a plugin that never loads.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { assertNoStackTrace, fileNames, ROOT, withTempDir } from "./testing.ts";
import { ffmpegPath } from "../media/video_writer.ts";

const HOSTILE = join(ROOT, "tests", "plugins", "hostile");
const SECRET_VARIABLE = "COGFLOW_SANDBOX_TEST_SECRET";
const FIXTURE_MODEL = "tests/fixtures/tiny-cogvideox/2b/vae_decoder/model.onnx";

/** The hostile plugins run together, by file name (loop_at_import.ts has a test of its own). */
const ATTACKS = [
  "run_program",
  "ffmpeg_broker",
  "read_outside",
  "proc_environ",
  "write_outside",
  "ffi_libc",
  "network",
  "read_env",
  "remote_import",
  "widen_scope",
  "ort_optimized_model",
  "ort_profile",
  "ort_outside_model",
];

interface LaunchResult {
  code: number;
  output: string;
}

/** Runs `deno run --allow-read --allow-env --allow-run cli/launch.ts ARGS` from the repository root. */
async function launch(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<LaunchResult> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "--allow-run", "cli/launch.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

/** A loopback listener that counts connections. */
function listen(): { port: number; connections: () => number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let count = 0;
  (async () => {
    for await (const connection of listener) {
      count++;
      connection.close();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    connections: () => count,
    close: () => listener.close(),
  };
}

async function findLibc(): Promise<string> {
  for (
    const path of [
      "/lib/x86_64-linux-gnu/libc.so.6",
      "/lib/aarch64-linux-gnu/libc.so.6",
      "/lib64/libc.so.6",
      "/usr/lib/libc.so.6",
    ]
  ) {
    if (await Deno.stat(path).then(() => true, () => false)) return path;
  }
  throw new Error("No libc found");
}

/**
 * Sets up a workflow folder using every hostile plugin, a folder outside every scope with a
 * secret in it, and a listener; runs `body`; then checks that nothing got out.
 */
async function withHostileWorkflow(
  body: (context: { workflow: string; secret: string; env: Record<string, string> }) => Promise<
    void
  >,
): Promise<void> {
  await withTempDir(async (work) => {
    await withTempDir(async (outside) => {
      const secret = `secret-${crypto.randomUUID()}`;
      const secretFile = join(outside, "secret.txt");
      await Deno.writeTextFile(secretFile, secret);
      // A model outside every scope, for ONNX Runtime to be asked to read.
      await Deno.copyFile(join(ROOT, FIXTURE_MODEL), join(outside, "model.onnx"));
      await Deno.mkdir(join(work, "out"));
      await Deno.mkdir(join(work, "scratch"));
      const libcCopy = join(work, "out", "libc.so.6");
      await Deno.copyFile(await findLibc(), libcCopy);
      const listener = listen();
      const targetFile = join(work, "target.json");
      await Deno.writeTextFile(
        targetFile,
        JSON.stringify({
          secretFile,
          outsideDir: outside,
          projectDir: ROOT.replace(/\/$/, ""),
          libcCopy,
          ffmpeg: await ffmpegPath(),
          port: listener.port,
          secretVariable: SECRET_VARIABLE,
        }),
      );
      const plugins = ATTACKS.map((name) =>
        `  - ${pathToFileURL(join(HOSTILE, `${name}.ts`)).href}?target=${targetFile}`
      );
      const nodes = ATTACKS.map((name) => `  ${name}: { type: hostile_${name} }`);
      const workflow = join(work, "hostile.yaml");
      await Deno.writeTextFile(
        workflow,
        [
          "cogflow: 1",
          "name: hostile",
          "plugins:",
          ...plugins,
          "params:",
          "  everything: { type: path, default: / }",
          `  elsewhere: { type: output_path, default: ${join(outside, "widened.mp4")} }`,
          // A folder the plugins may write (granted: it lies in the workflow's folder).
          `  scratch: { type: output_path, default: ${join(work, "scratch", "unused")} }`,
          // Unused: `--set provider=cuda` has the launcher grant the whole ffi permission.
          "  provider: { type: string, enum: [cpu, cuda], default: cpu }",
          "nodes:",
          ...nodes,
          "",
        ].join("\n"),
      );
      const lock = await Deno.readTextFile(join(ROOT, "deno.lock"));
      try {
        await body({ workflow, secret, env: { [SECRET_VARIABLE]: secret } });
      } finally {
        listener.close();
      }
      assert.equal(listener.connections(), 0, "Nothing may connect to the listener");
      assert.deepEqual(
        await fileNames(outside),
        ["model.onnx", "secret.txt"],
        "Nothing may appear outside",
      );
      assert.equal(await Deno.readTextFile(join(ROOT, "deno.lock")), lock, "deno.lock changed");
      for (const folder of [".", "node_modules", "cli"]) {
        const planted = (await fileNames(join(ROOT, folder))).filter((name) =>
          name.includes("pwned")
        );
        assert.deepEqual(planted, [], `Files planted in ${folder}/`);
      }
    });
  });
}

/** Checks that every attack ran in `phase` and each attempt was refused. */
function assertRefused(output: string, secret: string, phase: string, broker: boolean): void {
  assert.ok(!output.includes(secret), `The secret leaked:\n${output}`);
  assert.doesNotMatch(output, /^HOSTILE .*: GOT /m, `An attack got through:\n${output}`);
  for (const name of ATTACKS) {
    assert.match(
      output,
      new RegExp(`^HOSTILE ${name} ${phase} \\w+: refused`, "m"),
      `Attack "${name}" did not run in ${phase}:\n${output}`,
    );
  }
  // Refused from the cache, with no attempt to reach the registry.
  assert.match(output, /HOSTILE remote_import \w+ npm: refused .*--cached-only is specified/);
  if (broker) {
    // The broker was reached and said why it refused.
    assert.match(output, /HOSTILE ffmpeg_broker \w+ preset: refused .*preset\\?" must be one of/);
    assert.match(output, /HOSTILE ffmpeg_broker \w+ format: refused .*format\\?" must be/);
  } else {
    // Only `run` has a broker.
    assert.match(output, /HOSTILE ffmpeg_broker \w+ preset: refused \(Error: No broker\)/);
  }
  // ONNX Runtime loads only in the session host's workers,
  for (const name of ["ort_optimized_model", "ort_profile", "ort_outside_model"]) {
    assert.match(
      output,
      new RegExp(
        `^HOSTILE ${name} ${phase} direct: refused \\(NotCapable: Requires ffi access`,
        "m",
      ),
    );
  }
  // which take only cogflow's own options,
  const options = { optimized_model: "optimizedModelFilePath", profile: "enableProfiling" };
  for (const [name, option] of Object.entries(options)) {
    const refusal = `refused \\(SessionError: Unknown session option "${option}"`;
    assert.match(
      output,
      new RegExp(`^HOSTILE ort_${name} ${phase} session_worker: ${refusal}`, "m"),
    );
  }
  // and read only what the run may read.
  const outside: [string, string][] = [
    ["session_worker", `Model file ".*model\\.onnx" is outside the paths this run may read`],
    [
      "absolute_location",
      `External data location ".*secret\\.txt" in "<model bytes>" is outside the model's folder`,
    ],
    [
      "absolute_location_file",
      `External data location ".*secret\\.txt" in ".*absolute-${phase}\\.onnx" is outside`,
    ],
    [
      "leaving_folder",
      `External data location "\\.\\./.*secret\\.txt" in ".*" is outside the model's folder`,
    ],
    ["folder_outside", `External data folder ".*" is outside the paths this run may read`],
    ["folder_outside_bytes", `External data folder ".*" is outside the paths this run may read`],
    ["chain_weight_outside", `Weight file ".*secret\\.txt" of part "part_00_whole" is outside`],
    [
      "chain_external_data",
      `Invalid streamed model: part "part_00_whole": its graph names external data`,
    ],
  ];
  for (const [what, message] of outside) {
    assert.match(
      output,
      new RegExp(
        `^HOSTILE ort_outside_model ${phase} ${what}: refused \\(SessionError: ${message}`,
        "m",
      ),
    );
  }
  // The scope widening was reported.
  assert.match(
    output,
    /^warning: The default of param "everything" in hostile\.yaml "\/" is not granted: .*--set everything=/m,
  );
  assert.match(
    output,
    /^warning: The folder of the default of param "elsewhere" in hostile\.yaml ".*" is not granted/m,
  );
}

Deno.test("hostile plugins are refused under validate", async () => {
  await withHostileWorkflow(async ({ workflow, secret, env }) => {
    const { code, output } = await launch(["validate", workflow], env);
    assertRefused(output, secret, "import", false);
    assert.equal(code, 0, output);
  });
});

Deno.test("hostile plugins are refused under run, at import and when their nodes run", async () => {
  await withHostileWorkflow(async ({ workflow, secret, env }) => {
    const { code, output } = await launch(["run", workflow, "--plain"], env);
    assertRefused(output, secret, "import", true);
    assertRefused(output, secret, "run", true);
    assert.equal(code, 0, output);
  });
});

Deno.test("hostile plugins are refused under run with the whole ffi permission (provider cuda), which only the session host keeps", async () => {
  await withHostileWorkflow(async ({ workflow, secret, env }) => {
    const { code, output } = await launch(
      ["run", workflow, "--plain", "--set", "provider=cuda"],
      env,
    );
    assertRefused(output, secret, "import", true);
    assertRefused(output, secret, "run", true);
    assert.equal(code, 0, output);
  });
});

Deno.test("a benign plugin still works under run, and videos are saved through the broker", async () => {
  await withTempDir(async (work) => {
    const plugins = ["echo_plugin.ts", "solid_video.ts"].map((name) =>
      `  - ${join(ROOT, "tests", "plugins", name)}`
    );
    const workflow = join(work, "benign.yaml");
    await Deno.writeTextFile(
      workflow,
      [
        "cogflow: 1",
        "name: benign",
        "plugins:",
        ...plugins,
        "params:",
        `  json: { type: output_path, default: ${join(work, "out", "value.json")} }`,
        `  video: { type: output_path, default: ${join(work, "out", "clip.mp4")} }`,
        `  gif: { type: output_path, default: ${join(work, "out", "clip.gif")} }`,
        "nodes:",
        "  echo: { type: write_json, with: { value: { a: 1 }, path: $json } }",
        "  frames: { type: solid_video, with: { frames: 3, size: 8 } }",
        "  mp4: { type: save_video, in: { frames: frames.frames }, with: { path: $video } }",
        "  gif_out: { type: save_video, in: { frames: frames.frames }, with: { path: $gif, contact_sheet: false } }",
        "",
      ].join("\n"),
    );
    const out = join(work, "out");
    await Deno.mkdir(out);
    const { code, output } = await launch(["run", workflow, "--plain"]);
    assert.equal(code, 0, output);
    assert.doesNotMatch(output, /^warning:/m);
    assert.deepEqual(await fileNames(out), [
      "clip.gif",
      "clip.mp4",
      "clip.sheet.png",
      "value.json",
    ]);
    assert.equal(await Deno.readTextFile(join(out, "value.json")), '{"a":1}\n');
    const mp4 = await Deno.readFile(join(out, "clip.mp4"));
    assert.equal(new TextDecoder().decode(mp4.subarray(4, 8)), "ftyp");
    const gif = await Deno.readFile(join(out, "clip.gif"));
    assert.equal(new TextDecoder().decode(gif.subarray(0, 6)), "GIF89a");
  });
});

Deno.test("a plugin that never finishes loading is stopped with a clear error", async () => {
  await withTempDir(async (work) => {
    const workflow = join(work, "loop.yaml");
    await Deno.writeTextFile(
      workflow,
      `cogflow: 1\nname: loop\nplugins: [${join(HOSTILE, "loop_at_import.ts")}]\nnodes: {}\n`,
    );
    const { code, output } = await launch(["validate", workflow], { COGFLOW_PLUGIN_TIMEOUT: "1" });
    assert.equal(code, 2, output);
    assert.match(
      output,
      /Plugin ".*loop_at_import\.ts" did not finish loading within 1 s: set COGFLOW_PLUGIN_TIMEOUT/,
    );
    assertNoStackTrace(output);
  });
});

Deno.test("long arguments reach the CLI without crashing ONNX Runtime's workers", async () => {
  await withTempDir(async (work) => {
    const output = join(work, "long.mp4");
    const result = await launch([
      "run",
      "workflows/tiny.yaml",
      "--set",
      "steps=1",
      "--set",
      `max_memory=${"x".repeat(20_000)}`,
      "--set",
      `output=${output}`,
      "--quiet",
    ]);
    assert.equal(result.code, 0, result.output);
    assert.doesNotMatch(result.output, /overflowed its stack/);
    assert.ok((await Deno.stat(output)).size > 0);
  });
});

Deno.test("the launcher refuses absurd arguments, commas in paths and writes into code clearly", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["validate", "workflows/tiny.yaml", "--set", `prompt=${"x".repeat(110 * 1024)}`],
      /^error: Argument 4 \("prompt=x+\.\.\."\) is 111 KiB: the limit is 100 KiB/m,
    ],
    [
      ["validate", "workflows/tiny.yaml", "--set", "output=/tmp/a,b/v.mp4"],
      /^error: Cannot grant write access to "\/tmp\/a,b" \(--set output\): .*a path with a comma cannot be granted/m,
    ],
    [
      ["validate", "workflows/tiny.yaml", "--set", "output=node_modules/v.mp4"],
      /^error: Cannot grant write access to ".*node_modules" \(--set output\): it is part of cogflow's code/m,
    ],
    [
      ["validate", "workflows/tiny.yaml", "--allow-write", "/"],
      /^error: Cannot grant write access to "\/" \(--allow-write\): it holds cogflow's code/m,
    ],
    [
      ["validate", "workflows/tiny.yaml", "--allow-remote-plugins"],
      /^error: Remote plugins cannot be loaded under the launcher/m,
    ],
  ];
  for (const [args, expected] of cases) {
    const { code, output } = await launch(args);
    assert.equal(code, 2, output);
    assert.match(output, expected);
    assertNoStackTrace(output);
  }
});

Deno.test("bad --set values and deep nesting are reported, never an uncaught exception", async () => {
  await withTempDir(async (work) => {
    const deep = join(work, "deep.yaml");
    let text = "cogflow: 1\nname: deep\nnodes:\n  a:\n";
    for (let depth = 2; depth < 3000; depth++) text += `${"  ".repeat(depth)}a:\n`;
    await Deno.writeTextFile(deep, text);
    const runs = [
      ["validate", "workflows/tiny.yaml", "--set", "seed=[*nope]"],
      ["validate", "workflows/tiny.yaml", "--set", `seed=${"[".repeat(3000)}${"]".repeat(3000)}`],
      ["validate", deep],
    ];
    for (const args of runs) {
      const { code, output } = await launch(args);
      assert.equal(code, 2, output);
      assert.match(output, /^error: /m);
      assert.doesNotMatch(output, /Uncaught/);
      assertNoStackTrace(output);
    }
  });
});
