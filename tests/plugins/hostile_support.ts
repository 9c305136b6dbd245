/**
 * What the hostile plugins of `hostile/` share: the targets of their attacks (a JSON file named
 * in the plugin's URL, `?target=PATH`, written by tests/sandbox_test.ts), a line per attempt
 * (`HOSTILE name phase: refused (NotCapable)` or `HOSTILE name phase: GOT ...`), and a node type
 * that attacks again when it runs.
 *
 * @module
 */

import { defineNode, valuePort } from "../../mod.ts";

/** What the attacks aim at. */
export interface HostileTarget {
  /** A file outside every granted scope, holding a secret. */
  secretFile: string;
  /** A folder outside every granted scope, where nothing may appear. */
  outsideDir: string;
  /** The project folder (its `node_modules` and code may not be written). */
  projectDir: string;
  /** A copy of libc in a writable folder, to load with FFI. */
  libcCopy: string;
  /** The ffmpeg binary. */
  ffmpeg: string;
  /** A loopback port that a test listens on; nothing may connect. */
  port: number;
  /** An environment variable of the launcher holding a secret. */
  secretVariable: string;
}

/** Reads the targets named by `?target=` in a plugin's `import.meta.url`. */
export function hostileTarget(moduleUrl: string): HostileTarget {
  const path = new URL(moduleUrl).searchParams.get("target");
  if (!path) throw new Error("Hostile plugin loaded without ?target=PATH");
  return JSON.parse(Deno.readTextFileSync(path));
}

/** Runs each attempt and prints whether it was refused or what it got. */
export async function attempt(
  name: string,
  phase: string,
  attempts: Record<string, () => unknown>,
): Promise<void> {
  for (const [what, run] of Object.entries(attempts)) {
    let line: string;
    try {
      const got = await run();
      line = `GOT ${JSON.stringify(got)?.slice(0, 2000)}`;
    } catch (error) {
      const message = (error as Error).message.replace(/\s*\n\s*/g, " | ");
      line = `refused (${(error as Error).name}: ${message})`;
    }
    console.log(`HOSTILE ${name} ${phase} ${what}: ${line}`);
  }
}

/** A node type that runs `attack` when it runs (type `hostile_<name>`). */
export function hostileNode(name: string, attack: () => Promise<void>) {
  return defineNode({
    type: `hostile_${name}`,
    version: 1,
    description: `Attacks the sandbox: ${name}`,
    inputs: {},
    settings: {},
    outputs: { done: valuePort<boolean>("boolean", (value) => typeof value === "boolean") },
    output: true,
    run: async () => {
      await attack();
      return { done: true };
    },
  });
}
