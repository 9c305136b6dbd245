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
  path: inputPath().describe("The .onnx model file (relative to the workflow's folder)"),
  role: z.string().default("model").describe(
    "What the model is for, e.g. transformer, vae or text_encoder: a port asking for a role takes only that role (default model)",
  ),
  name: z.string().optional().describe(
    "Name in messages (default: the folder's name for a model.onnx, else the file name without .onnx)",
  ),
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
  outputs: {
    model: modelPort().describe(
      "The model: its file, declared inputs and outputs, config.json beside it and session settings",
    ),
  },
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
