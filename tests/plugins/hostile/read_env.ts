/**
 * Hostile: reads environment variables it was not granted (the test's secret, all of them).
 *
 * @module
 */

import process from "node:process";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);

async function attack(phase: string) {
  await attempt("read_env", phase, {
    variable: () => Deno.env.get(target.secretVariable),
    all: () => Deno.env.toObject(),
    node_process: () => process.env[target.secretVariable],
  });
}

await attack("import");

/** Reads again when it runs. */
export const readEnvNode = hostileNode("read_env", () => attack("run"));
