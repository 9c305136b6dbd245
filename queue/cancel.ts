/**
 * Cancelling a job from anywhere: a waiting job is removed from the queue; a running one is
 * flagged in Redis and announced on a channel its worker listens to, and the worker interrupts
 * the run (it stops at the next step, as Ctrl-C does) and fails the job as cancelled, not retried.
 *
 * @module
 */

import type { Queue } from "bullmq";
import type { Redis } from "ioredis";

/** How long a cancel request waits for a worker to see it. */
const CANCEL_REQUEST_SECONDS = 24 * 60 * 60;

/** The channel on which workers of `queue` hear of cancelled jobs (the message is the job id). */
export function cancelChannel(queue: string): string {
  return `cogflow:${queue}:cancel`;
}

/** The key that marks job `id` of `queue` as cancelled, for a worker that takes it just then. */
export function cancelKey(queue: string, id: string): string {
  return `cogflow:${queue}:cancelled:${id}`;
}

/** What {@link cancelRunJob} did. */
export type CancelOutcome = "removed" | "cancelling" | "finished" | "missing";

/**
 * Cancels job `id`: removes it while it waits, asks its worker to stop it while it runs; a
 * finished or unknown job is left alone.
 */
export async function cancelRunJob(
  queue: Queue,
  redis: Redis,
  id: string,
): Promise<CancelOutcome> {
  const job = await queue.getJob(id);
  if (!job) return "missing";
  const state = await job.getState();
  if (state === "completed" || state === "failed") return "finished";
  if (state !== "active") {
    try {
      await job.remove();
      return "removed";
    } catch {
      // A worker took it meanwhile: it is running now.
    }
  }
  await redis.set(cancelKey(queue.name, id), "1", "EX", CANCEL_REQUEST_SECONDS);
  await redis.publish(cancelChannel(queue.name), id);
  return "cancelling";
}
