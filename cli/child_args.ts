/**
 * Handing the command line to the CLI child on its stdin. A process whose arguments are long
 * (about 13 KB and more) crashes when a Worker loads onnxruntime-node (`thread 'worker-1' has
 * overflowed its stack`), so the launcher starts the child with only `--args-from-stdin` and
 * writes the arguments, as JSON, to its stdin (which the CLI reads for nothing else).
 *
 * @module
 */

import { UsageError } from "./common.ts";

/** The child's only argument when its command line comes on stdin. */
export const ARGS_FROM_STDIN = "--args-from-stdin";

/** The longest single argument the launcher accepts (4 MiB). */
export const ARGUMENT_LIMIT = 4 * 1024 * 1024;

/** Throws {@link UsageError} naming the first argument longer than {@link ARGUMENT_LIMIT}. */
export function checkArgumentSizes(args: readonly string[]): void {
  for (const [index, argument] of args.entries()) {
    const bytes = new TextEncoder().encode(argument).length;
    if (bytes <= ARGUMENT_LIMIT) continue;
    const start = argument.slice(0, 40).replace(/[^\x20-\x7e]/g, "?");
    throw new UsageError(
      `Argument ${index + 1} ("${start}...") is ${(bytes / 1024 ** 2).toFixed(1)} MiB: ` +
        `the limit is ${ARGUMENT_LIMIT / 1024 ** 2} MiB; put long text in a file`,
    );
  }
}

/** Writes `args` to a child's stdin and closes it. */
export async function sendArgs(stdin: WritableStream<Uint8Array>, args: readonly string[]) {
  const writer = stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(args)));
  await writer.close();
}

/** The command line: what stdin holds for {@link ARGS_FROM_STDIN}, else `argv` itself. */
export async function commandLine(argv: readonly string[]): Promise<string[]> {
  if (argv.length !== 1 || argv[0] !== ARGS_FROM_STDIN) return [...argv];
  let args: unknown;
  try {
    args = JSON.parse(await new Response(Deno.stdin.readable).text());
  } catch (error) {
    throw new UsageError(`Cannot read the arguments from stdin: ${(error as Error).message}`);
  }
  if (!Array.isArray(args) || !args.every((item) => typeof item === "string")) {
    throw new UsageError("Invalid arguments on stdin: expected a JSON list of strings");
  }
  return args;
}
