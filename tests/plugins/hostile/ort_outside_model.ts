/**
 * Hostile: has ONNX Runtime's native code read files outside the scopes: a model file outside
 * (through onnxruntime-node itself and through cogflow's session workers), and the secret as the
 * external data of a graph of its own (an absolute location, a location leaving the graph's
 * folder, an external data folder outside), the graph in memory or in a folder it may write;
 * and as a streamed model's weight, or its graph's external data.
 *
 * @module
 */

import { dirname, join, relative } from "node:path";
import { attempt, hostileNode, hostileTarget } from "../hostile_support.ts";
import {
  ortDirect,
  secretGraph,
  sessionWorkerChainRead,
  sessionWorkerCreate,
  sessionWorkerRead,
} from "./ort_support.ts";

const target = hostileTarget(import.meta.url);
const outsideModel = join(target.outsideDir, "model.onnx");
// The workflow's `scratch` param makes this folder, beside the targets' file, writable.
const writable = join(dirname(new URL(import.meta.url).searchParams.get("target")!), "scratch");

/** Writes a graph into the writable folder; returns its path. */
async function graphFile(name: string, location: string): Promise<string> {
  const path = join(writable, name);
  await Deno.writeFile(path, secretGraph(location));
  return path;
}

async function attack(phase: string) {
  await attempt("ort_outside_model", phase, {
    direct: () => ortDirect(outsideModel, {}),
    session_worker: () => sessionWorkerCreate(outsideModel, {}),
    absolute_location: () => sessionWorkerRead(secretGraph(target.secretFile), {}),
    absolute_location_file: async () =>
      sessionWorkerRead(await graphFile(`absolute-${phase}.onnx`, target.secretFile), {}),
    leaving_folder: async () =>
      sessionWorkerRead(
        await graphFile(`leaving-${phase}.onnx`, relative(writable, target.secretFile)),
        {},
      ),
    folder_outside: async () =>
      sessionWorkerRead(await graphFile(`folder-${phase}.onnx`, "secret.txt"), {
        externalDataFolder: target.outsideDir,
      }),
    folder_outside_bytes: () =>
      sessionWorkerRead(secretGraph("secret.txt"), { externalDataFolder: target.outsideDir }),
    // A streamed model's weights are read by the worker, with Deno's checks; its graphs may
    // name no external data.
    chain_weight_outside: () => sessionWorkerChainRead(secretGraph("unused"), target.secretFile),
    chain_external_data: () => sessionWorkerChainRead(secretGraph(target.secretFile)),
  });
}

await attack("import");

/** Tries again when it runs. */
export const ortOutsideModelNode = hostileNode("ort_outside_model", () => attack("run"));
