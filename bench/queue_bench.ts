/**
 * The queue's cost (`queue/`): per job, what BullMQ and the worker add to a run of the tiny
 * workflow (queued to taken, the run on the worker, its end to the job's result, and `submit
 * --wait` against `run` as a person sees them), and throughput with 1, 2 and 4 workers. Starts a
 * Redis of its own (`redis-server`, on loopback, without persistence) and stops it.
 *
 * ```sh
 * deno run -A bench/queue_bench.ts [--quick]
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { Queue } from "bullmq";
import { loadWorkflow } from "../api/mod.ts";
import { connectRedis } from "../queue/connection.ts";
import type { JobResult } from "../queue/job_events.ts";
import { type RunJobData, runJobFor } from "../queue/run_job.ts";
import { enqueueRun } from "../queue/submit_command.ts";
import {
  formatSeconds,
  markdownTable,
  median,
  PROJECT_DIR,
  TINY_WORKFLOW,
  writeResults,
} from "./bench_util.ts";

const PORT = 6397;
const URL = `redis://127.0.0.1:${PORT}`;
const FLAGS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
];

/** Runs the benchmark; returns its markdown. */
export async function queueBench(options: { quick: boolean }): Promise<string> {
  const runs = options.quick ? 2 : 6;
  const jobsPerWorkerCount = options.quick ? 4 : 8;
  const dir = await Deno.makeTempDir({ prefix: "cogflow-queue-bench-" });
  const redis = await startRedis(dir);
  try {
    // Per job: one idle worker, one job at a time, submitted with --wait as a person would,
    // alternating with local runs of the same kind (the machine's load drifts).
    const local: number[] = [];
    const overhead = await withWorkers(1, "overhead", async (queue) => {
      const waits: number[] = [];
      for (let seed = 0; seed < runs; seed++) {
        const localStart = performance.now();
        await cli(["run", TINY_WORKFLOW, ...params(seed, dir, "local"), "--quiet"], true);
        local.push(performance.now() - localStart);
        const started = performance.now();
        await cli([
          "submit",
          TINY_WORKFLOW,
          ...params(seed, dir, "overhead"),
          "--wait",
          "--quiet",
          "--redis",
          URL,
          "--queue",
          queue,
        ]);
        waits.push(performance.now() - started);
      }
      return { waits, ...(await jobTimes(queue)) };
    });

    const throughput: { workers: number; jobs: number; ms: number }[] = [];
    for (const workers of [1, 2, 4]) {
      const ms = await withWorkers(workers, `w${workers}`, async (queue) => {
        const connection = connectRedis(URL);
        const bull = new Queue<RunJobData, JobResult>(queue, { connection });
        const started = Date.now();
        for (let seed = 0; seed < jobsPerWorkerCount; seed++) {
          const set = params(seed, dir, `w${workers}`).filter((_, index) => index % 2 === 1);
          const workflow = await loadWorkflow(TINY_WORKFLOW, { set });
          const { id, data } = await runJobFor(TINY_WORKFLOW, workflow, { set });
          await enqueueRun(bull, connection, id, data, { attempts: 1 });
        }
        for (;;) {
          const counts = await bull.getJobCounts("completed", "failed");
          if (counts.completed + counts.failed >= jobsPerWorkerCount) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        const jobs = await bull.getJobs(["completed"], 0, -1);
        const last = Math.max(...jobs.map((job) => job.finishedOn ?? 0));
        await bull.close();
        connection.disconnect();
        return last - started;
      });
      throughput.push({ workers, jobs: jobsPerWorkerCount, ms });
    }

    await writeResults("queue", { local, overhead, throughput });
    const localMedian = median(local);
    const lines = [
      `Tiny workflow (2b fixture, 2 steps, 64x64, 9 frames); ${runs} runs each; medians.\n`,
      markdownTable(["", "time"], [
        ["`cogflow run` (launcher, a process per run)", formatSeconds(localMedian)],
        ["`cogflow submit --wait`, one idle worker", formatSeconds(median(overhead.waits))],
        ["  queued to taken by the worker", formatSeconds(median(overhead.queuedToTaken))],
        ["  the run on the worker (its child process)", formatSeconds(median(overhead.run))],
        ["  run end to job result", formatSeconds(median(overhead.endToResult))],
        [
          "queue overhead per job (`submit --wait` - `run`)",
          formatSeconds(median(overhead.waits) - localMedian),
        ],
      ]),
      "",
      markdownTable(
        ["workers", "jobs", "wall time", "jobs/min", "speed-up"],
        throughput.map((row) => [
          row.workers,
          row.jobs,
          formatSeconds(row.ms),
          (row.jobs / (row.ms / 60_000)).toFixed(1),
          `${(throughput[0].ms / row.ms).toFixed(2)}x`,
        ]),
      ),
    ];
    return lines.join("\n");
  } finally {
    redis.kill("SIGTERM");
    await redis.status;
    await Deno.remove(dir, { recursive: true });
  }
}

/** `--set` arguments of run `seed`, its outputs under `dir/<tag>/`. */
function params(seed: number, dir: string, tag: string): string[] {
  return [
    "--set",
    "steps=2",
    "--set",
    `seed=${seed}`,
    "--set",
    `output=${join(dir, tag, `seed-${seed}.mp4`)}`,
  ];
}

/** Per-job times from BullMQ's timestamps and the workers' own run times. */
async function jobTimes(queue: string) {
  const connection = connectRedis(URL);
  const bull = new Queue<RunJobData, JobResult>(queue, { connection });
  const jobs = await bull.getJobs(["completed"], 0, -1);
  await bull.close();
  connection.disconnect();
  return {
    queuedToTaken: jobs.map((job) => job.processedOn! - job.timestamp),
    run: jobs.map((job) => job.returnvalue.durationMs),
    endToResult: jobs.map((job) => job.finishedOn! - job.processedOn! - job.returnvalue.durationMs),
  };
}

/** Runs `fn` with `count` workers on a fresh queue, then stops them. */
async function withWorkers<T>(
  count: number,
  name: string,
  fn: (queue: string) => Promise<T>,
): Promise<T> {
  const queue = `bench-${name}-${crypto.randomUUID().slice(0, 8)}`;
  const workers = [];
  for (let index = 0; index < count; index++) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...FLAGS,
        join(PROJECT_DIR, "mod.ts"),
        "worker",
        "--redis",
        URL,
        "--queue",
        queue,
        "--name",
        `${name}-${index}`,
      ],
      cwd: PROJECT_DIR,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("taking jobs")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`Worker did not start: ${text}`);
      text += value;
    }
    // Keep draining its log so that it never blocks on a full pipe.
    (async () => {
      while (!(await reader.read()).done) { /* drain */ }
    })();
    workers.push(child);
  }
  try {
    return await fn(queue);
  } finally {
    for (const child of workers) child.kill("SIGTERM");
    await Promise.all(workers.map((child) => child.status));
  }
}

async function cli(args: string[], launcher = false): Promise<void> {
  const command = launcher
    ? ["--allow-read", "--allow-env", "--allow-run", join(PROJECT_DIR, "cli", "launch.ts")]
    : [...FLAGS, join(PROJECT_DIR, "mod.ts")];
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...command, ...args],
    cwd: PROJECT_DIR,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`cogflow ${args[0]} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
}

async function startRedis(dir: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(PORT), "--bind", "127.0.0.1", "--save", "", "--dir", dir],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let tries = 0; tries < 100; tries++) {
    const ping = await new Deno.Command("redis-cli", {
      args: ["-p", String(PORT), "ping"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (new TextDecoder().decode(ping.stdout).trim() === "PONG") return child;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`redis-server did not start on port ${PORT}`);
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { quick: { type: "boolean" } } });
  console.log(await queueBench({ quick: values.quick ?? false }));
}
