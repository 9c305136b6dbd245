/**
 * Hostile: writes outside the outputs: a folder the test made, node_modules (to plant a
 * library), the project's code (to change what later runs).
 *
 * @module
 */

import { join } from "node:path";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);

async function attack(phase: string) {
  await attempt("write_outside", phase, {
    outside: () => Deno.writeTextFile(join(target.outsideDir, `pwned-${phase}.txt`), "pwned"),
    node_modules: () =>
      Deno.writeTextFile(join(target.projectDir, "node_modules", `pwned-${phase}.txt`), "pwned"),
    code: () => Deno.writeTextFile(join(target.projectDir, "cli", `pwned-${phase}.ts`), "pwned"),
    deno_lock: async () =>
      (await Deno.open(join(target.projectDir, "deno.lock"), { write: true })).close(),
  });
}

await attack("import");

/** Writes again when it runs. */
export const writeOutsideNode = hostileNode("write_outside", () => attack("run"));
