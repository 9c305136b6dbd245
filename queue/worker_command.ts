/**
 * `cogflow worker`: takes runs from the queue and runs each in a child process through the
 * permission launcher (`cli/launch.ts run <workflow> --json`), with this machine's model folders
 * and caches, republishing the run's events as the job's progress. Outputs go to the job's or the
 * worker's output folder (one every machine mounts). One worker per GPU (`--device N`).
 *
 * A run that fails for a reason of its own (exit 1 or 2: a bad input, an invalid workflow) fails
 * its job for good (BullMQ's `UnrecoverableError`); one that ends any other way (killed, crashed)
 * is a worker fault, retried with backoff. A worker killed outright leaves its job locked until
 * the lock expires; then BullMQ's stall check hands it to another worker.
 *
 * @module
 */

import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import { escapeControl, quote, type WorkflowDocument } from "../engine/mod.ts";
import { formatDuration } from "../cli/reporters.ts";
import { type CliIo, EXIT, UsageError } from "../cli/common.ts";
import { WORKER_HELP } from "../cli/help.ts";
import { cancelChannel, cancelKey } from "./cancel.ts";
import {
  checkRedis,
  CONNECTION_OPTIONS,
  connectRedis,
  maskUrl,
  queueTarget,
} from "./connection.ts";
import type { JobEvent, JobResult } from "./job_events.ts";
import { runJobProcess } from "./job_process.ts";
import { placeJob, type RunJobData } from "./run_job.ts";

/** Default of `--stall-interval`: how long a dead worker's job stays locked (BullMQ's default). */
export const DEFAULT_STALL_INTERVAL_MS = 30_000;

const PROJECT_DIR = dirname(dirname(fileURLToPath(import.meta.url)));

