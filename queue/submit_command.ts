/**
 * `cogflow submit`: validates a run here (a bad workflow never reaches the queue), then queues it
 * under an id derived from its content, so the same run submitted twice is one job. With
 * `--wait` it shows the job's progress as `cogflow run` shows a run, prints the files written and
 * exits with the run's exit code; Ctrl-C then cancels the job.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type Job, Queue, QueueEvents } from "bullmq";
import type { Redis } from "ioredis";
import { loadWorkflow } from "../api/mod.ts";
import { escapeControl, quote, type RunEvent } from "../engine/mod.ts";
import { type CliIo, EXIT, UsageError, WORKFLOW_OPTIONS } from "../cli/common.ts";
import { SUBMIT_HELP } from "../cli/help.ts";
import { JsonReporter, PlainReporter, type Reporter, TerminalReporter } from "../cli/reporters.ts";
import { cancelKey, cancelRunJob } from "./cancel.ts";
import {
  checkRedis,
  CONNECTION_OPTIONS,
  connectRedis,
  maskUrl,
  queueTarget,
} from "./connection.ts";
import { DEFAULT_ATTEMPTS, type JobEvent, type JobResult, RETRY_DELAY_MS } from "./job_events.ts";
import { paramsFileSets, type RunJobData, runJobFor } from "./run_job.ts";

/** Highest BullMQ priority number (the lowest priority). */
export const MAX_PRIORITY = 2_097_152;

