/**
 * text_encode: token ids to prompt embeddings with the text encoder, for the prompts and, when
 * connected, the negative prompts (each encoded as the pipeline does, in its own call).
 *
 * @module
 */

import { defineNode, formatPortType, tensorPort, UserError } from "../engine/mod.ts";
import { formatShape, type ModelHandle, type Tensor } from "../runtime/mod.ts";
import { modelOfType, modelPort } from "./ports.ts";

/** The text_encode node type. */
export const textEncode = defineNode({
  type: "text_encode",
  version: 1,
  description: "Encodes token ids into prompt embeddings with the text encoder",
  category: "text",
  inputs: {
    model: modelPort("text_encoder").describe("The T5 text encoder"),
    input_ids: tensorPort({ dtype: "int64", rank: 2 }).describe(
      "Token ids [prompts, tokens], from tokenize",
    ),
    negative_input_ids: tensorPort({ dtype: "int64", rank: 2 }).describe(
      "Negative prompt token ids [prompts, tokens], encoded in a call of their own",
    ).optional(),
  },
  settings: {},
  outputs: {
    prompt_embeds: tensorPort({ dtype: "float32", rank: 3 }).describe(
      "Prompt embeddings [prompts, tokens, width]",
    ),
    negative_prompt_embeds: tensorPort({ dtype: "float32", rank: 3 }).describe(
      "Negative prompt embeddings [prompts, tokens, width], when negative_input_ids is connected",
    ).optional(),
  },
  infer(ctx, inputs) {
    const model = modelOfType(inputs.model);
    if (!model) return;
    const source = ctx.source("model");
    const modelName = source ? `${source.node}.${source.port}` : model.name;
    const input = model.signature.inputs[0];
    if (model.signature.inputs.length !== 1 || input.dtype !== "int64") {
      ctx.error(
        `Model "${modelName}" does not look like a text encoder: it takes ${
          model.signature.inputs.map((i) => `${i.name} ${i.dtype}`).join(", ")
        }, expected one int64 input of token ids`,
        { port: "model" },
      );
      return;
    }
    const output = model.signature.outputs[0];
    if (output?.shape && output.shape.length !== 3) {
      ctx.error(
        `Model "${modelName}" does not look like a text encoder: its output ${output.name} is ${
          formatShape(output.shape)
        }, expected [batch, tokens, width]`,
        { port: "model" },
      );
      return;
    }
    const ids = inputs.input_ids?.shape;
    const width = model.signature.outputs[0]?.shape?.[2];
    const type = {
      kind: "tensor",
      dtype: "float32" as const,
      shape: [ids?.[0] ?? null, ids?.[1] ?? null, typeof width === "number" ? width : null],
    };
    if (
      inputs.input_ids?.shape && input.shape && typeof input.shape[1] === "number" &&
      typeof ids?.[1] === "number" && input.shape[1] !== ids[1]
    ) {
      ctx.error(
        `Model "${modelName}" takes sequences of ${input.shape[1]} tokens, but ${
          formatPortType(inputs.input_ids)
        } has ${ids[1]}`,
        { port: "input_ids" },
      );
    }
    return { prompt_embeds: type, negative_prompt_embeds: type };
  },
  async run(ctx, { model, input_ids, negative_input_ids }) {
    const prompt_embeds = await encode(
      ctx.models.run.bind(ctx.models),
      model,
      input_ids,
      ctx.signal,
    );
    const negative_prompt_embeds = negative_input_ids
      ? await encode(ctx.models.run.bind(ctx.models), model, negative_input_ids, ctx.signal)
      : undefined;
    return { prompt_embeds, negative_prompt_embeds };
  },
});

async function encode(
  run: (
    model: ModelHandle,
    feeds: Record<string, Tensor>,
    options: { signal: AbortSignal },
  ) => Promise<Record<string, Tensor>>,
  model: ModelHandle,
  ids: Tensor,
  signal: AbortSignal,
): Promise<Tensor<"float32">> {
  const inputName = model.signature.inputs[0]?.name ?? "input_ids";
  const outputs = await run(model, { [inputName]: ids }, { signal });
  const embeds = outputs[model.signature.outputs[0]?.name ?? "last_hidden_state"] ??
    Object.values(outputs)[0];
  if (!embeds || embeds.dtype !== "float32" || embeds.shape.length !== 3) {
    throw new UserError(
      `Text encoder "${model.name}" returned no float32 [batch, tokens, width] embeddings`,
    );
  }
  return embeds as Tensor<"float32">;
}
