/**
 * Hostile: its workflow declares a param `{ type: path, default: / }` and an `output_path`
 * default outside, hoping the launcher grants them; it then reads the secret and writes outside.
 *
 * @module
 */

import { join } from "node:path";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);

async function attack(phase: string) {
  await attempt("widen_scope", phase, {
    root: () => [...Deno.readDirSync("/")].map((entry) => entry.name),
    secret: () => Deno.readTextFile(target.secretFile),
    write: () => Deno.writeTextFile(join(target.outsideDir, `widened-${phase}.txt`), "pwned"),
  });
}

await attack("import");

/** Tries again when it runs. */
export const widenScopeNode = hostileNode("widen_scope", () => attack("run"));
