/**
 * End-to-end test of the web editor in a real headless Chromium (Debian's `chromium`, driven by
 * npm `playwright-core`): `cogflow serve` on a copy of the tiny workflow, open it, change a setting,
 * connect a node, undo and redo, save, check the YAML on disk, run it, see progress and the video.
 * Needs the page built (`deno task build:web`) and `/usr/bin/chromium` (CI installs both); skipped
 * with a message otherwise. The screenshots are kept in `test-artifacts/`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";

const ROOT = new URL("../", import.meta.url).pathname;
const CHROMIUM = Deno.env.get("COGFLOW_CHROMIUM") ?? "/usr/bin/chromium";
const ARTIFACTS = join(ROOT, "test-artifacts");
const NEGATIVE_LINE = "      negative_prompt_embeds: encode.negative_prompt_embeds\n";

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
  const url = /http:\/\/\S+token=\w+/.exec(text)![0];
  return {
    url,
    stop: async () => {
      child.kill("SIGINT");
      await reader.cancel().catch(() => {});
      await child.status;
    },
  };
}

/** Drags from one handle to another with the mouse, as a person connects ports. */
async function drag(page: Page, from: string, to: string): Promise<void> {
  const a = (await page.locator(from).boundingBox())!;
  const b = (await page.locator(to).boundingBox())!;
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2 + 10, { steps: 5 });
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 5 });
  await page.mouse.up();
}

Deno.test({
  name: "the editor opens, edits, saves (comments kept, minimal diff) and runs the tiny workflow",
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "cogflow-editor-" });
  const userData = await Deno.makeTempDir({ prefix: "cogflow-chromium-" });
  const tiny = (await Deno.readTextFile(join(ROOT, "workflows/tiny.yaml")))
    .replace("../tests/fixtures/tiny-cogvideox/2b", join(ROOT, "tests/fixtures/tiny-cogvideox/2b"));
  assert.ok(tiny.includes(NEGATIVE_LINE));
  // Without the negative prompt's embeddings: the editor shows the problem on "sample".
  const original = tiny.replace(NEGATIVE_LINE, "");
  const file = join(dir, "flows", "tiny.yaml");
  await Deno.mkdir(join(dir, "flows"));
  await Deno.writeTextFile(file, original);
  await Deno.mkdir(ARTIFACTS, { recursive: true });

  const server = await serve(dir);
  const context = await chromium.launchPersistentContext(userData, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1600, height: 1000 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(server.url);
    const sample = page.locator('.card[data-node="sample"]');
    await sample.waitFor();
    await page.locator('[data-workflow="flows/tiny.yaml"]').waitFor();
    // The validation problem is on the node it belongs to.
    assert.match(await sample.getAttribute("class") ?? "", /has-problems/);
    assert.match(await sample.innerText(), /needs negative_prompt_embeds/);
    await page.screenshot({ path: join(ARTIFACTS, "editor-open.png") });

    // Change a setting in the form generated from the node type.
    await sample.click({ position: { x: 60, y: 12 } });
    const steps = page.locator('[data-inspector="sample"] [data-setting="steps"] input');
    await steps.fill("2");
    await steps.press("Enter");
    await page.locator('.card[data-node="sample"] .setting-value', { hasText: /^2$/ }).waitFor();

    // Connect a port by dragging: the problem goes away.
    const from =
      '.react-flow__handle[data-nodeid="encode"][data-handleid="negative_prompt_embeds"]';
    const to = '.react-flow__handle[data-nodeid="sample"][data-handleid="negative_prompt_embeds"]';
    await drag(page, from, to);
    await page.locator('.status-pill[data-problems="0"]').waitFor();
    // Undo and redo the connection.
    await page.click('[data-action="undo"]');
    await page.locator('.status-pill[data-problems="1"]').waitFor();
    await page.click('[data-action="redo"]');
    await page.locator('.status-pill[data-problems="0"]').waitFor();

    await page.click('[data-action="save"]');
    await page.locator(".dirty").waitFor({ state: "detached" });
    const saved = await Deno.readTextFile(file);
    // Two lines changed, every comment kept.
    const savedLines = saved.split("\n");
    const originalLines = original.split("\n");
    const removed = originalLines.filter((line) => !savedLines.includes(line));
    const added = savedLines.filter((line) => !originalLines.includes(line));
    assert.deepEqual(removed, [
      "    with: { steps: $steps, guidance_scale: $guidance_scale, use_dynamic_cfg: $use_dynamic_cfg }",
    ]);
    assert.deepEqual(added, [
      NEGATIVE_LINE.trimEnd(),
      "    with: { steps: 2, guidance_scale: $guidance_scale, use_dynamic_cfg: $use_dynamic_cfg }",
    ]);
    for (const comment of original.split("\n").filter((line) => line.trim().startsWith("#"))) {
      assert.ok(saved.includes(comment), comment);
    }

    // Run: progress per node, then the video in the page.
    await page.click('[data-action="run"]');
    await page.locator(".run-panel").waitFor();
    await page.locator('[data-step="sample"]').waitFor();
    await page.locator('.run-panel[data-run-status="ok"]').waitFor({ timeout: 30_000 });
    const video = page.locator("video[data-video]");
    await video.waitFor();
    assert.match(await video.getAttribute("src") ?? "", /^\/api\/file\?path=.*\.mp4$/);
    assert.match(await page.locator('[data-step="sample"]').innerText(), /done/);
    await page.locator(".memory-report summary").click();
    const shot = join(ARTIFACTS, "editor.png");
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot}`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await server.stop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(userData, { recursive: true }).catch(() => {});
  }
});
