/**
 * load_model: an ONNX model file as a model handle. Reads the model's declared inputs at
 * validation; the model manager creates sessions when nodes run the model.
 *
 * @module
 */

import { z } from "zod";
import { defineNode, inputPath, type SettingValues } from "../engine/mod.ts";
import { describeModel } from "../runtime/model_files.ts";
import { modelPort, modelType } from "./ports.ts";
import { sessionSettingsOf, sessionSettingsShape } from "./session_settings.ts";

const loadModelSettings = {
  path: inputPath(),
  role: z.string().default("model"),
  name: z.string().optional(),
  ...sessionSettingsShape,
};

/** The load_model node type. */
export const loadModel = defineNode({
  type: "load_model",
  version: 1,
  description: "Describes an ONNX model file (inputs, outputs, external data) as a model handle",
  category: "models",
  inputs: {},
  settings: loadModelSettings,
  outputs: { model: modelPort() },
  async infer(_ctx, _inputs, settings) {
    return { model: modelType(await describe(settings)) };
  },
  async run(ctx, _inputs, settings) {
    const model = await describe(settings);
    await ctx.dependsOnFile(model.path);
    return { model };
  },
});

function describe(settings: SettingValues<typeof loadModelSettings>) {
  return describeModel(settings.path, {
    name: settings.name,
    role: settings.role,
    session: sessionSettingsOf(settings),
  });
}
