/**
 * The browser half of the editor's end-to-end test (tests/editor_e2e_test.ts): drives Debian's
 * Chromium with npm `playwright-core` through the page served at the address given, as a person
 * would: open the tiny workflow, see the problem on its node, change a setting, connect two ports
 * by dragging, undo and redo, save, run, wait for the video. Screenshots go to the folder given.
 *
 * Run with all permissions (playwright reads `/proc`, which Deno grants only with `-A`):
 * `deno run -A tests/editor_e2e_browser.ts <url> <screenshot-folder>`. Exits 0 when every step
 * passed, and prints the video's address as the last line.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";

/** Where Debian's package puts the browser. */
export const CHROMIUM = Deno.env.get("COGFLOW_CHROMIUM") ?? "/usr/bin/chromium";

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

/** Runs the browser steps against `url`; returns the video's address in the page. */
export async function driveEditor(url: string, artifacts: string): Promise<string> {
  const userData = await Deno.makeTempDir({ prefix: "cogflow-chromium-" });
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
    page.setDefaultTimeout(15_000);
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(url);
    const sample = page.locator('.card[data-node="sample"]');
    await sample.waitFor();
    await page.locator('[data-workflow="flows/tiny.yaml"]').waitFor();
    // The validation problem is on the node it belongs to.
    assert.match(await sample.getAttribute("class") ?? "", /has-problems/);
    assert.match(await sample.innerText(), /needs negative_prompt_embeds/);
    await page.screenshot({ path: join(artifacts, "editor-open.png") });

    // Change a setting in the form generated from the node type.
    await sample.click({ position: { x: 60, y: 12 } });
    const steps = page.locator('[data-inspector="sample"] [data-setting="steps"] input');
    await steps.fill("2");
    await steps.press("Enter");
    await page.locator('.card[data-node="sample"] .setting-value', { hasText: /^2$/ }).waitFor();

    // Connect two ports by dragging: the problem goes away.
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

    // Run: progress per node, then the video in the page.
    await page.click('[data-action="run"]');
    await page.locator(".run-panel").waitFor();
    await page.locator('[data-step="sample"]').waitFor();
    await page.locator('.run-panel[data-run-status="ok"]').waitFor({ timeout: 30_000 });
    const video = page.locator("video[data-video]");
    await video.waitFor();
    const src = await video.getAttribute("src") ?? "";
    assert.match(src, /^\/api\/file\?path=.*\.mp4$/);
    assert.match(await page.locator('[data-step="sample"]').innerText(), /done/);
    await page.locator(".memory-report summary").click();
    await page.screenshot({ path: join(artifacts, "editor.png") });
    assert.deepEqual(errors, []);
    return src;
  } finally {
    await context.close();
    await Deno.remove(userData, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const [url, artifacts] = Deno.args;
  console.log(await driveEditor(url, artifacts));
}