/** Runs `cogflow submit`; returns the exit code (the run's with `--wait`). */
export async function submitCommand(args: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      ...WORKFLOW_OPTIONS,
      ...CONNECTION_OPTIONS,
      params: { type: "string" },
      priority: { type: "string" },
      attempts: { type: "string" },
      "output-dir": { type: "string" },
      wait: { type: "boolean" },
      json: { type: "boolean" },
      plain: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    io.stdout.write(SUBMIT_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError("submit needs exactly one workflow file");
  const priority = values.priority === undefined
    ? undefined
    : wholeNumber("--priority", values.priority, MAX_PRIORITY);
  const attempts = values.attempts === undefined
    ? DEFAULT_ATTEMPTS
    : wholeNumber("--attempts", values.attempts, 100);
  const target = queueTarget(values);
  const file = positionals[0];
  const set = [
    ...(values.params === undefined ? [] : await paramsFileSets(values.params)),
    ...(values.set ?? []),
  ];
  const workflow = await loadWorkflow(file, { set, allowRemotePlugins: false });
  const { id, data } = await runJobFor(file, workflow, { set, outputDir: values["output-dir"] });

  await checkRedis(target.url);
  const redis = connectRedis(target.url);
  const queue = new Queue<RunJobData, JobResult>(target.queue, { connection: redis });
  const eventsRedis = values.wait ? connectRedis(target.url) : undefined;
  try {
    // Events from this point on: none of the job's can be missed between queueing and listening.
    const lastEventId = eventsRedis ? await lastStreamId(redis, target.queue) : undefined;
    const events = eventsRedis
      ? new QueueEvents(target.queue, { connection: eventsRedis, lastEventId })
      : undefined;
    const { job, state, note } = await enqueueRun(queue, redis, id, data, { priority, attempts });
    const where = `queue ${quote(target.queue)} at ${quote(maskUrl(target.url))}`;
    if (!values.json || values.wait) io.stderr.write(`${escapeControl(`${note} (${where})`)}\n`);
    if (!values.wait) {
      io.stdout.write(values.json ? `${JSON.stringify({ id, state })}\n` : `${id}\n`);
      return EXIT.ok;
    }
    return await waitForJob(job, events!, { queue, redis, io, values });
  } finally {
    await queue.close().catch(() => {});
    redis.disconnect();
    eventsRedis?.disconnect();
  }
}

/** Queues the job unless it exists; a failed one is queued again, a done one left as it is. */
export async function enqueueRun(
  queue: Queue<RunJobData, JobResult>,
  redis: Redis,
  id: string,
  data: RunJobData,
  options: { priority?: number; attempts: number },
): Promise<{ job: Job<RunJobData, JobResult>; state: string; note: string }> {
  const existing = await queue.getJob(id);
  if (existing) {
    const state = await existing.getState();
    if (state === "failed") {
      await redis.del(cancelKey(queue.name, id));
      await existing.retry("failed");
      return { job: existing, state: "waiting", note: `Job ${id} had failed: queued again` };
    }
    return { job: existing, state, note: `Job ${id} is already in the queue (${state})` };
  }
  await redis.del(cancelKey(queue.name, id));
  const job = await queue.add("run", data, {
    jobId: id,
    priority: options.priority,
    attempts: options.attempts,
    backoff: { type: "exponential", delay: RETRY_DELAY_MS },
    removeOnComplete: { age: 7 * 24 * 3600 },
    removeOnFail: { age: 30 * 24 * 3600 },
  });
  return { job, state: "waiting", note: `Queued job ${id} (${data.name})` };
}

/** Shows the job's progress until it ends; returns the run's exit code. */
async function waitForJob(
  job: Job<RunJobData, JobResult>,
  events: QueueEvents,
  context: {
    queue: Queue<RunJobData, JobResult>;
    redis: Redis;
    io: CliIo;
    values: { json?: boolean; quiet?: boolean; plain?: boolean };
  },
): Promise<number> {
  const { queue, redis, io, values } = context;
  const id = job.id!;
  const reporter: Reporter | undefined = values.json
    ? new JsonReporter(io.stdout)
    : values.quiet
    ? undefined
    : io.stderrIsTerminal && !values.plain
    ? new TerminalReporter(io.stderr, { columns: io.columns })
    : new PlainReporter(io.stderr);
  const note = (text: string) => {
    if (values.json) return;
    if (reporter) reporter.note(text);
    else io.stderr.write(`${escapeControl(text)}\n`);
  };
  let exitCode = EXIT.failed as number;
  const finished = Promise.withResolvers<void>();
  events.on("progress", ({ jobId, data }) => {
    if (jobId !== id) return;
    const event = data as unknown as JobEvent;
    if (event.type === "job_start") {
      note(`job ${id} started on worker ${event.worker} (attempt ${event.attempt})`);
    } else if (event.type === "job_end") {
      exitCode = event.exitCode;
    } else {
      reporter?.handle(event as RunEvent);
    }
  });
  // A failure that will be retried is no end: the job's state says.
  const check = async () => {
    const state = await job.getState().catch(() => "unknown");
    if (state === "completed" || state === "failed" || state === "unknown") finished.resolve();
  };
  for (const name of ["completed", "failed", "removed"] as const) {
    events.on(name, ({ jobId }: { jobId: string }) => jobId === id && check());
  }
  await events.waitUntilReady();

  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts > 1) Deno.exit(EXIT.interrupted);
    note("Interrupting: cancelling the job (Ctrl-C again to leave it)");
    cancelRunJob(queue, redis, id).then((outcome) => {
      if (outcome === "removed") finished.resolve();
    }).catch(() => {});
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  // Events are the fast path; the job's state is checked too, for a job that ended meanwhile.
  const poll = setInterval(check, 2000);
  try {
    const state = await job.getState();
    if (state !== "completed" && state !== "failed" && state !== "unknown") await finished.promise;
  } finally {
    clearInterval(poll);
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await events.close().catch(() => {});
    reporter?.close();
  }

  const ended = await queue.getJob(id);
  const state = ended ? await ended.getState() : "unknown";
  if (state === "completed") {
    const result = ended!.returnvalue;
    if (!values.json) {
      for (const file of result?.files ?? []) io.stdout.write(`wrote ${escapeControl(file)}\n`);
    }
    return result?.exitCode ?? EXIT.ok;
  }
  if (!ended || state === "unknown") {
    if (!values.json) io.stderr.write(`Job ${id} was removed from the queue\n`);
    return interrupts > 0 ? EXIT.interrupted : EXIT.failed;
  }
  const progress = ended.progress as unknown as JobEvent | undefined;
  if (progress && typeof progress === "object" && progress.type === "job_end") {
    exitCode = progress.exitCode;
  }
  const reason = ended.failedReason ?? "failed";
  if (reason === "Cancelled") {
    if (!values.json) io.stderr.write(`Job ${id} cancelled\n`);
    return EXIT.interrupted;
  }
  io.stderr.write(reason.endsWith("\n") ? reason : `${reason}\n`);
  return exitCode === EXIT.ok ? EXIT.failed : exitCode;
}

/** The id of the newest event of the queue's event stream ("0" when it has none). */
async function lastStreamId(redis: Redis, queue: string): Promise<string> {
  const newest = await redis.xrevrange(`bull:${queue}:events`, "+", "-", "COUNT", 1);
  return newest.length > 0 ? newest[0][0] : "0";
}

function wholeNumber(flag: string, value: string, max: number): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > max) {
    throw new UsageError(
      `Invalid ${flag} ${quote(value)}: expected a whole number from 1 to ${max}`,
    );
  }
  return number;
}
