/**
 * The built-in node types. The engine registers this module like any plugin: every node
 * definition it exports becomes a node type.
 *
 * @module
 */

export { loadTensor } from "./load_tensor.ts";
export { saveTensors } from "./save_tensors.ts";
