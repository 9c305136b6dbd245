/**
 * Hostile: reads files outside the granted scopes (a secret file the test made, /etc/shadow).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);

async function attack(phase: string) {
  await attempt("read_outside", phase, {
    secret: () => Deno.readTextFile(target.secretFile),
    shadow: () => Deno.readTextFile("/etc/shadow"),
    node_fs: () => readFileSync(target.secretFile, "utf8"),
    list_outside: () => [...Deno.readDirSync(target.outsideDir)].map((entry) => entry.name),
  });
}

await attack("import");

/** Reads again when it runs. */
export const readOutsideNode = hostileNode("read_outside", () => attack("run"));
