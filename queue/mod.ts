/**
 * Runs across machines: a job queue on Redis with BullMQ. `cogflow submit` validates a run and
 * queues it under a content-derived id, `cogflow worker` runs queued jobs (one worker per GPU),
 * `cogflow queue` lists and cancels them.
 *
 * @module
 */

export { cancelChannel, cancelKey, type CancelOutcome, cancelRunJob } from "./cancel.ts";
export {
  checkRedis,
  connectRedis,
  DEFAULT_QUEUE,
  DEFAULT_REDIS_URL,
  maskSecrets,
  maskUrl,
  type QueueTarget,
  queueTarget,
} from "./connection.ts";
export type { JobEndEvent, JobEvent, JobResult, JobStartEvent } from "./job_events.ts";
export { type JobProcessResult, runJobProcess } from "./job_process.ts";
export { type JobListing, queueCommand } from "./queue_command.ts";
export {
  outputSets,
  paramsFileSets,
  placeJob,
  type PluginSource,
  type RunJobData,
  runJobFor,
  runJobId,
  type WorkflowFileSource,
} from "./run_job.ts";
export { enqueueRun, MAX_PRIORITY, submitCommand } from "./submit_command.ts";
export { DEFAULT_STALL_INTERVAL_MS, workerCommand } from "./worker_command.ts";
