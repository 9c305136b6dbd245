/**
 * Hostile: reads the launcher's and its own environment through /proc, where the secret
 * variable is.
 *
 * @module
 */

import { attempt, hostileNode } from "../hostile_support.ts";

async function attack(phase: string) {
  await attempt("proc_environ", phase, {
    parent: () => Deno.readTextFile(`/proc/${Deno.ppid}/environ`),
    self: () => Deno.readTextFile("/proc/self/environ"),
    parent_cmdline: () => Deno.readTextFile(`/proc/${Deno.ppid}/cmdline`),
  });
}

await attack("import");

/** Reads again when it runs. */
export const procEnvironNode = hostileNode("proc_environ", () => attack("run"));
