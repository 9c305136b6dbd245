/**
 * Whether an ONNX graph computes attention with a fused operator (`MultiHeadAttention`,
 * `Attention`, ...), which does not hold the `[batch, heads, seq, seq]` scores at once, or with
 * `MatMul`, `Softmax`, `MatMul`, as `torch.onnx.export` writes diffusers' attention, which does.
 * Read from the node list of the main graph without decoding weights.
 *
 * @module
 */

import { FileSource, readFields, readValue, WIRE_LENGTH } from "./protobuf_wire.ts";

/** Operators that compute attention without materializing the scores (ONNX and com.microsoft). */
export const FUSED_ATTENTION_OPS: ReadonlySet<string> = new Set([
  "Attention",
  "MultiHeadAttention",
  "GroupQueryAttention",
  "PackedAttention",
  "PackedMultiHeadAttention",
  "SparseAttention",
]);

const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const NODE_OP_TYPE = 4;

const known = new Map<string, Promise<boolean>>();

/**
 * True when the model's main graph has a fused attention operator. `key` identifies the file's
 * version for the cache (a model handle's fingerprint). Unreadable files count as unfused.
 */
export function usesFusedAttention(path: string, key = ""): Promise<boolean> {
  const id = `${path}|${key}`;
  let found = known.get(id);
  if (!found) {
    found = scan(path).catch(() => false);
    known.set(id, found);
  }
  return found;
}

async function scan(path: string): Promise<boolean> {
  const source = await FileSource.open(path);
  try {
    for await (const field of readFields(source)) {
      if (field.field !== MODEL_GRAPH || field.wireType !== WIRE_LENGTH) continue;
      for await (const entry of readFields(source, field.valueStart, field.end)) {
        if (entry.field !== GRAPH_NODE || entry.wireType !== WIRE_LENGTH) continue;
        for await (const part of readFields(source, entry.valueStart, entry.end)) {
          if (part.field !== NODE_OP_TYPE || part.wireType !== WIRE_LENGTH) continue;
          const opType = new TextDecoder().decode(await readValue(source, part));
          if (FUSED_ATTENTION_OPS.has(opType)) return true;
        }
      }
    }
    return false;
  } finally {
    source.close();
  }
}