/** Runs `cogflow worker` until Ctrl-C or SIGTERM; returns the exit code. */
export async function workerCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      ...CONNECTION_OPTIONS,
      concurrency: { type: "string", default: "1" },
      provider: { type: "string" },
      device: { type: "string" },
      "output-dir": { type: "string" },
      "stall-interval": { type: "string" },
      name: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    io.stdout.write(WORKER_HELP);
    return EXIT.ok;
  }
  const concurrency = wholeNumber("--concurrency", values.concurrency);
  const stallMs = values["stall-interval"] === undefined
    ? DEFAULT_STALL_INTERVAL_MS
    : wholeNumber("--stall-interval", values["stall-interval"]);
  if (values.provider !== undefined && !["cpu", "cuda"].includes(values.provider)) {
    throw new UsageError(`Unknown --provider ${quote(values.provider)}: expected cpu or cuda`);
  }
  if (values.device !== undefined) wholeNumber("--device", values.device, 0);
  const target = queueTarget(values);
  await checkRedis(target.url);

  const name = values.name ?? `${hostname()}:${Deno.pid}`;
  const root = Deno.cwd();
  const outputDir = values["output-dir"] === undefined
    ? undefined
    : resolve(root, values["output-dir"]);
  const log = (text: string) => io.stderr.write(`${escapeControl(`worker ${name}: ${text}`)}\n`);
  let lastConnectionError = "";
  const onConnectionError = (message: string) => {
    if (message === lastConnectionError) return;
    lastConnectionError = message;
    log(`Redis at ${quote(maskUrl(target.url))}: ${message}: reconnecting`);
  };
  const redis = connectRedis(target.url, onConnectionError);
  redis.on("ready", () => lastConnectionError = "");
  const subscriber = connectRedis(target.url, onConnectionError);

  const cancelled = new Set<string>();
  let stopping = false;
  const runJob = async (job: Job<RunJobData>, token: string | undefined, signal?: AbortSignal) => {
    const id = job.id!;
    const label = `job ${id} (${job.data.name ?? "?"})`;
    if (await redis.get(cancelKey(target.queue, id))) {
      await redis.del(cancelKey(target.queue, id));
      await job.updateProgress(jobEnd(130, "Cancelled")).catch(() => {});
      throw new UnrecoverableError("Cancelled");
    }
    const attempt = job.attemptsMade + 1;
    log(`${label} started (attempt ${attempt})`);
    const started = Date.now();
    let published = Promise.resolve();
    const publish = (event: JobEvent) => {
      published = published.then(() => job.updateProgress(event as object)).catch(() => {});
    };
    publish({ type: "job_start", worker: name, attempt, time: started });
    const placed = await placeJob(id, job.data, { root, outputDir }).catch((error) => {
      throw new UnrecoverableError((error as Error).message);
    });
    let result;
    try {
      result = await runJobProcess(Deno.execPath(), [
        "run",
        `--config=${join(PROJECT_DIR, "deno.json")}`,
        "--allow-read",
        "--allow-env",
        "--allow-run",
        join(PROJECT_DIR, "cli", "launch.ts"),
        "run",
        placed.file,
        "--json",
        ...placed.set.flatMap((argument) => ["--set", argument]),
        ...providerSets(job.data, placed.document, values.provider)
          .flatMap((argument) => ["--set", argument]),
      ], {
        cwd: root,
        env: values.device === undefined ? undefined : { CUDA_VISIBLE_DEVICES: values.device },
        onEvent: publish,
        signal,
      });
    } finally {
      await placed.remove();
    }
    await published;
    const took = formatDuration(Date.now() - started);
    if (stopping && result.exitCode !== EXIT.ok && !cancelled.has(id)) {
      log(`${label} interrupted: back to the queue for another worker`);
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError();
    }
    if (result.exitCode === EXIT.ok) {
      log(`${label} done in ${took}: ${result.files.length} file(s)`);
      return { exitCode: 0, files: result.files, worker: name, durationMs: Date.now() - started };
    }
    const message = result.stderr.trim() || `The run exited with ${result.exitCode}`;
    if (cancelled.delete(id) || result.exitCode === EXIT.interrupted) {
      log(`${label} cancelled`);
      await job.updateProgress(jobEnd(EXIT.interrupted, "Cancelled")).catch(() => {});
      throw new UnrecoverableError("Cancelled");
    }
    if (result.exitCode === EXIT.failed || result.exitCode === EXIT.invalid) {
      log(`${label} failed (exit ${result.exitCode}) in ${took}: ${firstLine(message)}`);
      await job.updateProgress(jobEnd(result.exitCode, message)).catch(() => {});
      throw new UnrecoverableError(message);
    }
    log(`${label}: worker fault (exit ${result.exitCode}), retried if attempts remain`);
    throw new Error(
      `Worker fault on ${name}: the run ended with exit ${result.exitCode}: ${message}`,
    );
  };

  const worker = new Worker<RunJobData, JobResult>(target.queue, runJob, {
    connection: redis,
    concurrency,
    lockDuration: stallMs,
    stalledInterval: stallMs,
    maxStalledCount: 2,
  });
  worker.on("error", (error) => onConnectionError((error as Error).message));
  await subscriber.subscribe(cancelChannel(target.queue));
  subscriber.on("message", (_channel: string, id: string) => {
    if (worker.cancelJob(id, "cancelled")) {
      cancelled.add(id);
      redis.del(cancelKey(target.queue, id)).catch(() => {});
    }
  });
  await worker.waitUntilReady();
  log(
    `taking jobs of queue ${quote(target.queue)} at ${quote(maskUrl(target.url))} ` +
      `(concurrency ${concurrency}${
        values.device !== undefined ? `, device ${values.device}` : ""
      })`,
  );

  const stopped = Promise.withResolvers<void>();
  const onStop = () => {
    if (stopping) Deno.exit(EXIT.interrupted);
    stopping = true;
    log("stopping: running jobs go back to the queue (Ctrl-C again to force)");
    worker.cancelAllJobs("worker stopping");
    stopped.resolve();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, onStop);
  await stopped.promise;
  await worker.close();
  subscriber.disconnect();
  redis.disconnect();
  log("stopped");
  return EXIT.interrupted;
}

/**
 * `--set provider=...` when the worker has a `--provider` and the workflow declares a `provider`
 * param (its header with the variants merged: `document`) that the job did not set.
 */
function providerSets(
  data: RunJobData,
  document: WorkflowDocument | undefined,
  provider: string | undefined,
): string[] {
  if (provider === undefined) return [];
  if (data.set.some((argument) => argument.startsWith("provider="))) return [];
  return document?.params.has("provider") ? [`provider=${provider}`] : [];
}

function jobEnd(exitCode: number, message: string): JobEvent {
  return { type: "job_end", exitCode, message, time: Date.now() };
}

function firstLine(text: string): string {
  return text.split("\n")[0];
}

function wholeNumber(flag: string, value: string, min = 1): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < min) {
    throw new UsageError(`Invalid ${flag} ${quote(value)}: expected a whole number >= ${min}`);
  }
  return number;
}
