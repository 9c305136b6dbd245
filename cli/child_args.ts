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

/**
 * The longest argument the launcher accepts (100 KiB: Linux takes at most 128 KiB per argument
 * anyway, and prompts are a few hundred characters), and the most for all of them (1 MiB).
 */
export const ARGUMENT_LIMITS = { one: 100 * 1024, all: 1024 * 1024 };

/** Throws {@link UsageError} naming an argument over {@link ARGUMENT_LIMITS}, or the total. */
export function checkArgumentSizes(args: readonly string[]): void {
  const kib = (bytes: number) => `${Math.ceil(bytes / 1024)} KiB`;
  let total = 0;
  for (const [index, argument] of args.entries()) {
    const bytes = new TextEncoder().encode(argument).length;
    total += bytes;
    if (bytes > ARGUMENT_LIMITS.one) {
      const start = argument.slice(0, 40).replace(/[^\x20-\x7e]/g, "?");
      throw new UsageError(
        `Argument ${index + 1} ("${start}...") is ${kib(bytes)}: the limit is ` +
          `${kib(ARGUMENT_LIMITS.one)}; put long text in the workflow file`,
      );
    }
  }
  if (total > ARGUMENT_LIMITS.all) {
    throw new UsageError(
      `The arguments are ${kib(total)} in all: the limit is ${kib(ARGUMENT_LIMITS.all)}`,
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
