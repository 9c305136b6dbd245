/**
 * `cogflow queue`: lists the queue's jobs (waiting, running, done, failed), as a table or JSON,
 * and cancels one with `--cancel ID`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Job, Queue } from "bullmq";
import { escapeControl, quote } from "../engine/mod.ts";
import { type CliIo, EXIT, UsageError } from "../cli/common.ts";
import { QUEUE_HELP } from "../cli/help.ts";
import { formatTable } from "../cli/run_command.ts";
import { cancelRunJob } from "./cancel.ts";
import {
  checkRedis,
  CONNECTION_OPTIONS,
  connectRedis,
  maskUrl,
  queueTarget,
} from "./connection.ts";
import type { JobEvent, JobResult } from "./job_events.ts";
import type { RunJobData } from "./run_job.ts";

/** A job as `cogflow queue --json` lists it. */
export interface JobListing {
  /** The job id (`run-` and a content hash). */
  id: string;
  /** `waiting`, `running`, `done` or `failed`. */
  state: "waiting" | "running" | "done" | "failed";
  /** The workflow's name. */
  name: string;
  /** The workflow's path as submitted. */
  workflow: string;
  /** BullMQ priority (lower runs first; 0: none, before all prioritized jobs). */
  priority: number;
  /** Tries started so far. */
  attempts: number;
  /** Milliseconds since the epoch. */
  submittedAt: number;
  /** When the latest try started. */
  startedAt?: number;
  /** When it ended. */
  finishedAt?: number;
  /** The latest progress: `node step/total`, or the worker that took it. */
  progress?: string;
  /** Files written (done jobs). */
  files?: string[];
  /** The worker that ran it (done jobs). */
  worker?: string;
  /** Why it failed (failed jobs). */
  error?: string;
}

const STATES = [
  ["waiting", ["waiting", "prioritized", "delayed"]],
  ["running", ["active"]],
  ["done", ["completed"]],
  ["failed", ["failed"]],
] as const;

/** Runs `cogflow queue`; returns the exit code. */
export async function queueCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      ...CONNECTION_OPTIONS,
      json: { type: "boolean" },
      cancel: { type: "string", multiple: true },
      limit: { type: "string", default: "50" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(QUEUE_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument ${quote(positionals[0])}: queue takes options only`);
  }
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) {
    throw new UsageError(`Invalid --limit ${quote(values.limit)}: expected a whole number >= 1`);
  }
  const target = queueTarget(values);
  await checkRedis(target.url);
  const redis = connectRedis(target.url);
  const queue = new Queue<RunJobData, JobResult>(target.queue, { connection: redis });
  try {
    if (values.cancel) {
      let code: number = EXIT.ok;
      for (const id of values.cancel) {
        const outcome = await cancelRunJob(queue, redis, id);
        const text = {
          removed: `Job ${id} removed from the queue`,
          cancelling: `Job ${id} is running: its worker stops it at the next step`,
          finished: `Job ${id} has already finished`,
          missing: `No job ${quote(id)} in queue ${quote(target.queue)}`,
        }[outcome];
        if (outcome === "missing") code = EXIT.failed;
        if (values.json) io.stdout.write(`${JSON.stringify({ id, outcome })}\n`);
        else (outcome === "missing" ? io.stderr : io.stdout).write(`${escapeControl(text)}\n`);
      }
      return code;
    }
    const listings: JobListing[] = [];
    for (const [state, kinds] of STATES) {
      const jobs = await queue.getJobs([...kinds], 0, limit - 1, state === "waiting");
      for (const job of jobs) if (job) listings.push(listing(job, state));
    }
    if (values.json) {
      io.stdout.write(`${JSON.stringify(listings, null, 2)}\n`);
      return EXIT.ok;
    }
    io.stdout.write(`queue ${quote(target.queue)} at ${quote(maskUrl(target.url))}\n`);
    if (listings.length === 0) {
      io.stdout.write("no jobs\n");
      return EXIT.ok;
    }
    const rows = listings.map((job) => [
      job.state,
      job.id,
      job.name,
      String(job.priority || "-"),
      String(job.attempts),
      age(job.finishedAt ?? job.startedAt ?? job.submittedAt),
      escapeControl(
        job.error?.split("\n")[0] ?? job.files?.join(", ") ?? job.progress ?? "",
      ),
    ]);
    io.stdout.write(formatTable(["state", "id", "name", "prio", "tries", "since", "detail"], rows));
    return EXIT.ok;
  } finally {
    await queue.close().catch(() => {});
    redis.disconnect();
  }
}

/** A job as listed. */
export function listing(job: Job<RunJobData, JobResult>, state: JobListing["state"]): JobListing {
  const progress = job.progress as unknown as JobEvent | undefined;
  let detail: string | undefined;
  if (progress && typeof progress === "object") {
    if (progress.type === "node_progress") {
      detail = `${progress.node} ${progress.step}/${progress.total}`;
    } else if (progress.type === "job_start") detail = `on ${progress.worker}`;
    else if ("node" in progress && typeof progress.node === "string") {
      detail = `${progress.type.replace("node_", "")} ${progress.node}`;
    }
  }
  return {
    id: job.id!,
    state,
    name: job.data?.name ?? "?",
    workflow: job.data?.workflow ?? "?",
    priority: job.opts.priority ?? 0,
    attempts: job.attemptsStarted ?? job.attemptsMade,
    submittedAt: job.timestamp,
    startedAt: job.processedOn,
    finishedAt: job.finishedOn,
    progress: state === "running" ? detail : undefined,
    files: state === "done" ? job.returnvalue?.files : undefined,
    worker: state === "done" ? job.returnvalue?.worker : undefined,
    error: state === "failed" ? job.failedReason : undefined,
  };
}

function age(time: number): string {
  const seconds = Math.max(0, Math.round((Date.now() - time) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}
