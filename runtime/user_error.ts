/**
 * Errors that are the user's to fix.
 *
 * @module
 */

/**
 * An error that is the user's to fix at run time (a missing file, a bad tensor), as opposed to a
 * bug: the CLI prints its message without a stack trace.
 */
export class UserError extends Error {
  /** The node the error is about, when known. */
  readonly node?: string;

  /** Makes an error with a message and, optionally, the node it is about. */
  constructor(message: string, options: { node?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "UserError";
    this.node = options.node;
  }
}
