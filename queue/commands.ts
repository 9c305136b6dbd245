/**
 * The queue's commands as the CLI calls them: checks first that this process may use the network
 * (under `deno task cogflow`'s launcher it may not, and BullMQ would fail at import), then loads
 * the queue's modules.
 *
 * @module
 */

import { type CliIo, EXIT } from "../cli/common.ts";
import { QUEUE_HELP, SUBMIT_HELP, WORKER_HELP } from "../cli/help.ts";
import { UserError } from "../runtime/user_error.ts";

/** Runs `cogflow submit`, `worker` or `queue` with its arguments; returns the exit code. */
export async function runQueueCommand(
  command: "submit" | "worker" | "queue",
  args: readonly string[],
  io: CliIo,
): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    io.stdout.write({ submit: SUBMIT_HELP, worker: WORKER_HELP, queue: QUEUE_HELP }[command]);
    return EXIT.ok;
  }
  if (Deno.permissions.querySync({ name: "net" }).state !== "granted") {
    throw new UserError(
      `cogflow ${command} talks to Redis, and this process may not use the network: ` +
        `run it as deno task cogflow-queue ${command} ...`,
    );
  }
  const queue = await import("./mod.ts");
  const run = {
    submit: queue.submitCommand,
    worker: queue.workerCommand,
    queue: queue.queueCommand,
  }[command];
  return await run(args, io);
}
