/**
 * What the tests that run workflows on the tiny CogVideoX fixture models share: fixture paths,
 * running the CLI in a child process, running workflow text in this process, and comparing
 * tensors with the reference runs of diffusers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseWorkflow, runWorkflow, type RunWorkflowOptions } from "../api/mod.ts";
import {
  type ExecuteResult,
  formatDiagnostic,
  NodeFailure,
  type RunEvent,
  WorkflowError,
} from "../engine/mod.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { formatShape, maxAbsDiff, type Tensor } from "../runtime/tensor.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** The tiny CogVideoX fixtures (`2b/`, `5b/`, `cases/`, `rng/`). */
export const FIXTURES: string = join(ROOT, "tests", "fixtures", "tiny-cogvideox");

/**
 * The tiny CogVideoX pipelines in the Hugging Face layout (safetensors, no ONNX), with 49-frame
 * reference runs (`2b/`, `5b/`, `cases/`).
 */
export const HF_FIXTURES: string = join(ROOT, "tests", "fixtures", "tiny-cogvideox-hf");

/** The README's tolerance on embeddings, transformer outputs, latents and frames. */
export const TOLERANCE = 1e-4;

/** A path inside the fixtures. */
export function fixture(...parts: string[]): string {
  return join(FIXTURES, ...parts);
}

/** A reference case: its `case.json` and its tensors. */
export interface ReferenceCase {
  /** The parsed `case.json`. */
  // deno-lint-ignore no-explicit-any
  json: any;
  /** `tensors.safetensors`, by name. */
  tensors: Map<string, Tensor>;
  /** The case's tensor file. */
  tensorsPath: string;
}

/**
 * Reads a reference case (`ddim-2b`, `dpm-5b-dynamic-cfg`, `ddim-2b-tiled`; with
 * `root = HF_FIXTURES`: `ddim-2b-49f`, `dpm-5b-49f-nonsquare`).
 */
export async function readCase(name: string, root: string = FIXTURES): Promise<ReferenceCase> {
  const dir = join(root, "cases", name);
  const json = JSON.parse(await Deno.readTextFile(join(dir, "case.json")));
  const tensorsPath = join(dir, "tensors.safetensors");
  const { tensors } = await readSafetensors(tensorsPath);
  return { json, tensors, tensorsPath };
}

/** A reference tensor by name; fails the test when the case has none. */
export function reference(referenceCase: ReferenceCase, name: string): Tensor {
  const tensor = referenceCase.tensors.get(name);
  assert.ok(tensor, `The reference case has no tensor "${name}"`);
  return tensor;
}

/** What a CLI run printed and its exit code. */
export interface CliResult {
  /** Exit code: 0 done, 1 failed while running, 2 invalid workflow or usage. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/**
 * Runs `deno run -A mod.ts <args>` from the repository root, as a user would. `denyRead` lists
 * paths the child may not read (to make a file unreadable even when the tests run as root).
 */
export async function runCli(
  args: readonly string[],
  options: { denyRead?: readonly string[]; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const deny = options.denyRead?.length ? [`--deny-read=${options.denyRead.join(",")}`] : [];
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...deny, join(ROOT, "mod.ts"), ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/**
 * The params of the tiny workflows (`workflows/tiny.yaml`) that reproduce a case's
 * `pipeline_args`, with the case's model variant found under `root`.
 */
export function pipelineParams(
  referenceCase: ReferenceCase,
  root: string = FIXTURES,
): Record<string, unknown> {
  const { json } = referenceCase;
  const args = json.pipeline_args;
  return {
    model: join(root, json.variant),
    prompt: args.prompt,
    negative_prompt: args.negative_prompt,
    seed: args.generator.seed,
    steps: args.num_inference_steps,
    guidance_scale: args.guidance_scale,
    use_dynamic_cfg: args.use_dynamic_cfg ?? false,
    scheduler: json.scheduler_class === "CogVideoXDPMScheduler" ? "dpm" : "ddim",
    height: args.height,
    width: args.width,
    num_frames: args.num_frames,
  };
}

/**
 * `--set` arguments for params. Values are written as JSON, which YAML reads back as written:
 * strings stay strings even when they look like numbers or lists.
 */
export function setArgs(params: Record<string, unknown>): string[] {
  return Object.entries(params).flatMap(([name, value]) => [
    "--set",
    `${name}=${JSON.stringify(value)}`,
  ]);
}

/** Fails unless stderr is free of stack trace lines (`    at ...`). */
export function assertNoStackTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at /m, `Unexpected stack trace in:\n${stderr}`);
}

/** Runs `body` with a fresh temporary folder, removed afterwards. */
export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "cogflow_test_" });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The names of the entries of a folder, sorted. */
export async function fileNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** A run of workflow text in this process, with every event it sent. */
export interface YamlRun {
  /** What `runWorkflow` returned. */
  result: ExecuteResult;
  /** Every event, in order. */
  events: RunEvent[];
}

/**
 * Validates and runs workflow text with the built-in nodes. Relative input paths in the text are
 * resolved against the fixtures folder (`2b/transformer/model.onnx`).
 */
export async function runYaml(
  yaml: string,
  options: RunWorkflowOptions & { params?: Record<string, unknown> } = {},
): Promise<YamlRun> {
  const { params, onEvent, ...runOptions } = options;
  const workflow = await parseWorkflow(yaml, { params, dir: FIXTURES });
  const events: RunEvent[] = [];
  const result = await runWorkflow(workflow, {
    ...runOptions,
    onEvent: (event) => {
      events.push(event);
      onEvent?.(event);
    },
  });
  return { result, events };
}

