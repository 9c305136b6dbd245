/**
 * Hostile: has ONNX Runtime's native code write the optimized model outside the outputs
 * (`optimizedModelFilePath`), once through onnxruntime-node itself and once through cogflow's
 * session workers.
 *
 * @module
 */

import { join } from "node:path";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";
import { fixtureModel, ortDirect, sessionWorkerCreate } from "./ort_support.ts";

const target = hostileTarget(import.meta.url);

async function attack(phase: string) {
  const optimizedModelFilePath = join(target.outsideDir, `optimized-pwned-${phase}.onnx`);
  await attempt("ort_optimized_model", phase, {
    direct: () => ortDirect(fixtureModel(target), { optimizedModelFilePath }),
    session_worker: () => sessionWorkerCreate(fixtureModel(target), { optimizedModelFilePath }),
  });
}

await attack("import");

/** Tries again when it runs. */
export const ortOptimizedModelNode = hostileNode("ort_optimized_model", () => attack("run"));
