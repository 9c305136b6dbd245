/**
 * The built-in node types. The engine registers this module like any plugin: every node
 * definition it exports becomes a node type.
 *
 * @module
 */

export { loadModel } from "./load_model.ts";
export { loadPipeline } from "./load_pipeline.ts";
export { loadTensor } from "./load_tensor.ts";
export { loadTokenizer } from "./load_tokenizer.ts";
export { noise } from "./noise.ts";
export { rotaryEmbedding } from "./rotary_embedding.ts";
export { sample } from "./sample.ts";
export { saveTensors } from "./save_tensors.ts";
export { saveVideo } from "./save_video.ts";
export { scheduler } from "./scheduler.ts";
export { textEncode } from "./text_encode.ts";
export { tokenize } from "./tokenize.ts";
export { vaeDecode } from "./vae_decode.ts";
export { budgetOffload } from "./budget_offload.ts";
export { modelOffload } from "./model_offload.ts";
export { sequentialOffload } from "./sequential_offload.ts";
export { vaeSlicing } from "./vae_slicing.ts";
export { vaeTiling } from "./vae_tiling.ts";
