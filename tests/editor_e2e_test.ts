/**
 * End-to-end test of the web editor in a real headless Chromium (Debian's `chromium`, driven by
 * npm `playwright-core` in `editor_e2e_browser.ts`): `cogflow serve` on a copy of the tiny
 * workflow; in the page, change a setting, connect a node, undo and redo, save, run, see progress
 * and the video; then the YAML on disk: comments kept, two lines changed. Needs the page built
 * (`deno task build:web`) and `/usr/bin/chromium` (CI installs both); skipped with a message
 * otherwise. The screenshots are kept in `test-artifacts/`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("../", import.meta.url).pathname;
const CHROMIUM = Deno.env.get("COGFLOW_CHROMIUM") ?? "/usr/bin/chromium";
const ARTIFACTS = join(ROOT, "test-artifacts");
const NEGATIVE_LINE = "      negative_prompt_embeds: encode.negative_prompt_embeds\n";
const SAMPLE_WITH =
  "    with: { steps: $steps, guidance_scale: $guidance_scale, use_dynamic_cfg: $use_dynamic_cfg }";

function missing(): string | undefined {
  try {
    Deno.statSync(CHROMIUM);
  } catch {
    return `chromium not found at ${CHROMIUM} (apt-get install chromium; CI installs it)`;
  }
  try {
    Deno.statSync(join(ROOT, "web/dist/index.html"));
  } catch {
    return "the editor is not built (deno task build:web)";
  }
  return undefined;
}

const skip = missing();
if (skip) console.warn(`editor e2e test skipped: ${skip}`);

/** Starts `cogflow serve dir --port 0`; returns its address and a way to stop it. */
async function serve(dir: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--config",
      join(ROOT, "deno.json"),
      join(ROOT, "mod.ts"),
      "serve",
      dir,
      "--port",
      "0",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/http:\/\/\S+token=\w+/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`cogflow serve exited: ${text}`);
    text += value;
  }
  return {
    url: /http:\/\/\S+token=\w+/.exec(text)![0],
    stop: async () => {
      child.kill("SIGINT");
      await reader.cancel().catch(() => {});
      await child.status;
    },
  };
}

Deno.test({
  name: "the editor opens, edits, saves (comments kept, minimal diff) and runs the tiny workflow",
  ignore: skip !== undefined,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-editor-" });
  const tiny = (await Deno.readTextFile(join(ROOT, "workflows/tiny.yaml")))
    .replace("../tests/fixtures/tiny-cogvideox/2b", join(ROOT, "tests/fixtures/tiny-cogvideox/2b"));
  assert.ok(tiny.includes(NEGATIVE_LINE) && tiny.includes(SAMPLE_WITH));
  // Without the negative prompt's embeddings: the page shows the problem on "sample".
  const original = tiny.replace(NEGATIVE_LINE, "");
  const file = join(dir, "flows", "tiny.yaml");
  await Deno.mkdir(join(dir, "flows"));
  await Deno.writeTextFile(file, original);
  await Deno.mkdir(ARTIFACTS, { recursive: true });

  const server = await serve(dir);
  try {
    // Playwright reads /proc, which Deno grants only with all permissions: a child of its own.
    const browser = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        "--config",
        join(ROOT, "deno.json"),
        join(ROOT, "tests/editor_e2e_browser.ts"),
        server.url,
        ARTIFACTS,
      ],
      stdin: "null",
    }).output();
    const out = new TextDecoder().decode(browser.stdout);
    assert.equal(browser.code, 0, new TextDecoder().decode(browser.stderr));
    assert.match(out.trim().split("\n").at(-1) ?? "", /\.mp4$/);

    // On disk: the setting's line changed and the connection's line added; nothing else.
    const saved = await Deno.readTextFile(file);
    const savedLines = saved.split("\n");
    const originalLines = original.split("\n");
    assert.deepEqual(originalLines.filter((line) => !savedLines.includes(line)), [SAMPLE_WITH]);
    assert.deepEqual(savedLines.filter((line) => !originalLines.includes(line)), [
      NEGATIVE_LINE.trimEnd(),
      SAMPLE_WITH.replace("steps: $steps", "steps: 2"),
    ]);
    assert.equal(savedLines.length, originalLines.length + 1);
    for (const comment of originalLines.filter((line) => line.trim().startsWith("#"))) {
      assert.ok(saved.includes(comment), comment);
    }
    const shot = join(ARTIFACTS, "editor.png");
    assert.ok((await Deno.stat(shot)).size > 10_000);
    console.log(`screenshot: ${shot}`);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
