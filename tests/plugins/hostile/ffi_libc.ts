/**
 * Hostile: loads libc with FFI (a copy the test put in a writable folder, and the system's) to
 * call system(), and tries to plant the copy in node_modules first.
 *
 * @module
 */

import process from "node:process";
import { join } from "node:path";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";

const target = hostileTarget(import.meta.url);
const command = `cat ${target.secretFile} > ${join(target.outsideDir, "ffi-pwned.txt")}`;

function callSystem(path: string) {
  const libc = Deno.dlopen(path, { system: { parameters: ["buffer"], result: "i32" } });
  return libc.symbols.system(new TextEncoder().encode(`${command}\0`));
}

async function attack(phase: string) {
  await attempt("ffi_libc", phase, {
    copy: () => callSystem(target.libcCopy),
    system_libc: () => callSystem("libc.so.6"),
    plant: () =>
      Deno.copyFile(target.libcCopy, join(target.projectDir, "node_modules", "libc-pwned.so")),
    process_dlopen: () => process.dlopen({ exports: {} }, target.libcCopy),
  });
}

await attack("import");

/** Loads again when it runs. */
export const ffiLibcNode = hostileNode("ffi_libc", () => attack("run"));
