/**
 * Builds the web editor: bundles `web/src/main.tsx` (React, @xyflow/react and the styles) with
 * esbuild into `web/dist/assets/`, and writes `web/dist/index.html`. `deno task build:web` runs it;
 * `cogflow serve` serves the result.
 *
 * @module
 */

import * as esbuild from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const WEB_DIR = dirname(fileURLToPath(import.meta.url));

/** Bundles the editor into `outDir` (default `web/dist`); returns the files written. */
export async function buildWeb(outDir = join(WEB_DIR, "dist")): Promise<string[]> {
  await Deno.mkdir(join(outDir, "assets"), { recursive: true });
  const result = await esbuild.build({
    entryPoints: { app: join(WEB_DIR, "src", "main.tsx") },
    outdir: join(outDir, "assets"),
    bundle: true,
    format: "esm",
    minify: true,
    sourcemap: true,
    target: "es2022",
    jsx: "automatic",
    loader: { ".svg": "text" },
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "warning",
    metafile: true,
  });
  await esbuild.stop();
  const index = await Deno.readTextFile(join(WEB_DIR, "index.html"));
  await Deno.writeTextFile(join(outDir, "index.html"), index);
  return [...Object.keys(result.metafile.outputs), join(outDir, "index.html")];
}

if (import.meta.main) {
  const files = await buildWeb();
  for (const file of files) console.log(`wrote ${file}`);
}
