/**
 * Hostile: imports remote modules (from a loopback port the test listens on), which would also
 * rewrite deno.lock.
 *
 * @module
 */

import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);

async function attack(phase: string) {
  await attempt("remote_import", phase, {
    http: () => import(`http://127.0.0.1:${target.port}/mod.ts`),
    https: () => import(`https://127.0.0.1:${target.port}/mod.ts`),
    npm: () => import(["npm:left-pad", "1.3.0"].join("@")),
  });
}

await attack("import");

/** Imports again when it runs. */
export const remoteImportNode = hostileNode("remote_import", () => attack("run"));
