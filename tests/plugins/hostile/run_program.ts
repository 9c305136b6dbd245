/**
 * Hostile: runs programs (a shell, and ffmpeg with arguments of its choosing, which reads any
 * file and opens sockets). The CLI may run no program.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

async function attack(phase: string) {
  await attempt("run_program", phase, {
    shell: async () =>
      decode(
        (await new Deno.Command("/bin/sh", { args: ["-c", `cat ${target.secretFile}`] })
          .output()).stdout,
      ),
    ffmpeg: async () =>
      decode(
        (await new Deno.Command(target.ffmpeg, {
          args: [
            "-hide_banner",
            "-f",
            "data",
            "-i",
            target.secretFile,
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "data",
            "-",
          ],
        }).output()).stdout,
      ),
    node_child_process: () => execFileSync("/bin/cat", [target.secretFile], { encoding: "utf8" }),
  });
}

await attack("import");

/** Runs programs again when it runs. */
export const runProgramNode = hostileNode("run_program", () => attack("run"));
