/**
 * Names, paths and values echoed in messages: quoted, with control characters escaped, so that a
 * file name holding an escape sequence or a newline cannot repaint the terminal or forge a line.
 *
 * @module
 */

/**
 * Control characters (C0, DEL, C1), line and paragraph separators, and the bidirectional
 * overrides and isolates that reorder how text is shown.
 */
// deno-lint-ignore no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
  "\v": "\\v",
  "\0": "\\0",
};

/** `text` with every control character written as an escape (`\n`, `\x1b`, `\u202e`). */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, (char) => {
    const named = NAMED[char];
    if (named) return named;
    const code = char.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/**
 * `text` in double quotes for a message: `"out/a.mp4"`. Quotes and backslashes inside are escaped,
 * and so are control characters (see {@link escapeControl}).
 */
export function quote(text: unknown): string {
  return `"${escapeControl(String(text).replace(/[\\"]/g, (char) => `\\${char}`))}"`;
}
