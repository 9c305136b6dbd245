/**
 * Whether an ONNX graph computes attention with a fused operator (`MultiHeadAttention`,
 * `Attention`, ...), which does not hold the `[batch, heads, seq, seq]` scores at once, or with
 * `MatMul`, `Softmax`, `MatMul`, as `torch.onnx.export` writes diffusers' attention, which does;
 * and the query chunk of a graph that attends in chunks (builders/cogvideox_transformer.ts
 * `attentionQueryChunk`). On the CPU, ONNX Runtime's `MultiHeadAttention` may hold `[batch,
 * heads, queries, seq]` probabilities ({@link attentionKindOf}). Read from the node list of the
 * main graph without decoding weights.
 *
 * @module
 */

import { FileSource, readFields, readValue, WIRE_LENGTH } from "./protobuf_wire.ts";
import type { ExecutionProvider } from "./model_handle.ts";
import type { AttentionKind } from "./run_estimate.ts";

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
const NODE_NAME = 3;
const NODE_OP_TYPE = 4;

/** What a graph's attention operators are. */
export interface AttentionScan {
  /** A fused attention operator is there. */
  fused: boolean;
  /**
   * Query rows per call when the graph attends in chunks: its attention nodes are under
   * `attention_query_chunk_<rows>` (builders/cogvideox_transformer.ts `attentionQueryChunk`).
   */
  queryChunk?: number;
}

const known = new Map<string, Promise<AttentionScan>>();
const CHUNK_SCOPE = /(?:^|[./])attention_query_chunk_(\d+)\//;

/**
 * True when the model's main graph has a fused attention operator. `key` identifies the file's
 * version for the cache (a model handle's fingerprint). Unreadable files count as unfused.
 */
export async function usesFusedAttention(path: string, key = ""): Promise<boolean> {
  return (await scanAttention(path, key)).fused;
}

/**
 * The model's attention operators: fused or not, and the query chunk when it attends in chunks.
 * `key` as for {@link usesFusedAttention}; unreadable files count as unfused.
 */
export function scanAttention(path: string, key = ""): Promise<AttentionScan> {
  const id = `${path}|${key}`;
  let found = known.get(id);
  if (!found) {
    found = scan(path).catch(() => ({ fused: false }));
    known.set(id, found);
  }
  return found;
}

async function scan(path: string): Promise<AttentionScan> {
  const source = await FileSource.open(path);
  try {
    for await (const field of readFields(source)) {
      if (field.field !== MODEL_GRAPH || field.wireType !== WIRE_LENGTH) continue;
      for await (const entry of readFields(source, field.valueStart, field.end)) {
        if (entry.field !== GRAPH_NODE || entry.wireType !== WIRE_LENGTH) continue;
        let name = "";
        for await (const part of readFields(source, entry.valueStart, entry.end)) {
          if (part.wireType !== WIRE_LENGTH) continue;
          if (part.field === NODE_NAME) {
            name = new TextDecoder().decode(await readValue(source, part));
          }
          if (part.field !== NODE_OP_TYPE) continue;
          // Nodes have their name before their op type. A chunked attention's operators are in
          // a Loop body: the nodes around it are named for the chunk.
          const chunk = CHUNK_SCOPE.exec(name);
          if (chunk) return { fused: true, queryChunk: Number(chunk[1]) };
          const opType = new TextDecoder().decode(await readValue(source, part));
          if (FUSED_ATTENTION_OPS.has(opType)) return { fused: true };
        }
      }
    }
    return { fused: false };
  } finally {
    source.close();
  }
}

/**
 * How a scanned graph's attention counts in the memory estimate on `provider`: a fused operator
 * is fused on CUDA. On the CPU, ONNX Runtime's `MultiHeadAttention` runs its flash path when it
 * knows the L2 cache size (x86 Linux, unless ORT_DISABLE_FLASH_ATTENTION is set) and otherwise
 * holds `[batch, heads, queries, sequence]` probabilities: a graph cogflow chunked by query rows
 * counts those of one chunk (what it holds either way, at most), an unchunked one counts as fused,
 * since estimates must not refuse a run that fits.
 */
export function attentionKindOf(
  scan: AttentionScan,
  provider: ExecutionProvider,
): { attention: AttentionKind; attentionQueryChunk?: number } {
  if (!scan.fused) return { attention: "unfused" };
  if (provider === "cuda" || scan.queryChunk === undefined) return { attention: "fused" };
  return { attention: "unfused", attentionQueryChunk: scan.queryChunk };
}
