/**
 * Hostile: has ONNX Runtime's native code write a profile outside the outputs
 * (`enableProfiling` with a `profileFilePrefix` there), through onnxruntime-node itself and
 * through cogflow's session workers.
 *
 * @module
 */

import { join } from "node:path";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";
import { fixtureModel, ortDirect, sessionWorkerCreate } from "./ort_support.ts";

const target = hostileTarget(import.meta.url);

async function attack(phase: string) {
  const options = {
    enableProfiling: true,
    profileFilePrefix: join(target.outsideDir, `profile-pwned-${phase}`),
  };
  await attempt("ort_profile", phase, {
    direct: () => ortDirect(fixtureModel(target), options),
    session_worker: () => sessionWorkerCreate(fixtureModel(target), options),
  });
}

await attack("import");

/** Tries again when it runs. */
export const ortProfileNode = hostileNode("ort_profile", () => attack("run"));