/** The outputs of one node of a finished run (it must be among the run's targets). */
export function outputsOf(run: YamlRun, node: string): Record<string, unknown> {
  const outputs = run.result.outputs.get(node);
  assert.ok(outputs, `Node "${node}" was not a target of the run`);
  return outputs;
}

/** The validation errors of workflow text, formatted as the CLI prints them. */
export async function validationErrors(
  yaml: string,
  params: Record<string, unknown> = {},
): Promise<string[]> {
  const error = await parseWorkflow(yaml, { params, dir: FIXTURES }).then(
    () => undefined,
    (error) => error,
  );
  assert.ok(error instanceof WorkflowError, `Expected a WorkflowError, got ${error}`);
  return error.diagnostics.map(formatDiagnostic);
}

/** Runs workflow text that must fail while running; returns the failure. */
export async function runFailure(
  yaml: string,
  options: { params?: Record<string, unknown> } = {},
): Promise<NodeFailure> {
  const error = await runYaml(yaml, options).then(() => undefined, (error) => error);
  assert.ok(error instanceof NodeFailure, `Expected a NodeFailure, got ${error}`);
  return error;
}

/** How far a tensor is from its reference. */
export interface TensorError {
  /** Largest absolute difference. */
  maxAbs: number;
  /** `maxAbs` over the largest absolute reference value. */
  relative: number;
}

/** Compares two tensors element by element; their element counts must match. */
export function tensorError(actual: Tensor, expected: Tensor): TensorError {
  assert.equal(
    actual.data.length,
    expected.data.length,
    `Got ${formatShape(actual.shape)}, expected ${formatShape(expected.shape)}`,
  );
  // By element count: diffusers drops the batch dimension of a single video, the workflows keep it.
  const maxAbs = maxAbsDiff(actual.data, expected.data);
  let peak = 0;
  for (const value of expected.data) peak = Math.max(peak, Math.abs(Number(value)));
  return { maxAbs, relative: peak === 0 ? maxAbs : maxAbs / peak };
}

/** Fails unless `actual` is within `tolerance` (absolute) of `expected`; returns the error. */
export function assertClose(
  actual: Tensor,
  expected: Tensor,
  what: string,
  tolerance = TOLERANCE,
): TensorError {
  const error = tensorError(actual, expected);
  assert.ok(
    error.maxAbs <= tolerance,
    `${what}: max abs error ${error.maxAbs} exceeds ${tolerance}`,
  );
  return error;
}

/** Fails unless the two tensors hold exactly the same values (bit for bit for floats). */
export function assertBitEqual(actual: Tensor, expected: Tensor, what: string): void {
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  assert.equal(actual.data.length, expected.data.length, `${what}: element count`);
  const a = new Uint8Array(actual.data.buffer, actual.data.byteOffset, actual.data.byteLength);
  const b = new Uint8Array(
    expected.data.buffer,
    expected.data.byteOffset,
    expected.data.byteLength,
  );
  const first = a.findIndex((byte, index) => byte !== b[index]);
  assert.equal(first, -1, `${what}: differs at byte ${first}`);
}

/** Rows `start` to `end` of a tensor's first dimension, as a tensor sharing its data. */
export function rows(tensor: Tensor, start: number, end = start + 1): Tensor {
  const size = tensor.data.length / tensor.shape[0];
  return {
    dtype: tensor.dtype,
    shape: [end - start, ...tensor.shape.slice(1)],
    data: tensor.data.subarray(start * size, end * size),
  } as Tensor;
}

/** Element `index` of a tensor's first dimension (`[N, B, ...]` to `[B, ...]`), sharing its data. */
export function at(tensor: Tensor, index: number): Tensor {
  const { shape, data } = rows(tensor, index);
  return { dtype: tensor.dtype, shape: shape.slice(1), data } as Tensor;
}

/** The node_log messages of one node and level. */
export function logMessages(events: readonly RunEvent[], node: string, level = "warn"): string[] {
  return events.flatMap((event) =>
    event.type === "node_log" && event.node === node && event.level === level ? [event.message] : []
  );
}

/**
 * Makes a pipeline folder in `dir` that is the fixture `variant` (`2b`, `5b`) with some files
 * replaced (`{ "scheduler/scheduler_config.json": "..." }`, bytes or text) or removed (`null`).
 * Untouched files are symbolic links to the fixture's.
 */
export async function pipelineWith(
  dir: string,
  variant: string,
  changes: Record<string, string | Uint8Array | null>,
): Promise<string> {
  const source = fixture(variant);
  const target = join(dir, variant);
  const link = async (relative: string) => {
    const from = join(source, relative);
    const to = join(target, relative);
    const changed = Object.keys(changes).filter((path) => path.startsWith(`${relative}/`));
    if (Object.hasOwn(changes, relative)) {
      const content = changes[relative];
      if (content === null) return;
      if (typeof content === "string") await Deno.writeTextFile(to, content);
      else await Deno.writeFile(to, content);
    } else if (changed.length === 0) {
      await Deno.symlink(from, to);
    } else {
      await Deno.mkdir(to);
      for await (const entry of Deno.readDir(from)) await link(join(relative, entry.name));
    }
  };
  await Deno.mkdir(target, { recursive: true });
  for await (const entry of Deno.readDir(source)) await link(entry.name);
  return target;
}
